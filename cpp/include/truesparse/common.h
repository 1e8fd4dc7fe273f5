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

// 64-byte aligned allocator so that SIMD loops start on cache-line boundaries.
template <class T>
struct aligned_allocator {
  using value_type = T;
  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n == 0) return nullptr;
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) noexcept {
    if (p) ::operator delete(p, std::align_val_t{64});
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
