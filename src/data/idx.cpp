#include "data/idx.h"

#include <zlib.h>

#include <filesystem>

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
    total *= d;
  }
  a.data.resize(static_cast<size_t>(total));
  // gzread takes an unsigned count: read in 256 MiB pieces.
  for (size_t off = 0; off < a.data.size(); off += (1u << 28))
    read_exact(a.data.data() + off, std::min<size_t>(1u << 28, a.data.size() - off), "the data");
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
