// Host synchronisation: the points where the CPU stops until the device has caught up. On a GPU every one of
// them drains the queue of kernels the host had run ahead with, so the training micro-step makes none:
// statistics stay on the device and reach the host only at log steps, through to_host().
//
//   to_host(t)           the one way to read device values on the host (each call counts as a host sync)
//   HostSyncProbe probe  counts, while alive, the to_host() calls and every ATen op that reads device memory
//                        on the host or waits for the device (.item(), nonzero, blocking copies, ...)
//
// On CPU nothing waits, but the probe still sees the calls that would wait on a GPU (.item() is
// aten::_local_scalar_dense everywhere); blocking copies between host and device show only on a GPU.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dualign::dist {

// A contiguous CPU copy of `t` (t itself when it is a contiguous CPU tensor). Counts one host sync.
at::Tensor to_host(const at::Tensor& t);
// The values of `t` as doubles, in row-major order (one host sync).
std::vector<double> to_host_doubles(const at::Tensor& t);
// Process-wide number of to_host*() calls so far.
int64_t to_host_calls();

// Counts host syncs made by the constructing thread and the autograd threads its backward passes use,
// from construction to destruction. Thread-local ATen observer: cheap, but meant for diagnostics and tests
// (`dualign doctor` counts the syncs of a DPO micro-step).
class HostSyncProbe {
 public:
  HostSyncProbe();
  ~HostSyncProbe();
  HostSyncProbe(const HostSyncProbe&) = delete;
  HostSyncProbe& operator=(const HostSyncProbe&) = delete;

  int64_t count() const;                        // all host syncs seen so far
  std::map<std::string, int64_t> by_op() const;  // "to_host", "aten::_local_scalar_dense", "aten::copy_ (D2H)", ...
  std::string describe() const;                  // "none" or "aten::_local_scalar_dense x3, to_host x1"

 private:
  uint64_t handle_ = 0;
  int64_t to_host_at_start_ = 0;
  std::map<std::string, int64_t> ops_at_start_;
};

}  // namespace dualign::dist
