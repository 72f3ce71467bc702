// main() for the dist MPI test binaries: start the runtime, run GoogleTest (only rank 0 prints), stop.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/runtime.h"

int main(int argc, char** argv) {
  const auto& world = dualign::dist::init(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  torch::set_num_threads(1);
  if (world.rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  dualign::dist::finalize();
  return rc;
}
