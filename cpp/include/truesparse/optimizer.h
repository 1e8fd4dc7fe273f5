// Optimizers on value arrays. The weights of a sparse layer are a plain array aligned with its
// pattern, so one implementation serves dense and sparse layers, and each state array (momentum,
// Adam moments) is aligned with the values and moves with them on a topology change.
// PyTorch semantics, so learning rates transfer:
//   SGD:   g = dw + wd w;  v = mu v + g;  step = nesterov ? g + mu v : v  (mu = 0: step = g);
//          w -= lr step
//   Adam:  g = dw + wd w;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;
//          w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
//   AdamW: w -= lr wd w, then the Adam step with wd = 0.
// Optional warm-up of new weights (Adam/AdamW): a weight born by a topology change steps with
// lr (age+1)/(warmup+1) for its first `warmup` steps, so its first updates, with zero moments,
// are not the full-size steps that cause loss spikes after a topology update. (Weights born
// before the layer's first Adam step need none: their moments and the bias correction start
// together, so their first step is lr·sign(g) as for every other weight.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "truesparse/common.h"

namespace truesparse {

enum class optimizer_kind { sgd, adam, adamw };

// Learning-rate schedules as the closed forms of PyTorch's schedulers, evaluated at step
// t = 0, 1, ... (optimizer steps since the schedule started):
//   constant lr0;  step lr0 γ^⌊t/step_size⌋;  multistep lr0 γ^(#milestones <= t);
//   exponential lr0 γ^t;  cosine η_min + (lr0 − η_min)(1 + cos(π t / T_max))/2;
// times a linear warm-up factor start + (1 − start) min(t, W)/W when warmup_steps W > 0.
enum class schedule_kind { constant, step, multistep, exponential, cosine };

struct lr_schedule {
  schedule_kind kind = schedule_kind::constant;
  std::int64_t step_size = 1;
  double gamma = 0.1;
  std::vector<std::int64_t> milestones;  // sorted
  std::int64_t t_max = 1;
  double eta_min = 0.0;
  std::int64_t warmup_steps = 0;
  double warmup_start_factor = 1.0 / 3.0;

