// The CPU memory meter: exact byte counts for tensors, the peak and its reset, and the raw allocations oneDNN's
// convolutions make (they need the data pointer to be its own deleter context).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/device_memory.h"

using namespace dualign::dist;

namespace {
const c10::Device kCpu(c10::DeviceType::CPU);
}

TEST(DistDeviceMemory, MetersCpuTensorsExactly) {
  install_cpu_memory_meter();
  install_cpu_memory_meter();  // idempotent
  ASSERT_TRUE(cpu_memory_metered());
  const int64_t before = current_device_memory(kCpu);
  reset_peak_device_memory(kCpu);
  EXPECT_EQ(peak_device_memory(kCpu), before);
  {
    auto a = torch::empty({1000, 250}, torch::kFloat32);  // 1,000,000 bytes
    EXPECT_EQ(current_device_memory(kCpu) - before, 1'000'000);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % 64, 0u);  // c10's alignment is kept
    {
      auto b = torch::empty({500}, torch::kFloat64);  // 4,000 bytes
      EXPECT_EQ(current_device_memory(kCpu) - before, 1'004'000);
    }
    EXPECT_EQ(current_device_memory(kCpu) - before, 1'000'000);
  }
  EXPECT_EQ(current_device_memory(kCpu), before);
  EXPECT_EQ(peak_device_memory(kCpu) - before, 1'004'000);
  reset_peak_device_memory(kCpu);
  EXPECT_EQ(peak_device_memory(kCpu), before);
}

TEST(DistDeviceMemory, ConvolutionForwardAndBackwardBalance) {
  install_cpu_memory_meter();
  const int64_t before = current_device_memory(kCpu);
  {
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(8, 16, 3).padding(1));
    auto x = torch::randn({4, 8, 32, 32}, torch::requires_grad());
    conv(x).square().mean().backward();  // oneDNN kernels, autograd buffers
    EXPECT_TRUE(x.grad().defined());
    EXPECT_GT(current_device_memory(kCpu) - before, 4 * 8 * 32 * 32 * 4);  // at least x and its gradient
  }
  EXPECT_EQ(current_device_memory(kCpu), before);  // every metered byte came back
}
