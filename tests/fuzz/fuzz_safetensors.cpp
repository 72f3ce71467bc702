// libFuzzer harness: the safetensors parser (8-byte header length, JSON header, offsets, dtypes, shapes).
// Malformed files must be rejected with an exception naming the file; never read or allocate past the input.
#include <torch/torch.h>

#include <map>
#include <string>

#include "models/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = [] {
    torch::set_num_threads(1);
    return true;
  }();
  (void)once;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::map<std::string, std::string> metadata;
    auto tensors = dualign::models::parse_safetensors(bytes, "fuzz.safetensors", &metadata);
    for (auto& [name, t] : tensors) (void)t.sum();  // touch every element that was parsed
  } catch (const std::exception&) {
  }
  return 0;
}
