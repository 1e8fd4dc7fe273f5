// Flushing denormal floats to zero while training. Late in training, softmax gradients of
// confident examples underflow into the denormal range, where every multiply is ~100x slower
// on x86; deep-learning frameworks flush them (FTZ/DAZ), and so do we, for the duration of a
// scope, restoring the previous mode afterwards: on the calling thread (the helpers of
// parallel.h take its mode with each job) and on every thread of the OpenMP pool (MKL's).
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TRUESPARSE_HAS_MXCSR 1
#endif

#include <omp.h>

namespace truesparse {

class flush_denormals {
 public:
  flush_denormals() {
#ifdef TRUESPARSE_HAS_MXCSR
    saved_ = _mm_getcsr();
    set_all(saved_ | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
#endif
  }
  ~flush_denormals() {
#ifdef TRUESPARSE_HAS_MXCSR
    set_all(saved_);
#endif
  }
  flush_denormals(const flush_denormals&) = delete;
  flush_denormals& operator=(const flush_denormals&) = delete;

 private:
#ifdef TRUESPARSE_HAS_MXCSR
  static void set_all(unsigned mode) {
#pragma omp parallel
    _mm_setcsr(mode);
    _mm_setcsr(mode);
  }
  unsigned saved_ = 0;
#endif
};

}  // namespace truesparse