  double rate(double lr0, std::int64_t t) const {
    if (t < 0) t = 0;
    double lr = lr0;
    switch (kind) {
      case schedule_kind::constant: break;
      case schedule_kind::step: lr = lr0 * std::pow(gamma, static_cast<double>(t / step_size)); break;
      case schedule_kind::multistep: {
        const auto passed = std::upper_bound(milestones.begin(), milestones.end(), t) - milestones.begin();
        lr = lr0 * std::pow(gamma, static_cast<double>(passed));
        break;
      }
      case schedule_kind::exponential: lr = lr0 * std::pow(gamma, static_cast<double>(t)); break;
      case schedule_kind::cosine:
        lr = eta_min + (lr0 - eta_min) * (1 + std::cos(M_PI * static_cast<double>(t) / t_max)) / 2;
        break;
    }
    if (warmup_steps > 0)
      lr *= warmup_start_factor +
            (1 - warmup_start_factor) * static_cast<double>(std::min(t, warmup_steps)) / warmup_steps;
    return lr;
  }
};

// The public (Python) name of a schedule, for error messages.
inline const char* schedule_name(schedule_kind k) {
  switch (k) {
    case schedule_kind::step: return "StepLR";
    case schedule_kind::multistep: return "MultiStepLR";
    case schedule_kind::exponential: return "ExponentialLR";
    case schedule_kind::cosine: return "CosineLR";
    case schedule_kind::constant: break;
  }
  return "ConstantLR";
}

// The checks of the Python schedule classes (truesparse.optim), for C++ callers: every field
// in range and finite, whatever the kind. eta_min <= lr needs the optimizer's lr and is
// checked by validate(optimizer_config).
inline void validate(const lr_schedule& s) {
  const char* op = schedule_name(s.kind);
  TS_REQUIRE(s.step_size >= 1, "[", op, "] step_size must be an integer >= 1, got ", s.step_size);
  TS_REQUIRE(s.t_max >= 1, "[", op, "] T_max must be an integer >= 1, got ", s.t_max);
  TS_REQUIRE(s.gamma > 0 && std::isfinite(s.gamma), "[", op, "] gamma must be a finite number > 0, got ",
             s.gamma);
  TS_REQUIRE(std::is_sorted(s.milestones.begin(), s.milestones.end()), "[", op,
             "] milestones must be sorted");
  TS_REQUIRE(s.milestones.empty() || s.milestones.front() >= 0, "[", op,
             "] milestones must be integers >= 0, got ", s.milestones.empty() ? 0 : s.milestones.front());
  TS_REQUIRE(s.eta_min >= 0 && std::isfinite(s.eta_min), "[", op,
             "] eta_min must be a finite number >= 0, got ", s.eta_min);
  TS_REQUIRE(s.warmup_steps >= 0, "[LinearWarmup] warmup_steps must be an integer >= 0, got ",
             s.warmup_steps);
  TS_REQUIRE(s.warmup_start_factor > 0 && s.warmup_start_factor <= 1,
             "[LinearWarmup] start_factor must be a finite number in (0, 1], got ", s.warmup_start_factor);
}

struct optimizer_config {
  optimizer_kind kind = optimizer_kind::sgd;
  double lr = 0.01;
  double momentum = 0.0;  // SGD
  bool nesterov = false;  // SGD
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam, AdamW
  int new_weight_warmup = 0;                      // Adam, AdamW: steps; 0 = off
  lr_schedule schedule;                           // lr at step t = schedule.rate(lr, t)
  std::int64_t schedule_start = 0;                // the model's step count when t = 0
};

inline optimizer_config sgd(double lr, double momentum = 0.0, bool nesterov = false,
                            double weight_decay = 0.0) {
  optimizer_config c;
  c.lr = lr;
  c.momentum = momentum;
  c.nesterov = nesterov;
  c.weight_decay = weight_decay;
  return c;
}

// The public (Python) name of an optimizer, for error messages.
inline const char* optimizer_name(optimizer_kind k) {
  switch (k) {
    case optimizer_kind::adam: return "Adam";
    case optimizer_kind::adamw: return "AdamW";
    case optimizer_kind::sgd: break;
  }
  return "SGD";
}

// The checks of the Python optimizer classes (truesparse.optim), for C++ callers: NaN and
// ±inf are refused everywhere.
inline void validate(const optimizer_config& c) {
  const char* op = optimizer_name(c.kind);
  TS_REQUIRE(std::isfinite(c.lr) && c.lr >= 0, "[", op, "] lr must be a finite number >= 0, got ", c.lr);
  TS_REQUIRE(c.momentum >= 0 && c.momentum < 1, "[", op, "] momentum must be a finite number in [0, 1), got ",
             c.momentum);
  TS_REQUIRE(std::isfinite(c.weight_decay) && c.weight_decay >= 0, "[", op,
             "] weight_decay must be a finite number >= 0, got ", c.weight_decay);
  TS_REQUIRE(!c.nesterov || c.momentum > 0, "[", op, "] nesterov=True needs momentum > 0, got momentum=0");
  TS_REQUIRE(c.beta1 >= 0 && c.beta1 < 1, "[", op, "] betas[0] must be a finite number in [0, 1), got ",
             c.beta1);
  TS_REQUIRE(c.beta2 >= 0 && c.beta2 < 1, "[", op, "] betas[1] must be a finite number in [0, 1), got ",
             c.beta2);
  TS_REQUIRE(c.eps > 0 && std::isfinite(c.eps), "[", op, "] eps must be a finite number > 0, got ", c.eps);
  TS_REQUIRE(c.new_weight_warmup >= 0 && c.new_weight_warmup < 65535, "[", op,
             "] new_weight_warmup must be an integer in [0, 65534], got ", c.new_weight_warmup);
  validate(c.schedule);
  TS_REQUIRE(c.schedule.kind != schedule_kind::cosine || c.schedule.eta_min <= c.lr, "[", op,
             "] schedule CosineLR(eta_min=", c.schedule.eta_min,
             ") anneals from lr down to eta_min, so eta_min must be <= lr, got lr=", c.lr);
}

// The state of one value array: first/second moment arrays (m is SGD's velocity), each either
// empty (not yet used) or aligned with the values, ages of weights for the warm-up, and the
// number of steps taken (Adam's bias correction).
template <class T>
struct optimizer_state {
  avector<T> m, v;
  std::vector<std::uint16_t> age;  // only with new_weight_warmup > 0
  std::int64_t steps = 0;

