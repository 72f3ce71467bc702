// A world of one process behind the Comm interface: every collective is the identity. Unit tests use it to run
// methods and the composer without MPI, and mpirun tests as the single-process reference.
#pragma once
#include <torch/torch.h>

#include "dist/comm.h"

namespace dualign::test {

class SelfComm : public dist::Comm {
  struct Done : dist::Work {
    void wait() override {}
  };

 public:
  std::string backend() const override { return "self"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  std::unique_ptr<dist::Work> all_reduce_async(const at::Tensor&, dist::ReduceOp) override { return done(); }
  std::unique_ptr<dist::Work> broadcast_async(const at::Tensor&, int) override { return done(); }
  std::unique_ptr<dist::Work> all_gather_async(const at::Tensor& out, const at::Tensor& in) override {
    out.copy_(in.reshape(out.sizes()));
    return done();
  }
  std::unique_ptr<dist::Work> reduce_scatter_async(const at::Tensor& out, const at::Tensor& in,
                                                   dist::ReduceOp) override {
    out.copy_(in.reshape(out.sizes()));
    return done();
  }
  std::unique_ptr<dist::Work> reduce_scatter_v_async(const at::Tensor& out, const at::Tensor& in,
                                                     const std::vector<int64_t>&, dist::ReduceOp) override {
    out.copy_(in.reshape(out.sizes()));
    return done();
  }
  void barrier() override {}

 private:
  static std::unique_ptr<dist::Work> done() { return std::make_unique<Done>(); }
};

}  // namespace dualign::test
