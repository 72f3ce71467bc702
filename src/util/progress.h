// A progress line for long work on rank 0: "train 120/1000 [12%] 35.1 it/s ETA 0:25 loss=0.412".
// On a terminal it redraws in place; otherwise (CI, log files) it prints a line at most every few seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace dualign {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled, double min_interval_s = 5.0);
  // Report that `done` units are complete; `suffix` is appended (e.g. current metrics).
  void update(int64_t done, const std::string& suffix = "");
  void finish(const std::string& suffix = "");
  double rate() const;  // units per second since construction

 private:
  std::string render(int64_t done, const std::string& suffix) const;
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  double min_interval_s_;
  int64_t done_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
};

std::string format_duration(double seconds);  // 75 -> "1:15", 3725 -> "1:02:05"

}  // namespace dualign
