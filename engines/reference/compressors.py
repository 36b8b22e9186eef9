"""Float compressors and training retrievers (core §4.2–§4.4).

Training tables store raw f32 whatever comp_config says; `fixed_r8` and `one_bit` change what
lookup returns (fake-quant / hash-net tanh) and one_bit also rescales gradients. The serving
encoders are here too so Monolith's compressor vectors can be checked.
"""
from __future__ import annotations

import math

import numpy as np

F = np.float32


# ---- fixed_r8: FakeQuantizer ---------------------------------------------------------------
def fake_quantize(x: np.ndarray, r: float) -> np.ndarray:
    """Round half away from zero to a multiple of r/128, clamped to [-128, 127] steps; NaN→0."""
    x = np.asarray(x, dtype=np.float32)
    step = F(r) / F(128)
    half = step / F(2)
    with np.errstate(invalid="ignore"):
        q = np.where(x >= 0, (x + half) / step, (x - half) / step)
        n = np.trunc(q)
        n = np.clip(np.nan_to_num(n, nan=0.0), -128, 127).astype(np.float32)
    return np.where(np.isnan(x), F(0), n * step)


def fixed_r8_encode(x: np.ndarray, r: float) -> np.ndarray:
    step = F(r) / F(128)
    return np.round(fake_quantize(x, r) / step).astype(np.int8)


def fixed_r8_decode(codes: np.ndarray, r: float) -> np.ndarray:
    return codes.astype(np.float32) * (F(r) / F(128))


# ---- fp16 ------------------------------------------------------------------------------------
def fp16_encode(x: np.ndarray) -> np.ndarray:
    """IEEE binary16, round to nearest even, overflow to ±inf (numpy's cast does exactly this)."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16)


def fp16_decode(h: np.ndarray) -> np.ndarray:
    return h.astype(np.float32)


# ---- one_bit: HashNet -----------------------------------------------------------------------
def tanh32(x: np.ndarray) -> np.ndarray:
    """f32 tanh evaluated in double and rounded once, so every engine's libm agrees."""
    return np.tanh(np.asarray(x, dtype=np.float32).astype(np.float64)).astype(np.float32)


def hashnet_scale(init_scale: float, max_scale: float, global_step: int) -> np.float32:
    """The scale after a backward at a step where global_step % step_size == 0."""
    return F(min(float(init_scale) * math.sqrt(1.0 + 0.005 * global_step), float(max_scale)))


def hashnet_forward(w: np.ndarray, scale, amplitude) -> np.ndarray:
    return F(amplitude) * tanh32(F(scale) * w)


def hashnet_backward(w: np.ndarray, g: np.ndarray, scale, amplitude) -> np.ndarray:
    y = tanh32(F(scale) * w)
    return g * F(amplitude) * F(scale) * (F(1) - y * y)


def one_bit_encode(x: np.ndarray, init_scale: float, amplitude: float) -> np.ndarray:
    """Serving storage: +1 iff amplitude*tanh(scale*x) > 0, else -1 (so 0 encodes as -1)."""
    return np.where(hashnet_forward(np.asarray(x, np.float32), init_scale, amplitude) > 0,
                    1, -1).astype(np.int8)


def one_bit_decode(codes: np.ndarray, amplitude: float) -> np.ndarray:
    return codes.astype(np.float32) * F(amplitude)
