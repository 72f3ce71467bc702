// Metrics sink for rank 0: one JSON object per line in <run_dir>/metrics.jsonl and the same scalars in
// TensorBoard event files under <run_dir>/tb. Other ranks construct it disabled and calls are no-ops.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

namespace dualign {

class TensorBoardWriter;

class MetricsWriter {
 public:
  MetricsWriter() = default;  // disabled
  MetricsWriter(const std::string& run_dir, bool enabled);
  ~MetricsWriter();
  MetricsWriter(MetricsWriter&&) noexcept;
  MetricsWriter& operator=(MetricsWriter&&) noexcept;

  // Write one record: {"step": step, "time": seconds since start, <name>: value, ...}.
  void log(int64_t step, const std::map<std::string, double>& scalars);
  // One image (an encoded PNG of height x width x channels) in TensorBoard under `tag`.
  void log_image(int64_t step, const std::string& tag, const std::string& png, int height, int width, int channels);
  void flush();
  bool enabled() const { return jsonl_ != nullptr; }

 private:
  std::FILE* jsonl_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
  double start_time_ = 0;
};

}  // namespace dualign
