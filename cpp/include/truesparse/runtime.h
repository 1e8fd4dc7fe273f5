// Process-wide runtime settings: one OpenMP runtime (libgomp) shared by MKL's GNU threading
// layer and our own loops, so one call sets both.
//
// fork: GNU OpenMP keeps its worker threads for the next parallel region; a child made by
// fork() inherits the bookkeeping of those threads but not the threads, so its first
// parallel region with more than one thread waits for them forever. A handler registered
// with pthread_atfork therefore puts a child on one thread when its parent had more than one
// thread at the fork (OpenMP's workers among them, or any other): the child trains and
// predicts on one thread, and set_num_threads(n > 1) there throws std::runtime_error (use
// the 'spawn' or 'forkserver' start method of multiprocessing for more threads per process).
// A parent with one thread (it never ran a parallel region) gives a child without limits.
//
// Adaptive threads: every kernel gives results that do not depend on the thread count, so a
// training loop may change its thread count between steps without changing what it computes.
// thread_governor uses that: it times the steps, runs a few on one thread now and then, and
// trains on one thread for a while when that was faster (another process busy on a core makes
// a two-thread step wait at every barrier for the thread that shares its core: measured 6×
// slower than one thread). On a quiet machine it keeps all the threads and costs a few probe
// steps (docs/design.md, "threads").
#pragma once

#include <string>

namespace truesparse {

void set_num_threads(int n);
int get_num_threads();
std::string mkl_version();

// On by default; TRUESPARSE_ADAPTIVE_THREADS=0 in the environment or set_adaptive_threads(false)
// keeps every step on the threads set with set_num_threads.
void set_adaptive_threads(bool on);
bool get_adaptive_threads();

class thread_governor {
 public:
  // Called at the start of a training loop: the thread count set now is the most it uses.
  void begin();
  // The threads for the next step (and sets them); then record() its time per example.
  int next();
  void record(double seconds_per_example);
  // Restores the thread count of begin().
  void end();
  // Steps run on one thread and on all threads since construction (for tests and benchmarks).
  long long steps_on_one() const { return on_one_; }
  long long steps_on_all() const { return on_all_; }

 private:
  enum class phase { warmup, probe, run };
  static constexpr int warmup_steps = 1, reference_run = 8, longest_probe = 32, first_run = 25,
                       longest_run = 800;
  int max_ = 1, current_ = 1, choice_ = 1;
  phase phase_ = phase::warmup;
  int left_ = warmup_steps, run_length_ = first_run;
  bool active_ = false;
  double run_sum_ = 0;  // seconds per example summed over the steps of the current run
  int run_count_ = 0;
  double chosen_ = 0, probe_sum_ = 0;
  int probe_count_ = 0;
  long long on_one_ = 0, on_all_ = 0;
  void set(int n);
};

}  // namespace truesparse
