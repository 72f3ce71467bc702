// SIGINT, SIGTERM and SIGUSR1 as a request to stop cleanly: the handler only records the request (an
// async-signal-safe store and a fixed message written to stderr); the training loop polls it at step
// boundaries, agrees with the other ranks and checkpoints before exiting with kExitStoppedWithCheckpoint.
// A second SIGINT (Ctrl-C pressed twice) exits at once with 128 + SIGINT, without a checkpoint.
// Torch-free and MPI-free; src/train/graceful_stop.h adds the agreement between ranks.
#pragma once

namespace dualign {

// Exit code of a run that stopped on a signal after writing a checkpoint: "try again later" (EX_TEMPFAIL of
// sysexits.h). A different code from a crash (1) or a kill by signal (128 + n), so that launch scripts know
// that rerunning the same command resumes the run (launch/launchers/slurm.sbatch requeues the job on it).
inline constexpr int kExitStoppedWithCheckpoint = 75;

// Installs the handlers for SIGINT, SIGTERM and SIGUSR1 for the lifetime of the object and restores the previous
// ones after. One instance at a time.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // True once any of the three signals has arrived. Safe to poll from any thread.
  static bool requested();
  // The first signal that arrived (SIGINT, SIGTERM or SIGUSR1), 0 if none.
  static int first_signal();
};

}  // namespace dualign
