#include "util/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace dualign::log {
namespace {
struct State {
  int rank = 0;
  Level level = Level::info;
  std::FILE* file = nullptr;
  std::mutex mutex;
} state;

const char* name(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "?";
}

std::string timestamp() {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}
}  // namespace

void init(int rank, const std::string& file, Level level) {
  state.rank = rank;
  state.level = level;
  if (!file.empty()) open_file(file);
}

void open_file(const std::string& file) {
  std::lock_guard lock(state.mutex);
  if (state.file) std::fclose(state.file);
  std::filesystem::create_directories(std::filesystem::path(file).parent_path());
  state.file = std::fopen(file.c_str(), "a");
}

int rank() { return state.rank; }

void write(Level level, bool all_ranks, const std::string& message) {
  if (level < state.level) return;
  std::lock_guard lock(state.mutex);
  std::string line = fmt::format("[{} {} r{}] {}\n", timestamp(), name(level), state.rank, message);
  if (state.file) {
    std::fputs(line.c_str(), state.file);
    std::fflush(state.file);
  }
  if (state.rank == 0 || all_ranks) {
    std::FILE* out = level >= Level::warn ? stderr : stdout;
    std::fputs(line.c_str(), out);
    std::fflush(out);
  }
}

}  // namespace dualign::log