  void clear() {
    m.clear();
    v.clear();
    age.clear();
    steps = 0;
  }
};

// SGD's three updates (the equations at the top of this file), for one weight k: with
// velocity v (momentum, Nesterov) or without (plain). One definition for optimizer_step and
// for the update fused into the sparse weight gradient (sparse_linear::sddmm_sgd_step).
enum class sgd_variant { plain, momentum, nesterov };

template <sgd_variant V, class T>
inline void sgd_update(T* w, T* v, size_type k, T g, T lr, T wd, T mu) {
  if constexpr (V == sgd_variant::plain) {
    w[k] -= lr * (g + wd * w[k]);
  } else if constexpr (V == sgd_variant::momentum) {
    v[k] = mu * v[k] + g + wd * w[k];
    w[k] -= lr * v[k];
  } else {
    const T gk = g + wd * w[k];
    v[k] = mu * v[k] + gk;
    w[k] -= lr * (gk + mu * v[k]);
  }
}

// Counts the step in s, sizes the velocity array for n values when c has momentum, and calls
// f(std::integral_constant<sgd_variant, V>{}, v) with c's variant and the velocity (null for
// plain SGD).
template <class T, class F>
void sgd_step(const optimizer_config& c, optimizer_state<T>& s, size_type n, F&& f) {
  ++s.steps;
  if (c.momentum == 0)
    return f(std::integral_constant<sgd_variant, sgd_variant::plain>{}, static_cast<T*>(nullptr));
  if (s.m.size() != static_cast<std::size_t>(n)) s.m.assign(n, T(0));
  if (c.nesterov) return f(std::integral_constant<sgd_variant, sgd_variant::nesterov>{}, s.m.data());
  f(std::integral_constant<sgd_variant, sgd_variant::momentum>{}, s.m.data());
}

// One step on n values w with gradient g.
template <class T>
void optimizer_step(const optimizer_config& c, optimizer_state<T>& s, T* w, const T* g, size_type n) {
  const T lr = static_cast<T>(c.lr), wd = static_cast<T>(c.weight_decay);
  if (c.kind == optimizer_kind::sgd) {
    const T mu = static_cast<T>(c.momentum);
    sgd_step(c, s, n, [&](auto variant, T* v) {
      constexpr sgd_variant V = decltype(variant)::value;
      parallel_for(n, n > parallel_threshold, [&](size_type k_begin, size_type k_end) {
        // const locals, so the loop vectorizes (closure members would be read through a
        // pointer that the stores to w might alias)
        T* const pw = w;
        T* const pv = v;
        const T* const pg = g;
        const T rate = lr, decay = wd, momentum = mu;
#pragma omp simd
        for (size_type k = k_begin; k < k_end; ++k) sgd_update<V>(pw, pv, k, pg[k], rate, decay, momentum);
      });
    });
    return;
  }
  ++s.steps;
  // Adam / AdamW
  if (s.m.size() != static_cast<std::size_t>(n)) s.m.assign(n, T(0));
  if (s.v.size() != static_cast<std::size_t>(n)) s.v.assign(n, T(0));
  const int warmup = c.new_weight_warmup;
  if (warmup > 0 && s.age.size() != static_cast<std::size_t>(n)) s.age.assign(n, warmup);
  const T b1 = static_cast<T>(c.beta1), b2 = static_cast<T>(c.beta2), eps = static_cast<T>(c.eps);
  const T c1 = static_cast<T>(1.0 / (1.0 - std::pow(c.beta1, static_cast<double>(s.steps))));
  const T c2 = static_cast<T>(1.0 / (1.0 - std::pow(c.beta2, static_cast<double>(s.steps))));
  const bool decoupled = c.kind == optimizer_kind::adamw;
  T* m = s.m.data();
  T* v = s.v.data();
  std::uint16_t* age = warmup > 0 ? s.age.data() : nullptr;
  parallel_for(n, n > parallel_threshold, [&](size_type k_begin, size_type k_end) {
    for (size_type k = k_begin; k < k_end; ++k) {
      T rate = lr;
      if (age && age[k] < warmup) {
        rate = lr * static_cast<T>(age[k] + 1) / static_cast<T>(warmup + 1);
        ++age[k];
      }
      if (decoupled) w[k] -= rate * wd * w[k];
      const T gk = decoupled ? g[k] : g[k] + wd * w[k];
      m[k] = b1 * m[k] + (T(1) - b1) * gk;
      v[k] = b2 * v[k] + (T(1) - b2) * gk * gk;
      w[k] -= rate * (m[k] * c1) / (std::sqrt(v[k] * c2) + eps);
    }
  });
}

}  // namespace truesparse
