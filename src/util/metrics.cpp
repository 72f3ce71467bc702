#include "util/metrics.h"

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/tensorboard.h"

namespace dualign {
namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

MetricsWriter::MetricsWriter(const std::string& run_dir, bool enabled) {
  if (!enabled) return;
  std::filesystem::create_directories(run_dir);
  std::string path = run_dir + "/metrics.jsonl";
  jsonl_ = std::fopen(path.c_str(), "a");
  DUALIGN_CHECK(jsonl_ != nullptr, "cannot open metrics file '{}' for writing", path);
  tb_ = std::make_unique<TensorBoardWriter>(run_dir + "/tb");
  start_time_ = now_seconds();
}

MetricsWriter::~MetricsWriter() {
  if (jsonl_) std::fclose(jsonl_);
}
MetricsWriter::MetricsWriter(MetricsWriter&& o) noexcept
    : jsonl_(std::exchange(o.jsonl_, nullptr)), tb_(std::move(o.tb_)), start_time_(o.start_time_) {}
MetricsWriter& MetricsWriter::operator=(MetricsWriter&& o) noexcept {
  if (this != &o) {
    if (jsonl_) std::fclose(jsonl_);
    jsonl_ = std::exchange(o.jsonl_, nullptr);
    tb_ = std::move(o.tb_);
    start_time_ = o.start_time_;
  }
  return *this;
}

void MetricsWriter::log(int64_t step, const std::map<std::string, double>& scalars) {
  if (!jsonl_) return;
  nlohmann::json record;
  record["step"] = step;
  record["time"] = now_seconds() - start_time_;
  for (const auto& [name, value] : scalars) {
    record[name] = value;
    tb_->add_scalar(name, value, step);
  }
  std::string line = record.dump() + "\n";
  std::fputs(line.c_str(), jsonl_);
  flush();  // a preempted (SIGKILLed) job keeps every record it logged
}

void MetricsWriter::log_image(int64_t step, const std::string& tag, const std::string& png, int height, int width,
                              int channels) {
  if (!jsonl_) return;
  tb_->add_image(tag, png, height, width, channels, step);
  tb_->flush();
}

void MetricsWriter::flush() {
  if (!jsonl_) return;
  std::fflush(jsonl_);
  tb_->flush();
}

}  // namespace dualign
