#include "app/version.h"

#include <fmt/format.h>
#include <torch/version.h>

#include "dist/gpu_stack.h"
#include "dualign/build_info.h"

namespace dualign::app {

std::string version_text() {
  return fmt::format(
      "dualign {} ({})\n"
      "  LibTorch {} (headers {})\n"
      "  CUDA: {}{}\n"
      "  NCCL: {}{}\n"
      "  MPI: {} (standard {})\n"
      "  HDF5: {}\n",
      DUALIGN_VERSION, DUALIGN_BUILD_TYPE, DUALIGN_TORCH_VERSION, TORCH_VERSION,
      DUALIGN_WITH_CUDA ? "compiled in" : "not compiled in (CPU-only build)",
      DUALIGN_WITH_CUDA ? fmt::format(" (toolkit {}, torch built for CUDA {})", DUALIGN_CUDA_TOOLKIT_VERSION,
                                      DUALIGN_TORCH_CUDA)
                        : std::string(),
      DUALIGN_WITH_NCCL ? "compiled in" : "not compiled in",
      DUALIGN_WITH_NCCL ? fmt::format(" (version {})", DUALIGN_NCCL_VERSION) : std::string(), dist::mpi_library_version(), DUALIGN_MPI_VERSION,
      DUALIGN_HDF5_VERSION);
}

}  // namespace dualign::app
