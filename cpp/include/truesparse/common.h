// Shared basics of the truesparse core: index types, error reporting, aligned storage.
// User errors throw std::invalid_argument (Python sees ValueError); internal invariants are
// debug assertions (TS_ASSERT), compiled out in release builds.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace truesparse {

using index_t = std::int32_t;    // stored CSR indices (MKL LP64)
using size_type = std::int64_t;  // positions i*D + j, element counts

// Elementwise loops over fewer elements than this run on one thread: a parallel region costs
// microseconds, and many tiny ones stall badly when the machine is oversubscribed.
constexpr std::int64_t parallel_threshold = 1 << 15;

// Builds a message from stream-able parts: msg("[op] X has ", n, " rows").
template <class... Args>
std::string msg(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}

// Throws std::invalid_argument when a user-facing precondition fails.
#define TS_REQUIRE(cond, ...)                                                 \
  do {                                                                        \
    if (!(cond)) throw std::invalid_argument(::truesparse::msg(__VA_ARGS__)); \
  } while (0)

#define TS_ASSERT(cond) assert(cond)

namespace detail {
constexpr std::size_t huge_page = std::size_t(2) << 20;
// Arrays of at least this many bytes are placed on 2 MB boundaries and marked for transparent
// huge pages (Linux, madvise mode): the row gathers of an activation matrix larger than the
// caches then miss the TLB far less often (docs/design.md, "huge pages").
constexpr std::size_t huge_threshold = std::size_t(4) << 20;
inline std::align_val_t alignment_for(std::size_t bytes) {
  return std::align_val_t{bytes >= huge_threshold ? huge_page : 64};
}
}  // namespace detail

// Aligned allocator: 64 bytes so that SIMD loops start on cache-line boundaries; large arrays on
// huge pages.
template <class T>
struct aligned_allocator {
  using value_type = T;
  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n == 0) return nullptr;
    const std::size_t bytes = n * sizeof(T);
    void* p = ::operator new(bytes, detail::alignment_for(bytes));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= detail::huge_threshold)
      madvise(p, bytes / detail::huge_page * detail::huge_page, MADV_HUGEPAGE);  // a hint: errors ignored
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (p) ::operator delete(p, detail::alignment_for(n * sizeof(T)));
  }
  template <class U>
  bool operator==(const aligned_allocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const aligned_allocator<U>&) const noexcept {
    return false;
  }
};

template <class T>
using avector = std::vector<T, aligned_allocator<T>>;

}  // namespace truesparse
