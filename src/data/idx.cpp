#include "data/idx.h"

#include <zlib.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "util/error.h"

namespace dualign::data {

IdxArray read_idx(const std::string& path) {
  // gzread reads plain files too, so one code path handles .gz and uncompressed copies.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("cannot open IDX file {}", path);
  auto read_exact = [&](void* out, size_t n, const char* what) {
    int got = gzread(f, out, static_cast<unsigned>(n));
    if (got < 0 || static_cast<size_t>(got) != n) {
      gzclose(f);
      fail("{}: truncated IDX file while reading {} ({} of {} bytes)", path, what, got, n);
    }
  };
  unsigned char magic[4];
  read_exact(magic, 4, "the magic number");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08) {
    gzclose(f);
    fail("{}: not an unsigned-byte IDX file (magic {:02x}{:02x}{:02x}{:02x})", path, magic[0], magic[1], magic[2], magic[3]);
  }
  IdxArray a;
  int64_t total = 1;
  for (int i = 0; i < magic[3]; ++i) {
    unsigned char b[4];
    read_exact(b, 4, "the dimensions");
    int64_t d = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    a.shape.push_back(d);
    if (d != 0 && total > std::numeric_limits<int64_t>::max() / d) {
      gzclose(f);
      fail("{}: IDX dimensions {} overflow a 64-bit element count (corrupt header?)", path, fmt::join(a.shape, " x "));
    }
    total *= d;
  }
  // Read in 16 MiB pieces, growing the buffer as data arrives: a corrupt header that announces more data than the
  // file holds fails as truncated instead of allocating what it announced.
  constexpr int64_t kPiece = int64_t{1} << 24;
  for (int64_t have = 0; have < total; have += kPiece) {
    const int64_t n = std::min(kPiece, total - have);
    a.data.resize(static_cast<size_t>(have + n));
    read_exact(a.data.data() + have, static_cast<size_t>(n), "the data");
  }
  gzclose(f);
  return a;
}

std::string find_idx_file(const std::string& dir, const std::string& stem) {
  for (auto* ext : {".gz", ""}) {
    auto p = std::filesystem::path(dir) / (stem + ext);
    if (std::filesystem::exists(p)) return p.string();
  }
  fail("no {}[.gz] in {} (install Debian's dataset-fashion-mnist, or pass --idx-dir)", stem, dir);
}

}  // namespace dualign::data
