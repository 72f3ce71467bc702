# shellcheck shell=bash
# Sourced by the launchers: run_stoppable CMD... runs an mpirun/srun command so that a stop request reaches the
# ranks as SIGUSR1 (dualign train checkpoints after the next step and exits 75, src/train/graceful_stop.h).
#   - CMD runs in its own process group: a terminal's Ctrl-C reaches this script, not mpirun, which would
#     answer SIGINT/SIGTERM by killing the ranks (SIGTERM, then SIGKILL a second later: too soon to checkpoint).
#   - The first SIGINT, SIGTERM or SIGUSR1 (Slurm's --signal=B:USR1@120) is sent on as SIGUSR1; mpirun and srun
#     forward SIGUSR1 to every rank. A second SIGINT sends SIGINT, which aborts the job at once.
# Returns CMD's exit status. With DUALIGN_REQUEUE_ON_STOP=1 inside a Slurm job, exit status 75 (stopped with a
# checkpoint) requeues the job (`scontrol requeue`; submit with --requeue), and the requeued job resumes.

run_stoppable() {
  set -m
  "$@" </dev/null &
  _stoppable_pid=$!
  set +m
  _stoppable_signals=0
  trap '_stoppable_forward SIGINT' INT
  trap '_stoppable_forward SIGTERM' TERM
  trap '_stoppable_forward SIGUSR1' USR1
  local rc=0
  while kill -0 "$_stoppable_pid" 2>/dev/null; do
    wait "$_stoppable_pid" && rc=0 || rc=$?  # returns early (> 128) when a trapped signal arrives; wait again
  done
  trap - INT TERM USR1
  if [[ $rc == 75 && ${DUALIGN_REQUEUE_ON_STOP:-0} == 1 && -n ${SLURM_JOB_ID:-} ]]; then
    echo "[launch] stopped with a checkpoint (exit 75): requeueing job $SLURM_JOB_ID; it resumes from the checkpoint" >&2
    scontrol requeue "$SLURM_JOB_ID"
  fi
  return "$rc"
}

_stoppable_forward() {
  _stoppable_signals=$((_stoppable_signals + 1))
  if ((_stoppable_signals == 1)); then
    echo "[launch] $1: asking the ranks to checkpoint after the next step and stop (Ctrl-C again to abort)" >&2
    kill -USR1 "$_stoppable_pid" 2>/dev/null || true
  elif [[ $1 == SIGINT ]]; then
    echo "[launch] SIGINT again: aborting the job" >&2
    kill -INT "$_stoppable_pid" 2>/dev/null || true
  fi
}
