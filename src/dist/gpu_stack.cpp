#include "dist/gpu_stack.h"

#include <fmt/format.h>
#include <mpi.h>

#include <fstream>
#include <regex>

#include "dualign/build_info.h"
#if DUALIGN_HAVE_NCCL_BACKEND
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

namespace dualign::dist {
namespace {

std::string cuda_version(int v) { return v > 0 ? fmt::format("{}.{}", v / 1000, (v % 1000) / 10) : ""; }

// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..." -> "550.54.15"
std::string kernel_driver_version() {
  std::ifstream f("/proc/driver/nvidia/version");
  std::string line;
  if (!f || !std::getline(f, line)) return "";
  std::smatch m;
  return std::regex_search(line, m, std::regex(R"(Kernel Module\s+([0-9][0-9.]*))")) ? m[1].str() : line;
}

}  // namespace

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  std::string s(text, static_cast<size_t>(len));
  return s.substr(0, s.find_first_of(",\n"));
}

GpuStack probe_gpu_stack() {
  GpuStack s;
  s.cuda_compiled = DUALIGN_WITH_CUDA;
  s.nccl_compiled = DUALIGN_WITH_NCCL;
  s.driver = kernel_driver_version();
  s.mpi = mpi_library_version();
#if DUALIGN_HAVE_NCCL_BACKEND
  int v = 0;
  if (cudaDriverGetVersion(&v) == cudaSuccess) s.cuda_driver = cuda_version(v);
  if (cudaRuntimeGetVersion(&v) == cudaSuccess) s.cuda_runtime = cuda_version(v);
  if (ncclGetVersion(&v) == ncclSuccess)  // NCCL >= 2.9: MAJOR*10000 + MINOR*100 + PATCH
    s.nccl = fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    count = 0;
    (void)cudaGetLastError();  // no driver / no device: clear the sticky error
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
      s.gpus.push_back(fmt::format("{} ({:.1f} GiB)", p.name, double(p.totalGlobalMem) / double(1 << 30)));
  }
#endif
  return s;
}

void synchronize_device(const c10::Device& device) {
#if DUALIGN_HAVE_NCCL_BACKEND
  if (device.is_cuda()) c10::cuda::device_synchronize();
#endif
}

}  // namespace dualign::dist
