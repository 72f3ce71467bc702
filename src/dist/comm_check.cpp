#include "dist/comm_check.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "dist/gpu_stack.h"
#include "util/error.h"

namespace dualign::dist {
namespace {

using Clock = std::chrono::steady_clock;

// Rank r sends (r + 1) * pattern, pattern_i = 1 + i % 3: every sum is a small integer, exact in bf16 too
// (up to 85 ranks), and the average (pattern * (n + 1) / 2) is a half-integer.
AllReduceCheck run_check(Comm& comm, at::ScalarType dtype, int64_t elements, ReduceOp op) {
  const int n = comm.size();
  auto opts = torch::TensorOptions().dtype(dtype).device(comm.device());
  auto pattern = (torch::arange(elements, opts.dtype(torch::kInt64)) % 3 + 1).to(torch::kFloat64);
  auto t = (pattern * (comm.rank() + 1)).to(dtype);
  comm.all_reduce(t, op);
  const double factor = op == ReduceOp::sum ? n * (n + 1) / 2.0 : (n + 1) / 2.0;
  const double local = (t.to(torch::kFloat64) - pattern * factor).abs().max().item<double>();
  AllReduceCheck c;
  c.what = fmt::format("{} {} x {}", to_string(op), c10::toString(dtype), elements);
  c.max_error = comm.all_reduce_double(local, ReduceOp::max);
  const double tolerance = op == ReduceOp::sum ? 0.0 : 1e-6 * 3 * factor;
  c.ok = c.max_error <= tolerance;
  return c;
}

}  // namespace

std::vector<AllReduceCheck> check_all_reduce(Comm& comm) {
  std::vector<AllReduceCheck> out;
  for (int64_t elements : {int64_t(1), int64_t(1000), int64_t((1 << 20) + 3)})
    for (auto dtype : {at::kFloat, at::kBFloat16}) out.push_back(run_check(comm, dtype, elements, ReduceOp::sum));
  out.push_back(run_check(comm, at::kFloat, (1 << 16) + 1, ReduceOp::avg));
  return out;
}

std::vector<BandwidthPoint> all_reduce_bandwidth(Comm& comm, int64_t min_bytes, int64_t max_bytes,
                                                 double seconds_per_size) {
  DUALIGN_CHECK(min_bytes >= 4 && max_bytes >= min_bytes, "bandwidth sweep: sizes {}..{} bytes (need 4 <= min <= max)",
                min_bytes, max_bytes);
  const int n = comm.size();
  std::vector<int64_t> sizes;
  for (int64_t b = min_bytes; b < max_bytes; b *= 4) sizes.push_back(b);
  sizes.push_back(max_bytes);
  std::vector<BandwidthPoint> out;
  for (int64_t bytes : sizes) {
    auto t = torch::ones({bytes / 4}, torch::TensorOptions().dtype(torch::kFloat32).device(comm.device()));
    auto timed = [&](int iterations) {  // back to back, then wait for the last one everywhere
      comm.barrier();
      const auto start = Clock::now();
      std::vector<std::unique_ptr<Work>> work;
      for (int i = 0; i < iterations; ++i) work.push_back(comm.all_reduce_async(t, ReduceOp::sum));
      for (auto& w : work) w->wait();
      synchronize_device(comm.device());
      return std::chrono::duration<double>(Clock::now() - start).count();
    };
    const double first = timed(1);  // warm-up; also sizes the repeat count (the same on every rank)
    const int iterations = static_cast<int>(
        comm.broadcast_int64(std::clamp<int64_t>(static_cast<int64_t>(seconds_per_size / std::max(first, 1e-6)), 1, 20)));
    BandwidthPoint p;
    p.bytes = bytes;
    p.iterations = iterations;
    p.seconds = comm.broadcast_double(timed(iterations) / iterations);
    p.algbw_gbps = double(bytes) / p.seconds / 1e9;
    p.busbw_gbps = p.algbw_gbps * 2.0 * (n - 1) / n;
    out.push_back(p);
  }
  return out;
}

}  // namespace dualign::dist
