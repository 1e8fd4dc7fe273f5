// The chunk pool of parallel.h.
//
// One job at a time: the word `state` holds (job number, chunks, next unclaimed chunk). A
// thread claims a chunk by a compare-and-swap of the whole word, so a claim can only succeed
// for the job the word names; the job's function and context (written before the word is
// published) stay valid until every chunk of it is done, which the caller waits for before it
// starts another. Helpers spin for a short while after a job (the next one of a training step
// comes within microseconds), then sleep on a futex; the caller, waiting for chunks that helpers
// hold, spins for less and sleeps too (its core is then free for the helper it waits for).
#include "truesparse/parallel.h"

#include <pthread.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TRUESPARSE_POOL_MXCSR 1
#endif

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace truesparse::detail {

namespace {

inline void pause() {
#ifdef TRUESPARSE_POOL_MXCSR
  _mm_pause();
#endif
}

// Sleeps while *word == expected (or until woken; spurious returns are fine: callers loop).
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr,
          0);
#else
  (void)word;
  (void)expected;
  std::this_thread::yield();
#endif
}

void futex_wake_all(std::atomic<std::uint32_t>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr,
          nullptr, 0);
#else
  (void)word;
#endif
}

using steady = std::chrono::steady_clock;

// How long a helper spins for the next job, and the caller for the chunks helpers hold, before
// sleeping. The jobs of a training step come microseconds apart; a helper asleep costs the
// caller nothing but the help it would have given (the caller never waits for it to start).
constexpr auto helper_spin = std::chrono::microseconds(50);
constexpr auto caller_spin = std::chrono::microseconds(10);

class chunk_pool {
 public:
  void run(int chunks, int threads, void (*fn)(const void*, int), const void* ctx) {
    if (owned_.exchange(true, std::memory_order_acquire)) {  // busy: this job runs here alone
      for (int c = 0; c < chunks; ++c) fn(ctx, c);
      return;
    }
    const int helpers = std::min(threads - 1, max_helpers);
    while (static_cast<int>(started_) < helpers) start_helper();
    fn_ = fn;
    ctx_ = ctx;
    helpers_wanted_ = helpers;
#ifdef TRUESPARSE_POOL_MXCSR
    mxcsr_ = _mm_getcsr();
#endif
    done_.store(0, std::memory_order_relaxed);
    job_ = (job_ + 1) & job_mask;
    state_.store(pack(job_, static_cast<std::uint64_t>(chunks), 0), std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) > 0) {
      wake_.fetch_add(1, std::memory_order_seq_cst);
      futex_wake_all(wake_);
    }
    int mine = 0;
    for (int c; (c = claim()) >= 0; ++mine) fn(ctx, c);
    // wait for the chunks that helpers hold: spin briefly, then sleep until the last one ends
    const auto others = static_cast<std::uint32_t>(chunks - mine);
    if (done_.load(std::memory_order_acquire) < others) {
      const auto until = steady::now() + caller_spin;
      while (done_.load(std::memory_order_acquire) < others && steady::now() < until) pause();
      for (std::uint32_t d; (d = done_.load(std::memory_order_seq_cst)) < others;) {
        caller_sleeps_.store(true, std::memory_order_seq_cst);
        if ((d = done_.load(std::memory_order_seq_cst)) < others) futex_wait(done_, d);
        caller_sleeps_.store(false, std::memory_order_relaxed);
      }
    }
    owned_.store(false, std::memory_order_release);
  }

  // After fork(): the child has none of the helpers, and maybe a job that one of its parent's
  // other threads was running; it starts over (no allocation: only atomic stores).
  void reset_in_child() {
    started_.store(0);
    sleeping_.store(0);
    caller_sleeps_.store(false);
    owned_.store(false);
  }

  // Trivially destructible: helpers still sleeping at exit() never see it destroyed.
  static chunk_pool& instance() {
    static chunk_pool p;
    return p;
  }

 private:
  static constexpr int max_helpers = 255;
  static constexpr std::uint64_t job_mask = (std::uint64_t(1) << 32) - 1;
  static std::uint64_t pack(std::uint64_t job, std::uint64_t chunks, std::uint64_t next) {
    return job << 32 | chunks << 16 | next;
  }

  // The next chunk of the current job, or -1 when all are claimed.
  int claim() {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      const auto chunks = static_cast<int>(s >> 16 & 0xffff), next = static_cast<int>(s & 0xffff);
      if (next >= chunks) return -1;
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        return next;
    }
  }

  void start_helper() {
    const int id = started_++;
    std::thread([this, id] { helper(id); }).detach();
  }

  void helper(int id) {
    std::uint64_t seen = state_.load(std::memory_order_acquire) >> 32;
    for (;;) {
      // wait for a new job: spin, then sleep until run() publishes one
      std::uint64_t s;
      auto until = steady::now() + helper_spin;
      while ((s = state_.load(std::memory_order_acquire)) >> 32 == seen) {
        if (steady::now() < until) {
          pause();
          continue;
        }
        const std::uint32_t w = wake_.load(std::memory_order_seq_cst);
        sleeping_.fetch_add(1, std::memory_order_seq_cst);
        if (state_.load(std::memory_order_seq_cst) >> 32 == seen) futex_wait(wake_, w);
        sleeping_.fetch_sub(1, std::memory_order_seq_cst);
        until = steady::now() + helper_spin;
      }
      seen = s >> 32;
      if (id >= helpers_wanted_.load(std::memory_order_relaxed)) continue;
      bool first = true;
      for (int c; (c = claim()) >= 0;) {
        if (first) {  // the claim proves the job's fields are the current job's
#ifdef TRUESPARSE_POOL_MXCSR
          if (_mm_getcsr() != mxcsr_) _mm_setcsr(mxcsr_);
#endif
          first = false;
        }
        fn_(ctx_, c);
        done_.fetch_add(1, std::memory_order_seq_cst);
        if (caller_sleeps_.load(std::memory_order_seq_cst)) futex_wake_all(done_);
      }
    }
  }

  alignas(64) std::atomic<std::uint64_t> state_{0};
  alignas(64) std::atomic<std::uint32_t> done_{0};
  std::atomic<bool> caller_sleeps_{false};
  alignas(64) std::atomic<std::uint32_t> wake_{0};
  std::atomic<int> sleeping_{0};
  alignas(64) std::atomic<bool> owned_{false};
  std::atomic<int> started_{0};
  std::atomic<int> helpers_wanted_{0};
  std::uint64_t job_ = 0;
  void (*fn_)(const void*, int) = nullptr;
  const void* ctx_ = nullptr;
  unsigned mxcsr_ = 0;
};

void pool_in_child() { chunk_pool::instance().reset_in_child(); }
[[maybe_unused]] const int pool_fork_handler = pthread_atfork(nullptr, nullptr, pool_in_child);

}  // namespace

void run_chunks(int chunks, int threads, void (*fn)(const void*, int), const void* ctx) {
  TS_ASSERT(chunks > 0 && chunks <= 0xffff && threads > 1);
  chunk_pool::instance().run(chunks, threads, fn, ctx);
}

}  // namespace truesparse::detail
