#include "dist/stop_vote.h"

#include <chrono>
#include <exception>
#include <thread>

#include "dist/runtime.h"
#include "util/error.h"

namespace dualign::dist {

StopVote::StopVote() {
  MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
  MPI_Iallreduce(&send_, &result_, 1, MPI_INT, MPI_MAX, comm_, &request_);
}

StopVote::~StopVote() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  // Unwinding from an error: run_guarded is about to MPI_Abort; do not wait for ranks that may never vote again.
  if (finalized || std::uncaught_exceptions() > 0) return;
  finish_vote();
  MPI_Comm_free(&comm_);
}

void StopVote::finish_vote() {
  if (request_ == MPI_REQUEST_NULL) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(comm_timeout_seconds());
  for (int done = 0;;) {
    MPI_Test(&request_, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (std::chrono::steady_clock::now() > deadline)
      abort_all(fmt::format("stop vote: the ranks did not all reach the step boundary within {:.0f} s; another rank "
                            "is probably dead or hung (raise DUALIGN_COMM_TIMEOUT_S if steps are that slow)",
                            comm_timeout_seconds()));
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

bool StopVote::exchange(bool local_request) {
  finish_vote();  // started one step ago: normally complete already
  const bool stop = result_ != 0;
  send_ = local_request ? 1 : 0;
  MPI_Iallreduce(&send_, &result_, 1, MPI_INT, MPI_MAX, comm_, &request_);
  return stop;
}

}  // namespace dualign::dist
