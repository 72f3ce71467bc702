// Training speed and memory figures for the metrics log: samples per second over the last logging window
// (the first window includes warm-up), the process's peak resident memory and the device allocator's peak of
// tensor memory (what `dualign plan` predicts).
#pragma once
#include <sys/resource.h>

#include <chrono>
#include <cstdint>

#include "dist/device_memory.h"

namespace dualign::train {

class Throughput {
 public:
  Throughput(int64_t samples_per_step, int64_t start_step)
      : samples_per_step_(samples_per_step), last_step_(start_step), last_(Clock::now()) {}

  // Samples per second since the previous call (or the start), then restarts the window at `step`.
  double samples_per_second(int64_t step) {
    const auto now = Clock::now();
    const double seconds = std::chrono::duration<double>(now - last_).count();
    const double rate = seconds > 0 ? static_cast<double>((step - last_step_) * samples_per_step_) / seconds : 0.0;
    last_ = now;
    last_step_ = step;
    return rate;
  }

 private:
  using Clock = std::chrono::steady_clock;
  int64_t samples_per_step_, last_step_;
  Clock::time_point last_;
};

// Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB).
inline double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// Peak bytes of live tensors on `device` since the start, in MiB (CPU: with the meter installed; else -1).
inline double peak_tensor_mb(const c10::Device& device) {
  const int64_t bytes = dist::peak_device_memory(device);
  return bytes < 0 ? -1.0 : static_cast<double>(bytes) / (1024.0 * 1024.0);
}

}  // namespace dualign::train
