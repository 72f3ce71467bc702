#include "util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace dualign {
namespace {
// Under mpirun every rank's stdout is a pseudo-terminal owned by mpirun, whatever the user's terminal is,
// so redrawing in place would garble logs: print lines instead.
bool interactive_terminal() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID"})
    if (std::getenv(v)) return false;
  return isatty(fileno(stdout)) != 0;
}
}  // namespace

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::string label, int64_t total, bool enabled, double min_interval_s)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      tty_(interactive_terminal()),
      min_interval_s_(tty_ ? 0.2 : min_interval_s),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

double Progress::rate() const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
}

std::string Progress::render(int64_t done, const std::string& suffix) const {
  double r = rate();
  double eta = r > 0 ? static_cast<double>(total_ - done) / r : -1;
  int pct = total_ > 0 ? static_cast<int>(100 * done / total_) : 0;
  return fmt::format("{} {}/{} [{:3}%] {:.2f} it/s ETA {} {}", label_, done, total_, pct, r, format_duration(eta),
                     suffix);
}

void Progress::update(int64_t done, const std::string& suffix) {
  done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_print_).count() < min_interval_s_ && done < total_) return;
  last_print_ = now;
  if (tty_)
    std::printf("\r\033[K%s", render(done, suffix).c_str());
  else
    std::printf("%s\n", render(done, suffix).c_str());
  std::fflush(stdout);
}

void Progress::finish(const std::string& suffix) {
  if (!enabled_) return;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::printf("%s%s done: %lld in %s (%.2f it/s) %s\n", tty_ ? "\r\033[K" : "", label_.c_str(),
              static_cast<long long>(done_), format_duration(elapsed).c_str(), rate(), suffix.c_str());
  std::fflush(stdout);
}

}  // namespace dualign
