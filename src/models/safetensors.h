// safetensors reader and writer (https://github.com/huggingface/safetensors format): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then raw data.
// Every malformed input is a dualign::Error naming the file and the problem, never a crash.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace dualign::models {

using TensorMap = std::map<std::string, torch::Tensor>;

// Supported dtypes: F32, F16, BF16 (and F64, I64, I32 for completeness). Tensors are returned on CPU.
TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
// Parse from memory (used by load_safetensors; `origin` names the source in errors).
TensorMap parse_safetensors(const std::string& bytes, const std::string& origin,
                            std::map<std::string, std::string>* metadata = nullptr);

// Writes atomically (temp file + rename). Tensors are stored in their own dtype, contiguous, from CPU copies.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace dualign::models
