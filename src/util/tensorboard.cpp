#include "util/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace dualign {
namespace {

// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, table-driven.
const std::array<uint32_t, 256>& crc_table() {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t masked_crc(const void* data, size_t n) {
  uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// --- protobuf wire format, only what Event/Summary need ---
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
template <typename T> void put_fixed(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian host (x86-64, aarch64)
  out.append(b, sizeof(T));
}
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_varint(e, (1 << 3) | 1);  // wall_time: double
  put_fixed(e, wall_time);
  put_varint(e, (2 << 3) | 0);  // step: int64
  put_varint(e, static_cast<uint64_t>(step));
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto& t = crc_table();
  auto p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(now_seconds())) + "." + host;
  file_ = std::fopen(path_.c_str(), "wb");
  DUALIGN_CHECK(file_ != nullptr, "cannot open TensorBoard event file '{}' for writing", path_);
  std::string e = event_header(now_seconds(), 0);
  put_bytes(e, 3, "brain.Event:2");  // file_version
  write_record(e);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::add_scalar(std::string_view tag, double value, int64_t step) {
  std::string v;
  put_bytes(v, 1, tag);         // Summary.Value.tag
  put_varint(v, (2 << 3) | 5);  // Summary.Value.simple_value: float
  put_fixed(v, static_cast<float>(value));
  write_summary_value(v, step);
}

void TensorBoardWriter::add_image(std::string_view tag, std::string_view png, int height, int width, int channels,
                                  int64_t step) {
  std::string image;
  put_varint(image, (1 << 3) | 0);  // Summary.Image.height
  put_varint(image, static_cast<uint64_t>(height));
  put_varint(image, (2 << 3) | 0);  // width
  put_varint(image, static_cast<uint64_t>(width));
  put_varint(image, (3 << 3) | 0);  // colorspace: 1 grey, 3 RGB
  put_varint(image, static_cast<uint64_t>(channels));
  put_bytes(image, 4, png);         // encoded_image_string
  std::string v;
  put_bytes(v, 1, tag);    // Summary.Value.tag
  put_bytes(v, 4, image);  // Summary.Value.image
  write_summary_value(v, step);
}

void TensorBoardWriter::write_summary_value(const std::string& value, int64_t step) {
  std::string summary;
  put_bytes(summary, 1, value);  // Summary.value
  std::string e = event_header(now_seconds(), step);
  put_bytes(e, 5, summary);  // Event.summary
  write_record(e);
}

void TensorBoardWriter::write_record(const std::string& event) {
  uint64_t len = event.size();
  uint32_t len_crc = masked_crc(&len, sizeof len);
  uint32_t data_crc = masked_crc(event.data(), event.size());
  std::fwrite(&len, sizeof len, 1, file_);
  std::fwrite(&len_crc, sizeof len_crc, 1, file_);
  std::fwrite(event.data(), 1, event.size(), file_);
  std::fwrite(&data_crc, sizeof data_crc, 1, file_);
}

void TensorBoardWriter::flush() { std::fflush(file_); }

}  // namespace dualign
