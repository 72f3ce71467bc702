#include "models/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace dualign::models {
namespace {

struct DtypeInfo {
  const char* name;
  torch::Dtype dtype;
  int64_t size;
};
const DtypeInfo kDtypes[] = {{"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2}, {"BF16", torch::kBFloat16, 2},
                             {"F64", torch::kFloat64, 8}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4}};

const DtypeInfo* by_name(const std::string& name) {
  for (const auto& d : kDtypes) if (name == d.name) return &d;
  return nullptr;
}
const DtypeInfo* by_dtype(torch::Dtype dtype) {
  for (const auto& d : kDtypes) if (dtype == d.dtype) return &d;
  return nullptr;
}

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit

}  // namespace

TensorMap parse_safetensors(const std::string& bytes, const std::string& origin,
                            std::map<std::string, std::string>* metadata) {
  DUALIGN_CHECK(bytes.size() >= 8, "safetensors '{}': file is {} bytes, shorter than the 8-byte header length",
                origin, bytes.size());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  DUALIGN_CHECK(n <= kMaxHeader && n <= bytes.size() - 8,
                "safetensors '{}': header length {} exceeds the file ({} bytes) or the 100 MB limit", origin, n,
                bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + int64_t(n));
  } catch (const std::exception& e) {
    fail("safetensors '{}': header is not valid JSON ({})", origin, e.what());
  }
  DUALIGN_CHECK(header.is_object(), "safetensors '{}': header must be a JSON object", origin);
  const char* data = bytes.data() + 8 + n;
  const uint64_t data_size = bytes.size() - 8 - n;

  TensorMap out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (metadata && entry.is_object())
        for (const auto& [k, v] : entry.items()) (*metadata)[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    DUALIGN_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                      entry.contains("data_offsets") && entry["dtype"].is_string() && entry["shape"].is_array() &&
                      entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2,
                  "safetensors '{}': tensor '{}' needs dtype (string), shape (list) and data_offsets [begin, end]",
                  origin, name);
    const auto* info = by_name(entry["dtype"].get<std::string>());
    DUALIGN_CHECK(info, "safetensors '{}': tensor '{}' has unsupported dtype '{}' (F32, F16, BF16, F64, I64, I32)",
                  origin, name, entry["dtype"].get<std::string>());
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      DUALIGN_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                    "safetensors '{}': tensor '{}' has a negative or non-integer dimension", origin, name);
      uint64_t v = d.get<uint64_t>();
      DUALIGN_CHECK(v == 0 || numel <= std::numeric_limits<uint64_t>::max() / v / 8,
                    "safetensors '{}': tensor '{}' shape overflows", origin, name);
      numel *= v;
      shape.push_back(int64_t(v));
    }
    const auto& offs = entry["data_offsets"];
    DUALIGN_CHECK(offs[0].is_number_unsigned() && offs[1].is_number_unsigned(),
                  "safetensors '{}': tensor '{}' data_offsets must be non-negative integers", origin, name);
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    DUALIGN_CHECK(begin <= end && end <= data_size,
                  "safetensors '{}': tensor '{}' data_offsets [{}, {}] outside the data section ({} bytes)", origin,
                  name, begin, end, data_size);
    DUALIGN_CHECK(end - begin == numel * uint64_t(info->size),
                  "safetensors '{}': tensor '{}' has {} bytes but dtype {} x shape {} needs {}", origin, name,
                  end - begin, info->name, entry["shape"].dump(), numel * info->size);
    auto t = torch::empty(shape, torch::TensorOptions().dtype(info->dtype));
    if (numel > 0) std::memcpy(t.data_ptr(), data + begin, end - begin);
    out.emplace(name, std::move(t));
  }
  return out;
}

TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  std::ifstream in(path, std::ios::binary);
  DUALIGN_CHECK(in.good(), "cannot open safetensors file '{}'", path);
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_safetensors(buf.str(), path, metadata);
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    DUALIGN_CHECK(name != "__metadata__", "safetensors '{}': '__metadata__' is not a valid tensor name", path);
    const auto* info = by_dtype(tensor.scalar_type());
    DUALIGN_CHECK(info, "safetensors '{}': tensor '{}' has unsupported dtype {}", path, name,
                  c10::toString(tensor.scalar_type()));
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = uint64_t(t.numel()) * uint64_t(info->size);
    header[name] = {{"dtype", info->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(t);
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // align the data section to 8 bytes
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DUALIGN_CHECK(out.good(), "cannot write safetensors file '{}'", tmp);
    uint64_t n = h.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(h.data(), int64_t(h.size()));
    for (const auto& t : blobs) out.write(static_cast<const char*>(t.data_ptr()), int64_t(t.numel() * t.element_size()));
    DUALIGN_CHECK(out.good(), "write to '{}' failed (disk full?)", tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace dualign::models
