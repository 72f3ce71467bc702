// Counts the bytes the CPU allocator hands out, for tests that compare a memory formula with real allocations.
// counting_cpu_allocator() installs it on first use (SetCPUAllocator above the default's priority) for the rest of
// the process; tensors allocated through it are freed through it from any thread, so live() is exact. Measure
// differences of live() around what you test.
#pragma once
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace dualign::test {

class CountingCpuAllocator : public c10::Allocator {
 public:
  // The data pointer is also the context (as the default CPU allocator's), so raw_allocate works too: some kernels
  // (reductions' scratch) allocate raw memory.
  c10::DataPtr allocate(size_t n) override {
    void* data = inner_->raw_allocate(n);
    if (data) {
      std::lock_guard<std::mutex> lock(mutex_);
      sizes_[data] = n;
    }
    const int64_t now = live_ += int64_t(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, data, &CountingCpuAllocator::release, c10::Device(c10::kCPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CountingCpuAllocator::release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  int64_t live() const { return live_; }
  int64_t peak() const { return peak_; }
  void reset_peak() { peak_ = live_.load(); }

 private:
  friend CountingCpuAllocator& counting_cpu_allocator();
  explicit CountingCpuAllocator(c10::Allocator* inner) : inner_(inner) {}
  static void release(void* p);
  c10::Allocator* inner_;
  std::atomic<int64_t> live_{0}, peak_{0};
  std::mutex mutex_;
  std::unordered_map<void*, size_t> sizes_;  // live allocations
};

inline CountingCpuAllocator& counting_cpu_allocator() {
  static CountingCpuAllocator* instance = [] {
    auto* a = new CountingCpuAllocator(c10::GetCPUAllocator());  // never freed: tensors may outlive any scope
    c10::SetCPUAllocator(a, /*priority=*/100);
    return a;
  }();
  return *instance;
}

inline void CountingCpuAllocator::release(void* p) {
  if (!p) return;
  auto& a = counting_cpu_allocator();
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(a.mutex_);
    auto it = a.sizes_.find(p);
    n = it->second;
    a.sizes_.erase(it);
  }
  a.live_ -= int64_t(n);
  a.inner_->raw_deallocate(p);
}

}  // namespace dualign::test
