// Initialisers (core §4.1) with the counter-based random_uniform of semantics §2: the value of
// element k of id x depends only on (seed, x, k), never on threads or insertion order.
#pragma once

#include "common.h"

namespace hashlab {

enum class InitKind : int32_t { kZeros = 0, kOnes = 1, kConstants = 2, kRandomUniform = 3 };

struct InitParams {
  InitKind kind = InitKind::kZeros;
  float constant = 0.f;
  float minval = 0.f;
  float maxval = 0.f;
};

// key = mix64(uint64(x) ^ mix64(seed)); computed once per id.
HASHLAB_HD uint64_t init_key(int64_t id, uint64_t seed_mix) {
  return mix64(static_cast<uint64_t>(id) ^ seed_mix);
}

// u in [0, 1): a 24-bit integer times 2^-24 (exact), then two f32 roundings, never an FMA.
HASHLAB_HD float random_uniform_at(uint64_t key, uint64_t k, float lo, float hi) {
  const uint64_t r = mix64(key + (k + 1) * 0x9E3779B97F4A7C15ULL);
  const float u = static_cast<float>(r >> 40) * 5.9604644775390625e-08f;  // 2^-24
  const float span = hi - lo;
  const float scaled = u * span;
  return scaled + lo;
}

// Fill emb[offset .. offset+dim) of one entry; `offset` is the global element index k0.
HASHLAB_HD void init_segment(float* emb, int64_t offset, int64_t dim, const InitParams& p,
                             uint64_t key) {
  switch (p.kind) {
    case InitKind::kZeros:
      for (int64_t i = 0; i < dim; ++i) emb[offset + i] = 0.f;
      break;
    case InitKind::kOnes:
      for (int64_t i = 0; i < dim; ++i) emb[offset + i] = 1.f;
      break;
    case InitKind::kConstants:
      for (int64_t i = 0; i < dim; ++i) emb[offset + i] = p.constant;
      break;
    case InitKind::kRandomUniform:
      for (int64_t i = 0; i < dim; ++i)
        emb[offset + i] = random_uniform_at(key, static_cast<uint64_t>(offset + i), p.minval,
                                            p.maxval);
      break;
  }
}

}  // namespace hashlab
