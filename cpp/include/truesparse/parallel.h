// The one way the core runs work on several threads: a job cut into chunks that the calling
// thread and the pool's helper threads claim one at a time, from a shared counter.
//
// Why not OpenMP's parallel regions (which the core used before): a region ends only when every
// thread of its team has run it. When another process is busy on one of the cores, the thread
// that shares that core loses turns of milliseconds, and every region (tens of microseconds,
// about ten per training step) then waits for it. Here the calling thread never waits for a
// helper to *start*: it claims chunks itself until none is left, so a helper that has lost its
// core costs nothing unless it holds a chunk, and then at most that chunk (the caller sleeps,
// so the scheduler may move the helper to the freed core). A quiet machine gets both cores.
//
// Results do not depend on which thread runs a chunk: every chunk writes its own outputs, and
// the chunks of a job are fixed by its size, never by the thread count (the kernels'
// determinism, docs/design.md "threads"). Each helper takes the caller's floating-point mode
// (MXCSR: flush_denormals) for each job.
//
// The thread count is OpenMP's setting (set_num_threads, the governor's); MKL's own threaded
// routines (the mkl backend) still run on OpenMP's threads. A job started while the pool is
// running another one (a second thread of the user's, or a chunk that starts a job of its own)
// runs on its calling thread alone: the same results.
#pragma once

#include <omp.h>

#include <algorithm>

#include "truesparse/common.h"

namespace truesparse {

namespace detail {
// Runs fn(ctx, c) for every chunk c in [0, chunks), on the calling thread and up to
// threads - 1 helpers; returns when all have run. An exception thrown by a chunk terminates
// (chunks must not throw: they are kernels' inner loops).
void run_chunks(int chunks, int threads, void (*fn)(const void*, int), const void* ctx);
}  // namespace detail

// The threads a job may use: OpenMP's setting for the calling thread.
inline int pool_threads() { return omp_get_max_threads(); }

// body(c) for every chunk c in [0, chunks), in any order, on up to `threads` threads.
template <class Body>
void parallel_chunks(int chunks, int threads, const Body& body) {
  if (chunks <= 0) return;
  if (threads <= 1 || chunks == 1) {
    for (int c = 0; c < chunks; ++c) body(c);
    return;
  }
  detail::run_chunks(
      chunks, threads, [](const void* ctx, int c) { (*static_cast<const Body*>(ctx))(c); }, &body);
}

// The number of chunks of a job of `items` independent items on `threads` threads: several per
// thread (a thread that loses its core leaves its share to the others), but never depending
// on the thread count beyond "one or more" (a job on one thread is one chunk).
inline int chunk_count(size_type items, int threads) {
  constexpr size_type per_job = 16;
  return threads <= 1 ? 1 : static_cast<int>(std::max<size_type>(1, std::min(items, per_job)));
}

// body(begin, end) over [0, n) cut into ranges, in parallel when `parallel` (and the pool has
// more than one thread): the replacement of "#pragma omp parallel for schedule(static) if (...)"
// for loops whose iterations are independent.
template <class Body>
void parallel_for(size_type n, bool parallel, const Body& body) {
  if (n <= 0) return;
  const int threads = parallel ? pool_threads() : 1;
  const int chunks = chunk_count(n, threads);
  parallel_chunks(chunks, threads, [&](int c) {
    const size_type b = n * c / chunks, e = n * (c + 1) / chunks;
    body(b, e);
  });
}

}  // namespace truesparse
