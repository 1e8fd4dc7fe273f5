// Thread control and library information (see runtime.h).
#include "truesparse/runtime.h"

#include <dirent.h>
#include <mkl.h>
#include <omp.h>
#include <pthread.h>

#include <stdexcept>

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

std::string mkl_version() {
  MKLVersion v;
  mkl_get_version(&v);
  return msg(v.MajorVersion, ".", v.MinorVersion, ".", v.UpdateVersion);
}

}  // namespace truesparse
