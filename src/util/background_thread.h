// For threads that run beside the training thread (loader prefetch, communicator): their ATen ops (bucket
// scaling, dtype conversions) must not start OpenMP teams of their own. If they did, libgomp would manage more
// threads than there are cores and stop spinning between parallel regions, so every parallel region of the
// training thread would pay a futex wake-up.
#pragma once
#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace dualign {

// Call first thing in a background thread. Sets this thread's OpenMP team size to 1 through the OpenMP runtime
// that LibTorch loaded (at::set_num_threads would also change the process-wide default).
inline void make_background_thread_single_threaded() {
  (void)at::get_num_threads();  // ATen's once-per-thread init runs now, so it cannot undo the setting below
  using SetNumThreads = void (*)(int);
  static const auto omp_set_num_threads = reinterpret_cast<SetNumThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (omp_set_num_threads) omp_set_num_threads(1);
}

}  // namespace dualign
