#include "ckpt/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "util/error.h"

namespace fs = std::filesystem;

namespace dualign::ckpt {
namespace {

void fsync_fd_path(const std::string& path, int flags, const char* what) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) fail("cannot open {} {} for fsync: {}", what, path, std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) fail("fsync of {} {} failed: {}", what, path, std::strerror(err));
}

void rename_or_fail(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) fail("cannot rename {} to {}: {}", from, to, std::strerror(errno));
}

// Step of "ckpt-00000120.h5" (main files only), or -1.
int64_t step_of(const std::string& name) {
  static const std::regex re(R"(ckpt-(\d+)\.h5)");
  std::smatch m;
  return std::regex_match(name, m, re) ? std::stoll(m[1]) : -1;
}

// Step of any file belonging to a checkpoint (main, shard, or their .tmp), or -1.
int64_t step_of_any(const std::string& name) {
  static const std::regex re(R"(ckpt-(\d+)(\.rank\d+-of-\d+)?\.h5(\.tmp)?)");
  std::smatch m;
  return std::regex_match(name, m, re) ? std::stoll(m[1]) : -1;
}

}  // namespace

void fsync_path(const std::string& path) { fsync_fd_path(path, O_RDONLY, "file"); }
void fsync_dir(const std::string& dir) { fsync_fd_path(dir, O_RDONLY | O_DIRECTORY, "directory"); }

CheckpointStore::CheckpointStore(std::string dir, int keep_last) : dir_(std::move(dir)), keep_last_(keep_last) {
  DUALIGN_CHECK(keep_last_ >= 1, "checkpoint store {}: keep_last must be >= 1, got {}", dir_, keep_last_);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) fail("cannot create checkpoint directory {}: {}", dir_, ec.message());
}

std::string CheckpointStore::path(int64_t step) const { return (fs::path(dir_) / fmt::format("ckpt-{:08}.h5", step)).string(); }

std::string CheckpointStore::shard_path(int64_t step, int rank, int world_size) const {
  return (fs::path(dir_) / fmt::format("ckpt-{:08}.rank{}-of-{}.h5", step, rank, world_size)).string();
}

void CheckpointStore::write_atomically(const std::string& final_path, const Fill& fill) {
  std::string tmp = final_path + ".tmp";
  {
    CheckpointWriter writer(tmp);
    fill(writer);
    writer.close();
  }
  fsync_path(tmp);
  rename_or_fail(tmp, final_path);
  fsync_dir(dir_);
}

std::string CheckpointStore::save(int64_t step, const Fill& fill) {
  DUALIGN_CHECK(step >= 0, "checkpoint step must be >= 0, got {}", step);
  remove_stale_tmp(step);
  std::string final_path = path(step);
  write_atomically(final_path, [&](CheckpointWriter& w) {
    w.set_attr("step", step);
    fill(w);
  });
  // Point `latest` at the new file: write a temporary pointer and rename it over the old one.
  std::string latest_tmp = (fs::path(dir_) / "latest.tmp").string();
  {
    std::ofstream out(latest_tmp, std::ios::trunc);
    out << fs::path(final_path).filename().string() << "\n";
    if (!out.flush()) fail("cannot write {}", latest_tmp);
  }
  fsync_path(latest_tmp);
  rename_or_fail(latest_tmp, (fs::path(dir_) / "latest").string());
  fsync_dir(dir_);
  prune(step);
  return final_path;
}

std::string CheckpointStore::save_shard(int64_t step, int rank, int world_size, const Fill& fill) {
  std::string final_path = shard_path(step, rank, world_size);
  write_atomically(final_path, [&](CheckpointWriter& w) {
    w.set_attr("step", step);
    w.set_attr("rank", int64_t{rank});
    w.set_attr("world_size", int64_t{world_size});
    fill(w);
  });
  return final_path;
}

std::optional<std::string> CheckpointStore::latest() const {
  auto pointer = fs::path(dir_) / "latest";
  if (!fs::exists(pointer)) return std::nullopt;
  std::ifstream in(pointer);
  std::string name;
  std::getline(in, name);
  if (step_of(name) < 0) fail("{}: does not name a checkpoint file (content '{}')", pointer.string(), name);
  auto file = fs::path(dir_) / name;
  if (!fs::exists(file)) fail("{} names {}, which does not exist", pointer.string(), file.string());
  return file.string();
}

std::vector<int64_t> CheckpointStore::steps() const {
  std::vector<int64_t> out;
  for (auto& entry : fs::directory_iterator(dir_)) {
    int64_t s = step_of(entry.path().filename().string());
    if (s >= 0) out.push_back(s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void CheckpointStore::prune(int64_t keep_step) {
  auto all = steps();
  if (static_cast<int>(all.size()) <= keep_last_) return;
  std::vector<int64_t> doomed(all.begin(), all.end() - keep_last_);
  for (auto& entry : fs::directory_iterator(dir_)) {
    auto name = entry.path().filename().string();
    int64_t s = step_of_any(name);
    if (s >= 0 && s != keep_step && std::find(doomed.begin(), doomed.end(), s) != doomed.end())
      fs::remove(entry.path());
  }
}

void CheckpointStore::remove_stale_tmp(int64_t before_step) {
  // A .tmp of an earlier step is a write that never finished (crash or kill): it will never be renamed.
  for (auto& entry : fs::directory_iterator(dir_)) {
    auto name = entry.path().filename().string();
    if (name.size() > 4 && name.ends_with(".tmp") && step_of_any(name) >= 0 && step_of_any(name) < before_step)
      fs::remove(entry.path());
  }
}

std::string CheckpointStore::resolve(const std::string& file_or_dir) {
  if (!fs::is_directory(file_or_dir)) return file_or_dir;
  auto latest = CheckpointStore(file_or_dir).latest();
  if (!latest) fail("{}: no `latest` checkpoint in this directory", file_or_dir);
  return *latest;
}

}  // namespace dualign::ckpt
