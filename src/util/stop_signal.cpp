#include "util/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "util/error.h"

namespace dualign {
namespace {

// Lock-free atomics are async-signal-safe; the handler touches nothing else but write(2) and _exit(2).
std::atomic<int> g_first_signal{0};
std::atomic<int> g_sigint_count{0};
static_assert(std::atomic<int>::is_always_lock_free);

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGUSR1};
struct sigaction g_previous[3];
std::atomic<bool> g_installed{false};

void say(const char* text) {
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void on_stop_signal(int sig) {
  if (sig == SIGINT && g_sigint_count.fetch_add(1) >= 1) {
    say("\ndualign: second SIGINT: exiting now, without a checkpoint\n");
    ::_exit(128 + SIGINT);
  }
  int none = 0;
  if (g_first_signal.compare_exchange_strong(none, sig)) {
    say(sig == SIGINT   ? "\ndualign: SIGINT: checkpointing at the next step boundary, then stopping "
                          "(Ctrl-C again to exit at once)\n"
        : sig == SIGTERM ? "\ndualign: SIGTERM: checkpointing at the next step boundary, then stopping\n"
                         : "\ndualign: SIGUSR1: checkpointing at the next step boundary, then stopping\n");
  }
}

}  // namespace

StopSignals::StopSignals() {
  DUALIGN_CHECK(!g_installed.exchange(true), "StopSignals: the stop handlers are already installed");
  g_first_signal = 0;
  g_sigint_count = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // system calls interrupted by the signal (file writes, MPI polling) resume
  for (int i = 0; i < 3; ++i)
    if (sigaction(kSignals[i], &sa, &g_previous[i]) != 0) fail("cannot install a handler for signal {}", kSignals[i]);
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
  g_installed = false;
}

bool StopSignals::requested() { return g_first_signal.load() != 0; }
int StopSignals::first_signal() { return g_first_signal.load(); }

}  // namespace dualign
