// Tensor memory a device's allocator has handed out: the current total and the peak since the last reset. On
// CUDA from the caching allocator's statistics; on the CPU from a meter wrapped around LibTorch's CPU allocator
// (install_cpu_memory_meter), which counts tensor storage only: not the rest of the heap, oneDNN's scratch or
// the allocator's own slack. `dualign train` logs the peak (train/peak_tensor_mb) and `dualign plan --measure`
// measures activations with it, so the planner can be checked against a run on any machine.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>

namespace dualign::dist {

// Wraps the CPU allocator once per process (later calls do nothing). Tensors allocated before are not counted,
// not even when freed. Costs two atomic additions per allocation.
void install_cpu_memory_meter();
bool cpu_memory_metered();

// Bytes in live tensors on `device`, and the most there were since the last reset; -1 on the CPU without the
// meter.
int64_t current_device_memory(const c10::Device& device);
int64_t peak_device_memory(const c10::Device& device);
// The peak restarts from the current total.
void reset_peak_device_memory(const c10::Device& device);

}  // namespace dualign::dist
