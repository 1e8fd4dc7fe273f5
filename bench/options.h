// The command-line values of the C++ benchmarks. Each parser takes an option's name and its
// text and returns the value, or throws std::invalid_argument naming the option, what it must be
// and the text given: a value is read whole ("12x", "" and "1e3" are not integers) and checked
// against its range, so that a typo stops the run instead of timing something else.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

inline std::invalid_argument bad_value(const char* opt, const std::string& must, const std::string& text) {
  return std::invalid_argument(std::string(opt) + " must be " + must + ", got '" + text + "'");
}

inline std::string bound(double x) {
  std::string s = std::to_string(x);
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s;
}

// An integer in [lo, hi].
inline long long integer(const char* opt, const std::string& text, long long lo, long long hi) {
  const std::string must = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi) throw bad_value(opt, must, text);
  return v;
}

// A finite number in [lo, hi] (or in (lo, hi] when open_low).
inline double real(const char* opt, const std::string& text, double lo, double hi, bool open_low = false) {
  const std::string must =
      "a number in " + std::string(open_low ? "(" : "[") + bound(lo) + ", " + bound(hi) + "]";
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi || (open_low && v == lo))
    throw bad_value(opt, must, text);
  return v;
}

// The comma-separated items of text, each given to parse(opt, item); at least one.
template <class F>
auto list(const char* opt, const std::string& text, F&& parse) {
  std::vector<decltype(parse(opt, text))> v;
  for (std::size_t pos = 0;;) {
    const std::size_t next = text.find(',', pos);
    v.push_back(parse(opt, text.substr(pos, next == std::string::npos ? std::string::npos : next - pos)));
    if (next == std::string::npos) return v;
    pos = next + 1;
  }
}

inline std::vector<long long> integers(const char* opt, const std::string& text, long long lo, long long hi) {
  return list(opt, text, [&](const char* o, const std::string& item) { return integer(o, item, lo, hi); });
}

inline std::vector<double> reals(const char* opt, const std::string& text, double lo, double hi,
                                 bool open_low = false) {
  return list(opt, text,
              [&](const char* o, const std::string& item) { return real(o, item, lo, hi, open_low); });
}

// The index of text among the choices.
inline int choice(const char* opt, const std::string& text, const std::vector<std::string>& choices) {
  std::string must;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    if (text == choices[i]) return static_cast<int>(i);
    must += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
  }
  throw bad_value(opt, must, text);
}

}  // namespace bench
