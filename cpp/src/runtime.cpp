// Thread control and library information (see runtime.h).
#include "truesparse/runtime.h"

#include <dirent.h>
#include <mkl.h>
#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "truesparse/common.h"

namespace truesparse {

namespace {

// Set in a child forked while its parent had other threads; inherited by its own children
// (they inherit the same stale OpenMP bookkeeping).
bool forked_single = false;
// Threads of the parent counted just before fork() (prepare handler).
int threads_before_fork = 0;

// The number of threads of this process, from /proc/self/task; 2 (that is, "more than one")
// when it cannot be read, so that the child errs on the safe side.
int count_threads() {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return 2;
  int n = 0;
  while (const dirent* e = readdir(dir))
    if (e->d_name[0] != '.') ++n;
  closedir(dir);
  return n;
}

void before_fork() { threads_before_fork = count_threads(); }

// Runs in the child, which has one thread: only setting the thread counts, no allocation.
void in_child() {
  if (threads_before_fork > 1) forked_single = true;
  if (forked_single) {
    omp_set_num_threads(1);
    mkl_set_num_threads(1);
  }
}

[[maybe_unused]] const int fork_handlers = pthread_atfork(before_fork, nullptr, in_child);

}  // namespace

void set_num_threads(int n) {
  TS_REQUIRE(n >= 1, "[set_num_threads] the number of threads must be at least 1, got ", n);
  if (forked_single && n > 1)
    throw std::runtime_error(
        msg("[set_num_threads] this process was forked from one that had other threads running, so "
            "GNU OpenMP cannot start threads in it: it runs on 1 thread (asked for ",
            n,
            "). For more threads per process, start processes with multiprocessing's 'spawn' or "
            "'forkserver' method"));
  omp_set_num_threads(n);
  mkl_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

namespace {
std::atomic<bool> adaptive_threads{[] {
  const char* v = std::getenv("TRUESPARSE_ADAPTIVE_THREADS");
  return !(v && std::string(v) == "0");
}()};

}  // namespace

void set_adaptive_threads(bool on) { adaptive_threads = on; }
bool get_adaptive_threads() { return adaptive_threads; }

void thread_governor::set(int n) {
  if (n == current_) return;
  omp_set_num_threads(n);
  mkl_set_num_threads_local(n);
  current_ = n;
}

void thread_governor::begin() {
  const int max = omp_get_max_threads();
  active_ = adaptive_threads && max > 1;
  if (max != max_) {  // a new thread setting: start over
    max_ = max;
    choice_ = max;
    phase_ = phase::warmup;
    left_ = warmup_steps;
    run_length_ = first_run;
    run_sum_ = 0;
    run_count_ = 0;
  }
  current_ = max;
}

int thread_governor::next() {
  if (active_) {
    // The probe runs the configuration not chosen; warm-up and runs use the chosen one.
    set(phase_ == phase::probe ? (choice_ == 1 ? max_ : 1) : choice_);
  }
  return current_;
}

// warm-up (a step on the chosen threads, not timed) -> run (timed) -> probe (the other thread
// count) -> the winner becomes the choice -> run -> probe -> ...
// A run is 8 steps after the warm-up, then 25, doubling up to 800 while the choice holds. A
// probe is a sequential test against the mean step time c of the whole run before it: it loses as soon as its
// steps have taken 2 c longer than the run's would have (a two-thread step that stalls because its second
// thread lost its core, or one-thread steps on a quiet machine, lose within a few steps), and wins after 32
// steps that were faster (by 5 % for one thread: all the threads are the user's setting).
void thread_governor::record(double seconds_per_example) {
  (current_ == 1 ? on_one_ : on_all_) += 1;
  if (!active_) return;
  switch (phase_) {
    case phase::warmup:
      if (--left_ == 0) {
        phase_ = phase::run;
        left_ = reference_run;
        run_sum_ = 0;
        run_count_ = 0;
      }
      return;
    case phase::run:
      run_sum_ += seconds_per_example;
      ++run_count_;
      if (--left_ == 0) {
        phase_ = phase::probe;
        // a mean, not a median: the stalls of a step whose thread lost its core are what a
        // slower configuration costs
        chosen_ = run_sum_ / run_count_;
        probe_sum_ = 0;
        probe_count_ = 0;
      }
      return;
    case phase::probe: {
      probe_sum_ += seconds_per_example;
      ++probe_count_;
      const double expected = chosen_ * probe_count_;
      const bool lost = probe_sum_ > expected + 2 * chosen_;
      if (!lost && probe_count_ < longest_probe) return;
      const int probed = choice_ == 1 ? max_ : 1;
      const bool won = !lost && probe_sum_ < (probed == 1 ? 0.95 : 1.0) * expected;
      if (won) {
        choice_ = probed;
        run_length_ = first_run;
      } else {
        run_length_ = std::min(2 * run_length_, longest_run);
      }
      phase_ = phase::run;
      left_ = run_length_;
      run_sum_ = 0;
      run_count_ = 0;
      return;
    }
  }
}

void thread_governor::end() {
  if (current_ != max_) {
    omp_set_num_threads(max_);
    mkl_set_num_threads_local(0);
    current_ = max_;
  }
}

std::string mkl_version() {
  MKLVersion v;
  mkl_get_version(&v);
  return msg(v.MajorVersion, ".", v.MinorVersion, ".", v.UpdateVersion);
}

}  // namespace truesparse
