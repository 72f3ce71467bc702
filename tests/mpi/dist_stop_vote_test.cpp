// StopVote: a request on one rank at step k is seen by every rank at boundary k+1 (one step late), never earlier,
// and never by a rank alone.
#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

#include "dist/runtime.h"
#include "dist/stop_vote.h"

TEST(StopVote, AllRanksStopAfterTheSameStep) {
  const auto& w = dualign::dist::world();
  for (int requester = 0; requester < w.size; ++requester) {
    dualign::dist::StopVote vote;
    const int request_step = 3 + requester;  // the boundary where `requester` asks
    int stopped_at = -1;
    for (int step = 0; step < 20 && stopped_at < 0; ++step)
      if (vote.exchange(w.rank == requester && step >= request_step)) stopped_at = step;
    EXPECT_EQ(stopped_at, request_step + 1) << "requester " << requester;
    int min = 0, max = 0;
    MPI_Allreduce(&stopped_at, &min, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&stopped_at, &max, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    EXPECT_EQ(min, max);
  }
}

TEST(StopVote, NoRequestNoStop) {
  dualign::dist::StopVote vote;
  for (int step = 0; step < 50; ++step) ASSERT_FALSE(vote.exchange(false));
}
