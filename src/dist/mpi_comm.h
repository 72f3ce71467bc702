// MPI backend of Comm for CPU tensors. Every collective runs on one communication thread, in the order it
// was issued (so async gradient buckets and blocking calls never reorder across ranks), using blocking MPI
// collectives on a private duplicate of MPI_COMM_WORLD. A watchdog thread aborts the job when the collective
// in flight exceeds comm_timeout_seconds().
// DUALIGN_MPI_POLL_US=N (N > 0) switches to non-blocking collectives polled every N microseconds: the comm
// thread then sleeps instead of spinning inside MPI, leaving the core to backward when ranks share cores.
#pragma once
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "dist/comm.h"

namespace dualign::dist {

class MpiComm : public Comm {
 public:
  explicit MpiComm(const World& world);
  ~MpiComm() override;

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }

  std::unique_ptr<Work> all_reduce_async(const at::Tensor& t, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(const at::Tensor& t, int root) override;
  std::unique_ptr<Work> all_gather_async(const at::Tensor& out, const at::Tensor& in) override;
  std::unique_ptr<Work> reduce_scatter_async(const at::Tensor& out, const at::Tensor& in, ReduceOp op) override;
  std::unique_ptr<Work> reduce_scatter_v_async(const at::Tensor& out, const at::Tensor& in,
                                             const std::vector<int64_t>& counts, ReduceOp op) override;
  void barrier() override;

  struct Task;  // one queued collective (defined in the .cpp)

 private:
  std::unique_ptr<Work> submit(std::string name, std::function<void()> run);
  void worker_loop();
  void watchdog_loop();
  void wait_polling(MPI_Request& request);  // MPI_Test + sleep(poll_us_) until complete

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_s_ = 600;
  int poll_us_ = 0;  // 0: blocking MPI collectives

  std::mutex mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::shared_ptr<Task>> queue_;
  bool stopping_ = false;
  std::thread worker_, watchdog_;
  std::condition_variable watchdog_cv_;

  // What the worker is inside right now (for the watchdog); guarded by mutex_.
  std::string in_flight_;
  std::chrono::steady_clock::time_point in_flight_since_;
  bool busy_ = false;
};

}  // namespace dualign::dist
