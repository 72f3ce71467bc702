// Minimal TensorBoard event-file writer for scalars and images: TFRecord framing (masked CRC-32C) around
// hand-encoded `Event { wall_time, step, summary { value { tag, simple_value | image } } }` protobufs. No
// protobuf dependency.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace dualign {

uint32_t crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);  // creates dir/events.out.tfevents.<time>.<host>
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalar(std::string_view tag, double value, int64_t step);
  // An image summary: `png` holds an encoded PNG of height x width pixels with `channels` (1 grey, 3 RGB).
  void add_image(std::string_view tag, std::string_view png, int height, int width, int channels, int64_t step);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_summary_value(const std::string& value, int64_t step);
  void write_record(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace dualign
