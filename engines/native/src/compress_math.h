// Training retrievers (core §4.4): what lookup returns for fixed_r8 / one_bit segments, and
// the one_bit gradient scaling. Storage stays raw f32 whatever the compressor is.
#pragma once

#include <cmath>

#include "common.h"

namespace hashlab {

enum class CompKind : int32_t { kNone = 0, kFp32 = 1, kFp16 = 2, kFixedR8 = 3, kOneBit = 4 };

struct CompParams {
  CompKind kind = CompKind::kNone;
  float r = 1.f;            // fixed_r8
  int64_t step_size = 200;  // one_bit
  float init_scale = 1.f;
  float max_scale = 10000.f;
  float amplitude = 0.1f;
};

// Round half away from zero to a multiple of r/128, clamped to [-128, 127] steps; NaN -> 0.
HASHLAB_HD float fake_quantize(float x, float r) {
  const float step = r / 128.f;
  const float half = step / 2.f;
  if (x != x) return 0.f;
  const float q = x >= 0.f ? (x + half) / step : (x - half) / step;
  float n = std::trunc(q);
  if (n != n) n = 0.f;
  if (n < -128.f) n = -128.f;
  if (n > 127.f) n = 127.f;
  return n * step;
}

// f32 tanh evaluated in double and rounded once, so every engine's libm agrees.
HASHLAB_HD float tanh32(float x) { return static_cast<float>(std::tanh(static_cast<double>(x))); }

HASHLAB_HD float hashnet_forward(float w, float scale, float amplitude) {
  return amplitude * tanh32(scale * w);
}

HASHLAB_HD float hashnet_backward(float w, float g, float scale, float amplitude) {
  const float y = tanh32(scale * w);
  const float a = g * amplitude;
  const float b = a * scale;
  const float c = 1.f - y * y;
  return b * c;
}

// The scale after a backward at a step where global_step % step_size == 0 (computed in double,
// as Python's min(init * sqrt(1 + 0.005 * step), max)).
HASHLAB_HD float hashnet_scale(float init_scale, float max_scale, int64_t global_step) {
  const double s = static_cast<double>(init_scale) *
                   std::sqrt(1.0 + 0.005 * static_cast<double>(global_step));
  const double m = static_cast<double>(max_scale);
  return static_cast<float>(m < s ? m : s);
}

}  // namespace hashlab
