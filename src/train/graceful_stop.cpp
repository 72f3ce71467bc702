#include "train/graceful_stop.h"

#include <signal.h>

#include "util/log.h"

namespace dualign::train {

int GracefulStop::exit_code(int64_t step) const {
  const int sig = StopSignals::first_signal();
  log::warn("stopped after step {} on {} (here or on another rank), checkpoint written; exit code {}. Rerun the same "
            "command to resume",
            step, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a stop signal",
            kExitStoppedWithCheckpoint);
  return kExitStoppedWithCheckpoint;
}

}  // namespace dualign::train
