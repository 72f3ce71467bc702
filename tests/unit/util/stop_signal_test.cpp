// The stop handlers: a signal is recorded (not fatal), the first one is remembered, the previous handlers come
// back afterwards, and a second SIGINT exits at once with 128 + SIGINT (in a forked child: a death test).
#include <gtest/gtest.h>
#include <signal.h>

#include "util/stop_signal.h"

using dualign::StopSignals;

TEST(StopSignals, RecordsTheFirstSignalWithoutDying) {
  {
    StopSignals handlers;
    EXPECT_FALSE(StopSignals::requested());
    raise(SIGUSR1);
    EXPECT_TRUE(StopSignals::requested());
    raise(SIGTERM);
    EXPECT_EQ(StopSignals::first_signal(), SIGUSR1);
  }
  struct sigaction now {};
  sigaction(SIGTERM, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);  // restored
}

TEST(StopSignals, OneInstanceAtATime) {
  StopSignals handlers;
  EXPECT_THROW(StopSignals{}, std::exception);
}

TEST(StopSignalsDeathTest, SecondSigintExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StopSignals handlers;
        raise(SIGINT);
        if (!StopSignals::requested()) std::_Exit(1);
        raise(SIGINT);  // does not return
        std::_Exit(2);
      },
      testing::ExitedWithCode(128 + SIGINT), "second SIGINT");
}

TEST(StopSignalsDeathTest, TerminationSignalsDoNotEscalate) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StopSignals handlers;
        raise(SIGTERM);
        raise(SIGTERM);
        raise(SIGUSR1);
        std::_Exit(StopSignals::requested() ? 3 : 4);
      },
      testing::ExitedWithCode(3), "SIGTERM: checkpointing");
}
