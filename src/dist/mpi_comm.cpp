#include "dist/mpi_comm.h"

#include <torch/torch.h>

#include <cstdlib>

#include "util/background_thread.h"
#include "util/error.h"
#include "util/log.h"

namespace dualign::dist {

struct MpiComm::Task {
  std::string name;
  std::function<void()> run;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::string error;
};

namespace {

class MpiWork : public Work {
 public:
  explicit MpiWork(std::shared_ptr<MpiComm::Task> task) : task_(std::move(task)) {}
  void wait() override {
    std::unique_lock lock(task_->mutex);
    task_->cv.wait(lock, [&] { return task_->done; });
    if (!task_->error.empty()) throw Error(task_->error);
  }

 private:
  std::shared_ptr<MpiComm::Task> task_;
};

MPI_Datatype mpi_type(const at::Tensor& t, const char* op) {
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kInt: return MPI_INT32_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    case at::kBool: return MPI_C_BOOL;
    default: fail("{}: dtype {} has no MPI type (use float32/float64/int)", op, c10::toString(t.scalar_type()));
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return MPI_SUM;  // avg = sum, then divide
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  return MPI_SUM;
}

// MPI has no bfloat16/half: reduce those through a float32 copy.
bool needs_staging(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf; }

int count_of(const at::Tensor& t, const char* op) {
  DUALIGN_CHECK(t.numel() <= std::numeric_limits<int>::max(), "{}: {} elements exceed MPI's int count", op,
                t.numel());
  return static_cast<int>(t.numel());
}

std::string describe(const char* op, const at::Tensor& t) {
  return fmt::format("{} of {} x {}", op, t.numel(), c10::toString(t.scalar_type()));
}

}  // namespace

MpiComm::MpiComm(const World& world) : rank_(world.rank), size_(world.size), timeout_s_(comm_timeout_seconds()) {
  if (const char* env = std::getenv("DUALIGN_MPI_POLL_US"); env && *env) {
    poll_us_ = std::atoi(env);
    DUALIGN_CHECK(poll_us_ >= 0, "DUALIGN_MPI_POLL_US='{}': expected microseconds >= 0", env);
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
  worker_ = std::thread([this] { worker_loop(); });
  watchdog_ = std::thread([this] { watchdog_loop(); });
}

MpiComm::~MpiComm() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  watchdog_cv_.notify_all();
  worker_.join();
  watchdog_.join();
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Comm_free(&comm_);
}

std::unique_ptr<Work> MpiComm::submit(std::string name, std::function<void()> run) {
  auto task = std::make_shared<Task>();
  task->name = std::move(name);
  task->run = std::move(run);
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(task);
  }
  queue_cv_.notify_one();
  return std::make_unique<MpiWork>(task);
}

void MpiComm::worker_loop() {
  make_background_thread_single_threaded();
  for (;;) {
    std::shared_ptr<Task> task;
    {
      std::unique_lock lock(mutex_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = queue_.front();
      queue_.pop_front();
      busy_ = true;
      in_flight_ = task->name;
      in_flight_since_ = std::chrono::steady_clock::now();
    }
    std::string error;
    try {
      task->run();
    } catch (const std::exception& e) {
      error = e.what();
    }
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    {
      std::lock_guard lock(task->mutex);
      task->done = true;
      task->error = std::move(error);
    }
    task->cv.notify_all();
  }
}

void MpiComm::watchdog_loop() {
  const auto period = std::chrono::duration<double>(std::min(1.0, timeout_s_ / 4));
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    watchdog_cv_.wait_for(lock, period);
    if (stopping_ || !busy_) continue;
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - in_flight_since_).count();
    if (waited > timeout_s_) {
      std::string what = in_flight_;
      lock.unlock();
      abort_all(fmt::format("collective watchdog: {} on rank {} of {} did not complete within {:.0f} s; another "
                            "rank is probably dead, hung or on a different code path. Raise "
                            "DUALIGN_COMM_TIMEOUT_S if the step is legitimately slower",
                            what, rank_, size_, timeout_s_));
    }
  }
}

