// A minimal test harness for the C++ core tests (run by ctest): CHECK records a failure with
// file and line and goes on; main() of each test prints "N passed, N failed" and returns
// non-zero if anything failed.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

// The checked build (CMake option TRUESPARSE_SANITIZE) exists to run the internal assertions;
// fail at compile time if the build type's -DNDEBUG ever ends up winning over -UNDEBUG.
#if defined(TRUESPARSE_SANITIZE) && defined(NDEBUG)
#error "TRUESPARSE_SANITIZE build with NDEBUG defined: TS_ASSERT would be compiled out"
#endif

namespace check {

struct registry {
  std::vector<std::pair<std::string, std::function<void()>>> tests;
  int failures_in_test = 0;
  static registry& get() {
    static registry r;
    return r;
  }
};

struct add {
  add(const char* name, std::function<void()> f) { registry::get().tests.emplace_back(name, f); }
};

inline void fail(const char* file, int line, const std::string& what) {
  std::printf("  FAILED %s:%d: %s\n", file, line, what.c_str());
  ++registry::get().failures_in_test;
}

inline int run_all() {
  int passed = 0, failed = 0;
  for (auto& [name, f] : registry::get().tests) {
    registry::get().failures_in_test = 0;
    try {
      f();
    } catch (const std::exception& e) {
      fail(name.c_str(), 0, std::string("unexpected exception: ") + e.what());
    }
    const bool ok = registry::get().failures_in_test == 0;
    std::printf("%s %s\n", ok ? "ok    " : "FAILED", name.c_str());
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace check

#define TEST(name)                                    \
  static void name();                                 \
  static check::add name##_registration(#name, name); \
  static void name()

#define CHECK(cond)                                      \
  do {                                                   \
    if (!(cond)) check::fail(__FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                      \
  do {                                                                                              \
    const double _a = (a), _b = (b);                                                                \
    if (!(std::fabs(_a - _b) <= (tol) * (1.0 + std::fabs(_b))))                                     \
      check::fail(__FILE__, __LINE__,                                                               \
                  std::string(#a " = ") + std::to_string(_a) + ", " #b " = " + std::to_string(_b)); \
  } while (0)

#define CHECK_THROWS(expr)                                                            \
  do {                                                                                \
    bool _thrown = false;                                                             \
    try {                                                                             \
      expr;                                                                           \
    } catch (const std::invalid_argument&) {                                          \
      _thrown = true;                                                                 \
    }                                                                                 \
    if (!_thrown) check::fail(__FILE__, __LINE__, "no invalid_argument from " #expr); \
  } while (0)

#define TEST_MAIN() \
  int main() { return check::run_all(); }
