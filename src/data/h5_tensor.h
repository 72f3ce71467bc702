// Torch tensors <-> HDF5 datasets. float16 is stored as IEEE half (h5py reads it as numpy float16). bfloat16 and
// bool have no portable HDF5 type in 1.10, so they are stored as uint16 / uint8 with the attribute torch_dtype
// naming the real type (h5py sees the raw bits); float16 stored that way by older checkpoints still reads back.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "data/h5.h"

namespace dualign::h5 {

// Writes a tensor (any device/layout; copied to contiguous CPU) as dataset `name`.
void write_tensor(File& file, const std::string& name, const at::Tensor& tensor, const WriteOptions& options = {});
// Reads a whole dataset as a CPU tensor of its stored type (restoring torch_dtype when present).
at::Tensor read_tensor(const File& file, const std::string& name);
// Reads the listed rows (dimension 0) in that order: shape [rows.size(), ...].
at::Tensor read_tensor_rows(const File& file, const std::string& name, const std::vector<int64_t>& rows);

const char* torch_dtype_name(at::ScalarType t);

}  // namespace dualign::h5
