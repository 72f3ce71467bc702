#pragma once
#include <string>

namespace dualign::app {
// What this binary was built with: LibTorch version, CUDA and NCCL compiled in or not, MPI, HDF5.
std::string version_text();
}  // namespace dualign::app
