// The collective-communication interface dualign owns. Two backends: MPI on CPU tensors (CI, laptops) and
// NCCL on CUDA tensors (clusters, bootstrapped from MPI). Every collective is issued in program order, which
// must be identical on all ranks; the *_async forms return a Work to wait on, so communication can overlap
// computation (gradient buckets during backward). A watchdog aborts the job when a collective exceeds
// comm_timeout_seconds(), so a lost rank never leaves the others hanging silently.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/runtime.h"

namespace dualign::dist {

enum class ReduceOp { sum, avg, max, min };
const char* to_string(ReduceOp op);

// Handle of an issued collective. wait() returns when the result is in the tensor (for NCCL: ordered before
// later work on the caller's current CUDA stream). Waiting twice is allowed.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual std::string backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual c10::Device device() const = 0;  // where tensors given to this communicator must live

  // All tensors must be contiguous and on device(). In-place on `t`; `out`/`in` must not overlap.
  virtual std::unique_ptr<Work> all_reduce_async(const at::Tensor& t, ReduceOp op) = 0;
  virtual std::unique_ptr<Work> broadcast_async(const at::Tensor& t, int root) = 0;
  // out.numel() == size() * in.numel(); rank r's `in` lands at out[r * in.numel() ...].
  virtual std::unique_ptr<Work> all_gather_async(const at::Tensor& out, const at::Tensor& in) = 0;
  // in.numel() == size() * out.numel(); rank r receives the reduction of in[r * out.numel() ...].
  virtual std::unique_ptr<Work> reduce_scatter_async(const at::Tensor& out, const at::Tensor& in, ReduceOp op) = 0;
  // The uneven form: in.numel() == Σ counts (one count per rank, segments in rank order); rank r receives the
  // reduction of its segment, out.numel() == counts[rank()] (0 allowed). ZeRO-2 reduces a bucket of its flat
  // gradient that straddles the ranks' slots with it.
  virtual std::unique_ptr<Work> reduce_scatter_v_async(const at::Tensor& out, const at::Tensor& in,
                                                       const std::vector<int64_t>& counts, ReduceOp op) = 0;
  virtual void barrier() = 0;

  void all_reduce(const at::Tensor& t, ReduceOp op = ReduceOp::sum) { all_reduce_async(t, op)->wait(); }
  void broadcast(const at::Tensor& t, int root = 0) { broadcast_async(t, root)->wait(); }
  void all_gather(const at::Tensor& out, const at::Tensor& in) { all_gather_async(out, in)->wait(); }
  void reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp op = ReduceOp::sum) {
    reduce_scatter_async(out, in, op)->wait();
  }

  // Scalar helpers (host values in, host values out; staged through a tiny tensor on device()).
  double all_reduce_double(double value, ReduceOp op = ReduceOp::sum);
  int64_t all_reduce_int64(int64_t value, ReduceOp op = ReduceOp::sum);
  int64_t broadcast_int64(int64_t value, int root = 0);
  double broadcast_double(double value, int root = 0);
  std::vector<double> all_reduce_doubles(const std::vector<double>& values, ReduceOp op = ReduceOp::sum);
};

// MPI backend for a CPU device; NCCL backend for a CUDA device (only in builds with DUALIGN_WITH_NCCL).
std::unique_ptr<Comm> make_comm(const World& world, c10::Device device);

// Checks the shared preconditions of a collective argument and names the op and argument when they fail.
void check_collective_tensor(const Comm& comm, const at::Tensor& t, const char* op, const char* arg);
// reduce_scatter_v's shape checks: one count >= 0 per rank, Σ counts == in.numel(), out.numel() == counts[rank].
void check_reduce_scatter_v(const Comm& comm, const at::Tensor& out, const at::Tensor& in,
                            const std::vector<int64_t>& counts);

}  // namespace dualign::dist
