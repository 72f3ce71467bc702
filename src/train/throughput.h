// Training speed and memory figures for the metrics log: samples per second over the last logging window
// (the first window includes warm-up) and the process's peak resident memory.
#pragma once
#include <sys/resource.h>

#include <chrono>
#include <cstdint>

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

}  // namespace dualign::train
