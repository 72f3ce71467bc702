#include "app/version.h"

#include <fmt/format.h>
#include <mpi.h>
#include <torch/version.h>

#include "dualign/build_info.h"

namespace dualign::app {

namespace {
// The MPI library's own version line (e.g. "Open MPI v4.1.4, ..."); callable before MPI_Init.
std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string s(text, static_cast<size_t>(len));
  return s.substr(0, s.find_first_of(",\n"));
}
}  // namespace

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
      DUALIGN_WITH_NCCL ? fmt::format(" (version {})", DUALIGN_NCCL_VERSION) : std::string(), mpi_library_version(), DUALIGN_MPI_VERSION,
      DUALIGN_HDF5_VERSION);
}

}  // namespace dualign::app