std::unique_ptr<Work> MpiComm::all_reduce_async(const at::Tensor& t, ReduceOp op) {
  check_collective_tensor(*this, t, "all_reduce", "t");
  DUALIGN_CHECK(op != ReduceOp::avg || t.is_floating_point(), "all_reduce avg needs a floating tensor, got {}",
                c10::toString(t.scalar_type()));
  return submit(describe("all_reduce", t), [this, t, op] {
    at::Tensor buf = needs_staging(t) ? t.to(at::kFloat) : t;
    if (poll_us_ == 0) {
      MPI_Allreduce(MPI_IN_PLACE, buf.data_ptr(), count_of(buf, "all_reduce"), mpi_type(buf, "all_reduce"),
                    mpi_op(op), comm_);
    } else {
      MPI_Request req;
      MPI_Iallreduce(MPI_IN_PLACE, buf.data_ptr(), count_of(buf, "all_reduce"), mpi_type(buf, "all_reduce"),
                     mpi_op(op), comm_, &req);
      wait_polling(req);
    }
    if (op == ReduceOp::avg) buf.div_(size_);
    if (!buf.is_same(t)) t.copy_(buf);
  });
}

std::unique_ptr<Work> MpiComm::broadcast_async(const at::Tensor& t, int root) {
  check_collective_tensor(*this, t, "broadcast", "t");
  DUALIGN_CHECK(root >= 0 && root < size_, "broadcast: root {} outside the world of {}", root, size_);
  return submit(describe("broadcast", t), [this, t, root] {
    at::Tensor buf = needs_staging(t) ? t.to(at::kFloat) : t;
    if (poll_us_ == 0) {
      MPI_Bcast(buf.data_ptr(), count_of(buf, "broadcast"), mpi_type(buf, "broadcast"), root, comm_);
    } else {
      MPI_Request req;
      MPI_Ibcast(buf.data_ptr(), count_of(buf, "broadcast"), mpi_type(buf, "broadcast"), root, comm_, &req);
      wait_polling(req);
    }
    if (!buf.is_same(t)) t.copy_(buf);
  });
}

std::unique_ptr<Work> MpiComm::all_gather_async(const at::Tensor& out, const at::Tensor& in) {
  check_collective_tensor(*this, out, "all_gather", "out");
  check_collective_tensor(*this, in, "all_gather", "in");
  DUALIGN_CHECK(out.numel() == in.numel() * size_ && out.scalar_type() == in.scalar_type(),
                "all_gather: out has {} x {}, expected {} x {} (world {} x in {})", out.numel(),
                c10::toString(out.scalar_type()), in.numel() * size_, c10::toString(in.scalar_type()), size_,
                in.numel());
  return submit(describe("all_gather", in), [this, out, in] {
    at::Tensor src = needs_staging(in) ? in.to(at::kFloat) : in;
    at::Tensor dst = needs_staging(out) ? torch::empty(out.sizes(), out.options().dtype(at::kFloat)) : out;
    if (poll_us_ == 0) {
      MPI_Allgather(src.data_ptr(), count_of(src, "all_gather"), mpi_type(src, "all_gather"), dst.data_ptr(),
                    count_of(src, "all_gather"), mpi_type(src, "all_gather"), comm_);
    } else {
      MPI_Request req;
      MPI_Iallgather(src.data_ptr(), count_of(src, "all_gather"), mpi_type(src, "all_gather"), dst.data_ptr(),
                     count_of(src, "all_gather"), mpi_type(src, "all_gather"), comm_, &req);
      wait_polling(req);
    }
    if (!dst.is_same(out)) out.copy_(dst);
  });
}

