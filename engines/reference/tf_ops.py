"""TensorFlow building blocks of the "tensorflow" engine: occurrence rounds, deterministic
dedup, the counter-based initializer and the training retrievers (docs/semantics.md §2-§3).

Everything here mirrors the numpy reference bit for bit: uint64 arithmetic wraps in TF as in
numpy, and every f32 expression keeps the reference's evaluation order.
"""
from __future__ import annotations

import contextlib

import numpy as np
from engines.reference.tf_runtime import tf

F = np.float32
U64 = tf.uint64
_GOLDEN = 0x9E3779B97F4A7C15


# ---- occurrence structure -----------------------------------------------------------------
def first_occurrence_groups(ids):
    """(unique ids in first-occurrence order, group index of every position). tf.unique
    already numbers groups by first occurrence."""
    uniq, group = tf.unique(ids, out_idx=tf.int64)
    return uniq, group


def occurrence_rank(group, num_groups):
    """rank[i] = how many earlier positions share group[i]: round k holds every id's k-th
    occurrence, so a round has distinct ids and rounds keep each id's order."""
    n = tf.size(group, out_type=tf.int64)
    order = tf.argsort(group, stable=True)
    sorted_groups = tf.gather(group, order)
    positions = tf.range(n, dtype=tf.int64)
    run_start = tf.math.unsorted_segment_min(positions, sorted_groups, num_groups)
    rank_sorted = positions - tf.gather(run_start, sorted_groups)
    return tf.scatter_nd(tf.cast(order, tf.int64)[:, None], rank_sorted, [n])


def dedup_sum(grads, group, num_groups):
    """f32 sum of each group's rows in occurrence order, starting from a copy of the first row.

    TF's CPU unsorted_segment_sum adds the rows of a segment in input order starting from +0.0
    (checked by tests/tf/test_tf_engine.py), which equals "copy the first row, then +=" except
    for a group whose elements are all -0.0: the reference keeps -0.0 there, so that sign is
    restored explicitly.
    """
    total = tf.math.unsorted_segment_sum(grads, group, num_groups)
    neg_zero = tf.cast((grads == 0) & (tf.bitcast(grads, tf.int32) < 0), tf.int32)
    all_neg_zero = tf.math.unsorted_segment_min(neg_zero, group, num_groups) > 0
    return tf.where(all_neg_zero, tf.constant(-0.0, tf.float32), total)


# ---- hashing and initializers -------------------------------------------------------------
def mix64(x):
    """splitmix64 finaliser on uint64 tensors (wrapping)."""
    z = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(30, U64)))
    z = z * tf.constant(0xBF58476D1CE4E5B9, U64)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(27, U64)))
    z = z * tf.constant(0x94D049BB133111EB, U64)
    return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(31, U64)))


def _seed_mix(seed: int) -> int:
    z = seed % (1 << 64)
    mask = (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def uniform_bits(ids, seed: int, first_k: int, count: int):
    """f32 u in [0, 1) for elements first_k..first_k+count-1 of every id: [len(ids), count]."""
    key = mix64(tf.bitwise.bitwise_xor(tf.bitcast(ids, U64), tf.constant(_seed_mix(seed), U64)))
    ctr = (tf.range(first_k, first_k + count, dtype=tf.int64) + 1)
    ctr = tf.bitcast(ctr, U64) * tf.constant(_GOLDEN, U64)
    r = mix64(key[:, None] + ctr[None, :])
    # a 24-bit integer times a power of two: exact in f32
    return tf.cast(tf.bitwise.right_shift(r, tf.constant(40, U64)), tf.float32) * F(2.0 ** -24)


def initial_embeddings(segments, ids, seed: int):
    """[len(ids), D_total] initial rows of new ids, one segment after another."""
    n = tf.size(ids)
    parts = []
    for seg in segments:
        kind = seg.initializer
        if kind == "random_uniform":
            lo, hi = F(seg.init_params["minval"]), F(seg.init_params["maxval"])
            u = uniform_bits(ids, seed, seg.offset, seg.dim)
            parts.append(u * (hi - lo) + lo)                  # two f32 roundings, no FMA
        else:
            value = {"zeros": F(0), "ones": F(1)}.get(kind)
            if value is None:                                  # constants
                value = F(seg.init_params["constant"])
            parts.append(tf.fill([n, seg.dim], value))
    return tf.concat(parts, 1)


# ---- retrievers (core §4.4) ---------------------------------------------------------------
def fake_quantize(x, r: float):
    step = F(r) / F(128)
    half = step / F(2)
    q = tf.where(x >= 0, (x + half) / step, (x - half) / step)
    n = tf.sign(q) * tf.floor(tf.abs(q))                      # truncation toward zero
    n = tf.clip_by_value(tf.where(tf.math.is_nan(n), tf.zeros_like(n), n), -128.0, 127.0)
    return tf.where(tf.math.is_nan(x), tf.zeros_like(x), n * step)


def tanh32(x):
    """f32 tanh evaluated in double and rounded once, as the numpy reference does."""
    return tf.cast(tf.tanh(tf.cast(x, tf.float64)), tf.float32)


def hashnet_forward(w, scale, amplitude: float):
    return F(amplitude) * tanh32(scale * w)


def hashnet_backward(w, g, scale, amplitude: float):
    y = tanh32(scale * w)
    return g * F(amplitude) * scale * (F(1) - y * y)


# ---- graph rewrites -------------------------------------------------------------------------
_REWRITES = ("arithmetic_optimization", "constant_folding")


@contextlib.contextmanager
def exact_math():
    """Run tf.functions as written: Grappler's arithmetic optimizer rewrites x/sqrt(y) into
    x*rsqrt(y) (not correctly rounded) and may reassociate products, and constant folding
    pushes constants through chains; both change f32 results. TF reads these options at call
    time, so they are switched off only around our calls and restored afterwards."""
    old = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({k: False for k in _REWRITES})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({k: old.get(k, True) for k in _REWRITES})
