// Reader for the IDX files of (Fashion-)MNIST (gzipped or not): magic 0x0000 08 <ndims>, big-endian u32
// dimensions, then uint8 data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dualign::data {

struct IdxArray {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

IdxArray read_idx(const std::string& path);

// The Debian dataset-fashion-mnist files: <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
std::string find_idx_file(const std::string& dir, const std::string& stem);  // stem e.g. "train-images-idx3-ubyte"

}  // namespace dualign::data
