// NCCL backend of Comm for CUDA tensors (one GPU per rank). Bootstrapped from MPI: rank 0 creates the
// unique id, MPI_Bcast shares it, every rank calls ncclCommInitRank on its device. Collectives run on a
// dedicated stream ordered after the caller's current stream; Work::wait() makes the caller's current
// stream wait for them (the host does not block). A watchdog thread polls the completion events and aborts
// the job when one is older than comm_timeout_seconds(). Compiled only when DUALIGN_WITH_NCCL.
#pragma once
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "dist/comm.h"

namespace c10::cuda {
struct CUDAEvent;
}

namespace dualign::dist {

class NcclComm : public Comm {
 public:
  NcclComm(const World& world, c10::Device device);
  ~NcclComm() override;

  std::string backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  c10::Device device() const override { return device_; }

  std::unique_ptr<Work> all_reduce_async(const at::Tensor& t, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(const at::Tensor& t, int root) override;
  std::unique_ptr<Work> all_gather_async(const at::Tensor& out, const at::Tensor& in) override;
  std::unique_ptr<Work> reduce_scatter_async(const at::Tensor& out, const at::Tensor& in, ReduceOp op) override;
  std::unique_ptr<Work> reduce_scatter_v_async(const at::Tensor& out, const at::Tensor& in,
                                             const std::vector<int64_t>& counts, ReduceOp op) override;
  void barrier() override;

 private:
  struct Pending {
    std::shared_ptr<c10::cuda::CUDAEvent> done;
    std::string name;
    std::chrono::steady_clock::time_point since;
  };
  // Orders the comm stream after the current stream, runs `launch` on it, records completion.
  std::unique_ptr<Work> enqueue(const std::string& name, const std::vector<at::Tensor>& tensors,
                                const std::function<ncclResult_t(cudaStream_t)>& launch);
  void watchdog_loop();

  ncclComm_t comm_ = nullptr;
  int rank_ = 0, size_ = 1;
  c10::Device device_;
  c10::cuda::CUDAStream stream_;
  double timeout_s_ = 600;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace dualign::dist
