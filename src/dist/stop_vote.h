// Agreement of all ranks on "stop now", one step late and without blocking the step: each step boundary reads
// the result of the vote started at the previous boundary (a non-blocking MPI all-reduce (max) of one int on
// the control plane, a private communicator beside the gradient traffic) and starts the next one. Every rank
// reads the same reduction at the same boundary, so all ranks stop after the same step. No device tensor is
// involved, so the vote adds no host-device synchronisation to a CUDA step.
#pragma once
#include <mpi.h>

namespace dualign::dist {

class StopVote {
 public:
  StopVote();   // starts the first vote (collective: every rank constructs it at the same point)
  ~StopVote();  // completes the vote in flight
  StopVote(const StopVote&) = delete;
  StopVote& operator=(const StopVote&) = delete;

  // At a step boundary (collective, every rank calls it once per step): the result of the vote started at
  // the previous boundary, or at construction; then starts the next vote with `local_request`. Returns true
  // when any rank requested a stop in the previous vote. Waits at most comm_timeout_seconds() for a lost rank.
  bool exchange(bool local_request);

 private:
  void finish_vote();  // MPI_Test + short sleeps until the vote in flight is complete

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Request request_ = MPI_REQUEST_NULL;
  int send_ = 0, result_ = 0;
};

}  // namespace dualign::dist
