// Optimizer updates of one entry segment (core §3, semantics §4), shared by CPU and CUDA.
//
// Every expression is evaluated in f32 in exactly the order engines/reference/optimizers.py
// writes it (the build uses -ffp-contract=off, so no FMA sneaks in); RMSprop runs in double as
// core §3.8 says. Elements are independent, so the compiler may vectorise the loops without
// changing a bit (sqrt and division are correctly rounded in SSE/AVX).
#pragma once

#include <cmath>
#include <cstring>

#include "common.h"

namespace hashlab {

enum class OptKind : int32_t {
  kSgd = 0, kAdagrad, kFtrl, kAdadelta, kAdam, kAmsgrad, kMomentum, kRmsprop, kRmspropV2,
  kBatchSoftmax, kMovingAverage, kGroupAdagrad,
};

struct OptParams {
  OptKind kind = OptKind::kSgd;
  float learning_rate = 0.f;  // the config's own rate (RMSprop v1 uses it instead of lr)
  float weight_decay = 0.f;
  float initial_accumulator = 0.f;
  float beta = 0.f;
  float l1 = 0.f;
  float l2 = 0.f;
  float averaging_ratio = 0.f;
  float epsilon = 0.f;
  float beta1 = 0.f;
  float beta2 = 0.f;
  float momentum = 0.f;
  bool nesterov = false;
};

// State words per entry (config.py _STATE_WORDS).
HASHLAB_HD int64_t opt_state_words(OptKind k, int64_t d) {
  switch (k) {
    case OptKind::kAdagrad: case OptKind::kMomentum: case OptKind::kRmsprop:
    case OptKind::kRmspropV2: return d;
    case OptKind::kFtrl: case OptKind::kAdadelta: return 2 * d;
    case OptKind::kAdam: return 2 * d + 2;
    case OptKind::kAmsgrad: return 3 * d + 2;
    case OptKind::kBatchSoftmax: return 2;
    case OptKind::kGroupAdagrad: return 1;
    default: return 0;
  }
}

// Optimizer Init of a fresh entry's state words.
HASHLAB_HD void opt_init(const OptParams& p, float* st, int64_t d) {
  const int64_t words = opt_state_words(p.kind, d);
  for (int64_t i = 0; i < words; ++i) st[i] = 0.f;
  switch (p.kind) {
    case OptKind::kAdagrad:
      for (int64_t i = 0; i < d; ++i) st[i] = p.initial_accumulator;
      break;
    case OptKind::kFtrl:
      for (int64_t i = 0; i < d; ++i) st[i] = p.initial_accumulator;
      break;
    case OptKind::kGroupAdagrad:
      st[0] = p.initial_accumulator;
      break;
    case OptKind::kAdam: case OptKind::kAmsgrad: {
      const int64_t k = (p.kind == OptKind::kAmsgrad ? 3 : 2) * d;
      st[k] = p.beta1;
      st[k + 1] = p.beta2;
      break;
    }
    default:
      break;
  }
}

// NaN-propagating max, as numpy's maximum / max.
HASHLAB_HD float nan_max(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  return a < b ? b : a;
}

HASHLAB_HD void sgd_step(float* w, const float* g, int64_t d, float lr) {
  for (int64_t i = 0; i < d; ++i) w[i] = w[i] - lr * g[i];
}

HASHLAB_HD void adagrad_step(const OptParams& p, float* w, const float* g, float* n, int64_t d,
                             float eta, bool quirks) {
  const float lam = p.weight_decay;
  int64_t i = 0;
  if (quirks && lam != 0.f) {
    // Monolith's AVX path on the first 8*floor(D/8) elements: an f32 FMA emulated exactly as
    // the reference does (f64 product and sum, one rounding), and the raw g in the update.
    const int64_t k = 8 * (d / 8);
    for (; i < k; ++i) {
      const float gp = static_cast<float>(static_cast<double>(w[i]) * static_cast<double>(lam) +
                                          static_cast<double>(g[i]));
      n[i] = static_cast<float>(static_cast<double>(gp) * static_cast<double>(gp) +
                                static_cast<double>(n[i]));
      w[i] = w[i] - (eta / std::sqrt(n[i])) * g[i];
    }
  }
  for (; i < d; ++i) {
    const float gp = g[i] + lam * w[i];
    n[i] = n[i] + gp * gp;
    w[i] = w[i] - (eta / std::sqrt(n[i])) * gp;
  }
}

HASHLAB_HD void ftrl_step(const OptParams& p, float* w, const float* g, float* st, int64_t d,
                          float eta, bool quirks) {
  float* n = st;
  float* z = st + d;
  const float beta = p.beta, l1 = p.l1, l2 = p.l2;
  for (int64_t i = 0; i < d; ++i) {
    const float n_new = n[i] + g[i] * g[i];
    const float sigma = (std::sqrt(n_new) - std::sqrt(n[i])) / eta;
    const float zi = (z[i] + g[i]) - sigma * w[i];
    z[i] = zi;
    n[i] = n_new;
    float s;
    if (quirks) {
      s = std::signbit(zi) ? 1.f : 0.f;  // Monolith's sign *bit*
    } else {
      s = zi > 0.f ? 1.f : (zi < 0.f ? -1.f : (zi == 0.f ? 0.f : zi));  // numpy's sign
    }
    const float num = eta * (s * l1 - zi);
    const float den = (std::sqrt(n_new) + beta) + l2 * eta;
    w[i] = std::fabs(zi) > l1 ? num / den : 0.f;
  }
}

HASHLAB_HD void adadelta_step(const OptParams& p, float* w, const float* g, float* st,
                              int64_t d, float eta) {
  float* a = st;
  float* ua = st + d;
  const float lam = p.weight_decay, rho = p.averaging_ratio, eps = p.epsilon;
  const float one_m_rho = 1.f - rho;
  for (int64_t i = 0; i < d; ++i) {
    const float gp = g[i] + lam * w[i];
    const float a_new = rho * a[i] + one_m_rho * (gp * gp);
    const float u = std::sqrt(ua[i] + eps) / std::sqrt(a_new + eps) * gp;
    w[i] = w[i] - eta * u;
    ua[i] = rho * ua[i] + one_m_rho * (u * u);
    a[i] = a_new;
  }
}

HASHLAB_HD void adam_step(const OptParams& p, float* w, const float* g, float* st, int64_t d,
                          float eta, bool ams) {
  float* m = st;
  float* v = st + d;
  float* vhat = st + 2 * d;
  float* pw = st + (ams ? 3 : 2) * d;  // beta1_power, beta2_power
  const float b1 = p.beta1, b2 = p.beta2, eps = p.epsilon, lam = p.weight_decay;
  const float eta_t = eta * std::sqrt(1.f - pw[1]) / (1.f - pw[0]);
  const float one_m_b1 = 1.f - b1, one_m_b2 = 1.f - b2;
  for (int64_t i = 0; i < d; ++i) {
    const float gp = g[i] + lam * w[i];
    m[i] = m[i] + (gp - m[i]) * one_m_b1;
    v[i] = v[i] + (gp * gp - v[i]) * one_m_b2;
    float denom;
    if (ams) {
      vhat[i] = nan_max(vhat[i], v[i]);
      denom = std::sqrt(vhat[i]) + eps;
    } else {
      denom = std::sqrt(v[i]) + eps;
    }
    if (p.nesterov) {
      w[i] = w[i] - eta_t * (one_m_b1 * gp + b1 * m[i]) / denom;
    } else {
      w[i] = w[i] - eta_t * m[i] / denom;
    }
  }
  pw[0] = pw[0] * b1;
  pw[1] = pw[1] * b2;
}

HASHLAB_HD void momentum_step(const OptParams& p, float* w, const float* g, float* n, int64_t d,
                              float eta) {
  const float lam = p.weight_decay, mu = p.momentum;
  const float one_p_mu = 1.f + mu;
  for (int64_t i = 0; i < d; ++i) {
    const float dx = eta * (g[i] + lam * w[i]);
    if (p.nesterov) {
      const float n_prev = n[i];
      n[i] = mu * n[i] - dx;
      w[i] = (w[i] - mu * n_prev) + one_p_mu * n[i];
    } else {
      n[i] = mu * n[i] - dx;
      w[i] = w[i] + n[i];
    }
  }
}

// RMSprop v1 (config learning rate, (1-mu) weighting) and v2 (call lr, no weighting): double.
HASHLAB_HD void rmsprop_step(const OptParams& p, float* w, const float* g, float* st, int64_t d,
                             float lr, bool v2) {
  const double lam = p.weight_decay, mu = p.momentum;
  const double eta = v2 ? static_cast<double>(lr) : static_cast<double>(p.learning_rate);
  for (int64_t i = 0; i < d; ++i) {
    const double dx = static_cast<double>(g[i]) + lam * static_cast<double>(w[i]);
    float n;
    if (v2) {
      n = static_cast<float>(mu * static_cast<double>(st[i]) + dx * dx);
    } else {
      n = static_cast<float>(mu * static_cast<double>(st[i]) + (1.0 - mu) * dx * dx);
    }
    st[i] = n;
    const double eta_p = eta / (std::sqrt(static_cast<double>(n)) + 1.0);
    w[i] = static_cast<float>(static_cast<double>(w[i]) - eta_p * dx);
  }
}

HASHLAB_HD void batch_softmax_step(float* w, float* st, float lr, int64_t global_step) {
  uint64_t last;
  memcpy(&last, st, 8);
  const int64_t diff = static_cast<int64_t>(static_cast<uint64_t>(global_step) - last);
  const float delta = static_cast<float>(diff);
  w[0] = (1.f - lr) * w[0] + lr * delta;
  memcpy(st, &global_step, 8);
}

HASHLAB_HD void moving_average_step(const OptParams& p, float* w, const float* g, int64_t d) {
  const float mu = p.momentum, one_m_mu = 1.f - mu;
  for (int64_t i = 0; i < d; ++i) w[i] = mu * w[i] + one_m_mu * g[i];
}

// Group lasso Adagrad over the whole segment. `scratch` holds d floats.
HASHLAB_HD void group_adagrad_step(const OptParams& p, float* w, const float* g, float* st,
                                   int64_t d, float eta, float* scratch) {
  const float beta = p.beta, l2 = p.l2, lam = p.weight_decay;
  float mx = 0.f;
  for (int64_t i = 0; i < d; ++i) {
    const float gp = g[i] + lam * w[i];
    scratch[i] = gp;
    const float sq = gp * gp;
    mx = i == 0 ? sq : nan_max(mx, sq);
  }
  st[0] = st[0] + mx;
  const float eta_p = eta / (beta + std::sqrt(st[0]));
  float sq = 0.f;
  for (int64_t i = 0; i < d; ++i) {
    const float z = scratch[i] - w[i] / eta_p;
    scratch[i] = z;
    sq = i == 0 ? z * z : sq + z * z;  // sequential sum, as the reference
  }
  const float norm = std::sqrt(sq);
  const float scale = -eta_p * ((norm - l2) / norm);
  const bool zero = norm < l2;
  for (int64_t i = 0; i < d; ++i) w[i] = zero ? 0.f : scale * scratch[i];
}

// One optimizer step on one segment of one entry. `scratch`: d floats (group_adagrad only).
HASHLAB_HD void opt_step(const OptParams& p, float* w, const float* g, float* st, int64_t d,
                         float lr, int64_t global_step, bool quirks, float* scratch) {
  switch (p.kind) {
    case OptKind::kSgd: sgd_step(w, g, d, lr); break;
    case OptKind::kAdagrad: adagrad_step(p, w, g, st, d, lr, quirks); break;
    case OptKind::kFtrl: ftrl_step(p, w, g, st, d, lr, quirks); break;
    case OptKind::kAdadelta: adadelta_step(p, w, g, st, d, lr); break;
    case OptKind::kAdam: adam_step(p, w, g, st, d, lr, false); break;
    case OptKind::kAmsgrad: adam_step(p, w, g, st, d, lr, true); break;
    case OptKind::kMomentum: momentum_step(p, w, g, st, d, lr); break;
    case OptKind::kRmsprop: rmsprop_step(p, w, g, st, d, lr, false); break;
    case OptKind::kRmspropV2: rmsprop_step(p, w, g, st, d, lr, true); break;
    case OptKind::kBatchSoftmax: batch_softmax_step(w, st, lr, global_step); break;
    case OptKind::kMovingAverage: moving_average_step(p, w, g, d); break;
    case OptKind::kGroupAdagrad: group_adagrad_step(p, w, g, st, d, lr, scratch); break;
  }
}

}  // namespace hashlab
