// Pin intra-op threads for these tests (DUALIGN_THREADS, default 1): small tensors on a shared machine are far
// slower with spinning OpenMP workers. (The ENVIRONMENT of dualign_add_gtest only carries its first entry.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

namespace {
struct ThreadsEnvironment : ::testing::Environment {
  void SetUp() override {
    const char* n = std::getenv("DUALIGN_THREADS");
    at::set_num_threads(n ? std::max(1, std::atoi(n)) : 1);
  }
};
[[maybe_unused]] const auto* const kThreads = ::testing::AddGlobalTestEnvironment(new ThreadsEnvironment);
}  // namespace
