// Counts the bytes the CPU allocator hands out, for tests that compare a memory formula with real allocations.
// counting_cpu_allocator() installs it on first use (SetCPUAllocator above the default's priority) for the rest of
// the process; tensors allocated through it are freed through it from any thread, so live() is exact. Measure
// differences of live() around what you test.
#pragma once
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdint>

namespace dualign::test {

class CountingCpuAllocator : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    auto* ctx = new Context{inner_->allocate(n), n, this};
    const int64_t now = live_ += int64_t(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    void* data = ctx->inner.get();
    return {data, ctx, &CountingCpuAllocator::release, c10::Device(c10::kCPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  int64_t live() const { return live_; }
  int64_t peak() const { return peak_; }
  void reset_peak() { peak_ = live_.load(); }

 private:
  friend CountingCpuAllocator& counting_cpu_allocator();
  explicit CountingCpuAllocator(c10::Allocator* inner) : inner_(inner) {}
  struct Context {
    c10::DataPtr inner;
    size_t n;
    CountingCpuAllocator* owner;
  };
  static void release(void* p) {
    auto* ctx = static_cast<Context*>(p);
    ctx->owner->live_ -= int64_t(ctx->n);
    delete ctx;
  }
  c10::Allocator* inner_;
  std::atomic<int64_t> live_{0}, peak_{0};
};

inline CountingCpuAllocator& counting_cpu_allocator() {
  static CountingCpuAllocator* instance = [] {
    auto* a = new CountingCpuAllocator(c10::GetCPUAllocator());  // never freed: tensors may outlive any scope
    c10::SetCPUAllocator(a, /*priority=*/100);
    return a;
  }();
  return *instance;
}

}  // namespace dualign::test
