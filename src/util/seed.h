// Deterministic random streams: every stream is derived from (seed, rank, step, purpose), so the same seed
// gives the same run and no two streams share numbers.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace dualign {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline uint64_t hash_purpose(std::string_view purpose) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (char c : purpose) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return h;
}

// derive_seed(seed, "data", {step, micro}) -> a 63-bit seed unique to that purpose and those indices.
inline uint64_t derive_seed(uint64_t seed, std::string_view purpose, std::initializer_list<int64_t> indices = {}) {
  uint64_t h = splitmix64(seed ^ hash_purpose(purpose));
  for (int64_t i : indices) h = splitmix64(h ^ static_cast<uint64_t>(i));
  return h >> 1;
}

}  // namespace dualign
