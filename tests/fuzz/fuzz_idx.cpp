// libFuzzer harness: the IDX reader (magic, big-endian dimensions, data; plain or gzip). The input is written to
// a scratch file (gzip-compressed when its first byte is odd) and read back. A header may announce any size:
// the reader must fail as truncated rather than allocate what it announces.
#include <fuzzer/FuzzedDataProvider.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("dualign-fuzz-" + std::to_string(::getpid()) + ".idx")).string();
  FuzzedDataProvider in(data, size);
  const bool gzip = in.ConsumeBool();
  const std::string body = in.ConsumeRemainingBytesAsString();
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, body.data(), static_cast<unsigned>(body.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << body;
  }
  try {
    auto a = dualign::data::read_idx(path);
    int64_t total = 1;
    for (auto d : a.shape) total *= d;
    if (static_cast<int64_t>(a.data.size()) != total) __builtin_trap();  // the shape must describe the data
  } catch (const std::exception&) {
  }
  return 0;
}
