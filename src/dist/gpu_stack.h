// What this process sees of the GPU software stack (driver, CUDA runtime, NCCL, MPI, the devices): for
// `dualign doctor`, which a cluster user runs first. (Device memory: device_memory.h.)
// Compiled in every build; without CUDA (or without a driver) the GPU fields say so instead of failing.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dualign::dist {

struct GpuStack {
  bool cuda_compiled = false, nccl_compiled = false;
  std::string driver;        // kernel driver, e.g. "550.54.15" (/proc/driver/nvidia/version); "" if none
  std::string cuda_driver;   // CUDA version the driver supports, e.g. "12.4"; "" without a driver
  std::string cuda_runtime;  // CUDA runtime linked in, e.g. "13.0"; "" in a CPU build
  std::string nccl;          // NCCL library loaded, e.g. "2.30.7"; "" in a build without NCCL
  std::string mpi;           // MPI library, e.g. "Open MPI v4.1.4"
  std::vector<std::string> gpus;  // visible devices: "NVIDIA H100 80GB HBM3 (79.2 GiB)"
};
GpuStack probe_gpu_stack();
// The MPI library's own version line (e.g. "Open MPI v4.1.4"); callable before MPI_Init.
std::string mpi_library_version();

// Waits for all work queued on `device` (no-op on CPU): for timing GPU work from the host.
void synchronize_device(const c10::Device& device);

}  // namespace dualign::dist