std::unique_ptr<Work> MpiComm::reduce_scatter_async(const at::Tensor& out, const at::Tensor& in, ReduceOp op) {
  check_collective_tensor(*this, out, "reduce_scatter", "out");
  check_collective_tensor(*this, in, "reduce_scatter", "in");
  DUALIGN_CHECK(in.numel() == out.numel() * size_ && out.scalar_type() == in.scalar_type(),
                "reduce_scatter: in has {} x {}, expected {} x {} (world {} x out {})", in.numel(),
                c10::toString(in.scalar_type()), out.numel() * size_, c10::toString(out.scalar_type()), size_,
                out.numel());
  return submit(describe("reduce_scatter", in), [this, out, in, op] {
    at::Tensor src = needs_staging(in) ? in.to(at::kFloat) : in;
    at::Tensor dst = needs_staging(out) ? torch::empty(out.sizes(), out.options().dtype(at::kFloat)) : out;
    if (poll_us_ == 0) {
      MPI_Reduce_scatter_block(src.data_ptr(), dst.data_ptr(), count_of(dst, "reduce_scatter"),
                               mpi_type(dst, "reduce_scatter"), mpi_op(op), comm_);
    } else {
      MPI_Request req;
      MPI_Ireduce_scatter_block(src.data_ptr(), dst.data_ptr(), count_of(dst, "reduce_scatter"),
                                mpi_type(dst, "reduce_scatter"), mpi_op(op), comm_, &req);
      wait_polling(req);
    }
    if (op == ReduceOp::avg) dst.div_(size_);
    if (!dst.is_same(out)) out.copy_(dst);
  });
}

std::unique_ptr<Work> MpiComm::reduce_scatter_v_async(const at::Tensor& out, const at::Tensor& in,
                                                      const std::vector<int64_t>& counts, ReduceOp op) {
  check_reduce_scatter_v(*this, out, in, counts);
  std::vector<int> recv_counts;
  for (int64_t c : counts) {
    DUALIGN_CHECK(c <= std::numeric_limits<int>::max(), "reduce_scatter_v: {} elements exceed MPI's int count", c);
    recv_counts.push_back(static_cast<int>(c));
  }
  return submit(describe("reduce_scatter_v", in), [this, out, in, op, recv_counts] {
    at::Tensor src = needs_staging(in) ? in.to(at::kFloat) : in;
    at::Tensor dst = needs_staging(out) ? torch::empty(out.sizes(), out.options().dtype(at::kFloat)) : out;
    const auto type = mpi_type(src, "reduce_scatter_v");
    if (poll_us_ == 0) {
      // One reduce per rank's segment, rooted at that rank (as the NCCL backend does): a ZeRO-2 bucket mostly lies
      // in one rank's slot, and OpenMPI 4.1's MPI_Reduce_scatter made bench_allreduce_overlap's ZeRO-2 step (np=2,
      // 94 MB in 5 buckets) 1.2x as slow as these reduces.
      int64_t offset = 0;
      for (int r = 0; r < size_; ++r) {
        const int n = recv_counts[static_cast<size_t>(r)];
        const char* segment = static_cast<const char*>(src.data_ptr()) + offset * src.element_size();
        if (n > 0) MPI_Reduce(segment, r == rank_ ? dst.data_ptr() : nullptr, n, type, mpi_op(op), r, comm_);
        offset += n;
      }
    } else {
      MPI_Request req;
      MPI_Ireduce_scatter(src.data_ptr(), dst.data_ptr(), recv_counts.data(), type, mpi_op(op), comm_, &req);
      wait_polling(req);
    }
    if (op == ReduceOp::avg) dst.div_(size_);
    if (!dst.is_same(out)) out.copy_(dst);
  });
}

void MpiComm::wait_polling(MPI_Request& request) {
  int done = 0;
  for (;;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::microseconds(poll_us_));
  }
}

void MpiComm::barrier() {
  submit("barrier", [this] { MPI_Barrier(comm_); })->wait();
}

}  // namespace dualign::dist
