// Preemption-safe training: SIGINT, SIGTERM or SIGUSR1 on any rank stops every rank after the same step, with a
// checkpoint, and the process exits with kExitStoppedWithCheckpoint (75). Rerunning the same command (same
// run.dir) resumes exactly. Slurm sends SIGUSR1 ahead of the time limit (launch/launchers/slurm.sbatch); mpirun
// forwards SIGUSR1 to the ranks, and launch/launchers/local.sh turns Ctrl-C into it. A second Ctrl-C exits at once.
//
//   GracefulStop stop;                              // installs the handlers, starts the first vote
//   for (step ...) {
//     ...
//     const bool stopping = stop.agreed();          // every rank, once per step: a signal on any rank, one step late
//     checkpointer.maybe_save(step + 1, last || stopping, state);
//     if (stopping) return stop.exit_code(step + 1);
//   }
#pragma once
#include <cstdint>

#include "dist/stop_vote.h"
#include "util/stop_signal.h"

namespace dualign::train {

class GracefulStop {
 public:
  GracefulStop() = default;
  // Collective at a step boundary: true on every rank when a stop signal reached any rank before the previous
  // boundary.
  bool agreed() { return vote_.exchange(StopSignals::requested()); }
  // Logs why the run stops after `step` and returns kExitStoppedWithCheckpoint.
  int exit_code(int64_t step) const;

 private:
  StopSignals signals_;  // first: handlers are in place before the first vote
  dist::StopVote vote_;
};

}  // namespace dualign::train
