// A tiny training-like loop that fails on purpose, driven by dist_failure_test.sh:
//   dist_failure_probe throw  -> the last rank throws at step 3 (run_guarded must abort every rank)
//   dist_failure_probe hang   -> the last rank stops participating at step 3 (the watchdog must abort)
#include <torch/torch.h>

#include <chrono>
#include <string>
#include <thread>

#include "dist/comm.h"
#include "dist/runtime.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
  const auto& world = dualign::dist::init(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "throw";
  int rc = dualign::dist::run_guarded([&] {
    auto comm = dualign::dist::make_comm(world, torch::kCPU);
    const int victim = world.size - 1;
    for (int step = 0; step < 1000; ++step) {
      if (world.rank == victim && step == 3) {
        if (mode == "throw") dualign::fail("injected failure on rank {} at step {}", world.rank, step);
        std::this_thread::sleep_for(std::chrono::hours(1));  // "lost" rank: alive but silent
      }
      auto t = torch::ones({1024});
      comm->all_reduce(t, dualign::dist::ReduceOp::sum);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return 0;
  });
  dualign::dist::finalize();
  return rc;
}
