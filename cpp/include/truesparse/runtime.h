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
#pragma once

#include <string>

namespace truesparse {

void set_num_threads(int n);
int get_num_threads();
std::string mkl_version();

}  // namespace truesparse
