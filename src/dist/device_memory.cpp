#include "dist/device_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <mutex>

#if DUALIGN_HAVE_NCCL_BACKEND
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace dualign::dist {
namespace {

// Forwards every allocation to LibTorch's own CPU allocator and counts the bytes its tensors hold. Each block
// is allocated 64 bytes longer and its size kept in that header, so the data pointer stays 64-byte aligned and
// is its own deleter context: raw_allocate (oneDNN's scratch buffers) requires that.
class MeteredCPUAllocator final : public c10::Allocator {
 public:
  explicit MeteredCPUAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t bytes) override {
    auto* block = static_cast<char*>(inner_->raw_allocate(bytes + kHeader));
    *reinterpret_cast<size_t*>(block) = bytes;
    add(static_cast<int64_t>(bytes));
    void* data = block + kHeader;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  int64_t current() const { return current_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(current_.load()); }

 private:
  static constexpr size_t kHeader = 64;  // c10's CPU alignment
  static void release(void* data);

  void add(int64_t delta) {
    const int64_t now = current_.fetch_add(delta) + delta;
    int64_t seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
  }

  c10::Allocator* inner_;
  std::atomic<int64_t> current_{0}, peak_{0};
};

MeteredCPUAllocator* g_meter = nullptr;  // never freed: tensors may outlive every other static
std::once_flag g_install;

void MeteredCPUAllocator::release(void* data) {
  if (data == nullptr) return;
  char* block = static_cast<char*>(data) - kHeader;
  g_meter->add(-static_cast<int64_t>(*reinterpret_cast<size_t*>(block)));
  g_meter->inner_->raw_deallocate(block);
}

}  // namespace

void install_cpu_memory_meter() {
  std::call_once(g_install, [] {
    g_meter = new MeteredCPUAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(g_meter, /*priority=*/1);  // above the default allocator's registration (0)
  });
}

bool cpu_memory_metered() { return g_meter != nullptr; }

#if DUALIGN_HAVE_NCCL_BACKEND
namespace {
c10::CachingAllocator::Stat cuda_allocated_bytes(const c10::Device& device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
}
}  // namespace
#endif

int64_t current_device_memory(const c10::Device& device) {
#if DUALIGN_HAVE_NCCL_BACKEND
  if (device.is_cuda()) return cuda_allocated_bytes(device).current;
#endif
  return device.is_cpu() && g_meter ? g_meter->current() : -1;
}

int64_t peak_device_memory(const c10::Device& device) {
#if DUALIGN_HAVE_NCCL_BACKEND
  if (device.is_cuda()) return cuda_allocated_bytes(device).peak;
#endif
  return device.is_cpu() && g_meter ? g_meter->peak() : -1;
}

void reset_peak_device_memory(const c10::Device& device) {
#if DUALIGN_HAVE_NCCL_BACKEND
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
  if (device.is_cpu() && g_meter) g_meter->reset_peak();
}

}  // namespace dualign::dist
