"""Monolith's optimizer math (core §3) as TensorFlow ops, for the "tensorflow" engine.

Each function takes the rows being stepped (`w`: [m, D] f32, `g`: [m, D] f32 after the
retriever, `st`: [m, words] f32 in the numpy reference's state-word layout) and returns the new
`(w, st)`. Expressions are written in the same order as engines/reference/optimizers.py, with
every constant rounded to f32 first, so the results are bit-identical to the reference: TF's
CPU kernels for +, -, *, /, sqrt and casts are correctly rounded and never contract to FMA.
RMSprop runs in float64 as Monolith does; the Adagrad weight-decay quirk uses a float64 FMA.
"""
from __future__ import annotations

import numpy as np
from engines.reference.tf_runtime import tf

F = np.float32
F64 = tf.float64


def _c(x) -> tf.Tensor:
    return tf.constant(F(x), tf.float32)


def _fma32(a, b, c):
    """f32 fused multiply-add: a*b is exact in f64, then one f64 add and one rounding."""
    return tf.cast(tf.cast(a, F64) * tf.cast(b, F64) + tf.cast(c, F64), tf.float32)


def sgd(w, g, st, lr, gs, p, quirks):
    return w - lr * g, st


def adagrad(w, g, st, lr, gs, p, quirks):
    d = w.shape[1]
    lam = _c(p["weight_decay_factor"])
    k = 8 * (d // 8) if (quirks and p["weight_decay_factor"] != 0) else 0
    parts_w, parts_n = [], []
    if k:
        # Monolith's AVX path on the first 8*floor(D/8) elements: FMAs, and the weight update
        # uses the raw g (weight decay only reaches the accumulator).
        gp = _fma32(w[:, :k], lam, g[:, :k])
        n = _fma32(gp, gp, st[:, :k])
        parts_n.append(n)
        parts_w.append(w[:, :k] - (lr / tf.sqrt(n)) * g[:, :k])
    if k < d:
        wt, gt = w[:, k:], g[:, k:]
        gp = gt + lam * wt
        n = st[:, k:] + gp * gp
        parts_n.append(n)
        parts_w.append(wt - (lr / tf.sqrt(n)) * gp)
    return tf.concat(parts_w, 1), tf.concat(parts_n, 1)


def _signbit(x):
    return tf.cast(tf.bitcast(x, tf.int32) < 0, tf.float32)


def ftrl(w, g, st, lr, gs, p, quirks):
    d = w.shape[1]
    beta, l1, l2 = _c(p["beta"]), _c(p["l1_regularization_strength"]), \
        _c(p["l2_regularization_strength"])
    n, z = st[:, :d], st[:, d:]
    n_new = n + g * g
    sigma = (tf.sqrt(n_new) - tf.sqrt(n)) / lr
    z = z + g - sigma * w
    s = _signbit(z) if quirks else tf.sign(z)     # quirk: the sign *bit* (0/1) of z
    num = lr * (s * l1 - z)
    den = tf.sqrt(n_new) + beta + l2 * lr
    w = tf.where(tf.abs(z) > l1, num / den, tf.zeros_like(num))
    return w, tf.concat([n_new, z], 1)


def adadelta(w, g, st, lr, gs, p, quirks):
    d = w.shape[1]
    lam, rho, eps = _c(p["weight_decay_factor"]), _c(p["averaging_ratio"]), _c(p["epsilon"])
    one_m_rho = _c(F(1) - F(p["averaging_ratio"]))
    a, u_acc = st[:, :d], st[:, d:]
    gp = g + lam * w
    a_new = rho * a + one_m_rho * (gp * gp)
    u = tf.sqrt(u_acc + eps) / tf.sqrt(a_new + eps) * gp
    w = w - lr * u
    u_acc = rho * u_acc + one_m_rho * (u * u)
    return w, tf.concat([a_new, u_acc], 1)


def _adam(w, g, st, lr, p, amsgrad):
    d = w.shape[1]
    b1, b2, eps, lam = (_c(p["beta1"]), _c(p["beta2"]), _c(p["epsilon"]),
                        _c(p["weight_decay_factor"]))
    one_m_b1, one_m_b2 = _c(F(1) - F(p["beta1"])), _c(F(1) - F(p["beta2"]))
    k = (3 if amsgrad else 2) * d
    m, v = st[:, :d], st[:, d:2 * d]
    b1p, b2p = st[:, k:k + 1], st[:, k + 1:k + 2]
    eta_t = lr * tf.sqrt(_c(1) - b2p) / (_c(1) - b1p)             # [m, 1]: per-entry powers
    gp = g + lam * w
    m = m + (gp - m) * one_m_b1
    v = v + (gp * gp - v) * one_m_b2
    parts = [m, v]
    if amsgrad:
        vhat = tf.maximum(st[:, 2 * d:3 * d], v)
        parts.append(vhat)
        denom = tf.sqrt(vhat) + eps
    else:
        denom = tf.sqrt(v) + eps
    if p["use_nesterov"]:
        w = w - eta_t * (one_m_b1 * gp + b1 * m) / denom
    else:
        w = w - eta_t * m / denom
    parts += [b1p * b1, b2p * b2]
    return w, tf.concat(parts, 1)


def adam(w, g, st, lr, gs, p, quirks):
    return _adam(w, g, st, lr, p, amsgrad=False)


def amsgrad(w, g, st, lr, gs, p, quirks):
    return _adam(w, g, st, lr, p, amsgrad=True)


def momentum(w, g, st, lr, gs, p, quirks):
    lam, mu = _c(p["weight_decay_factor"]), _c(p["momentum"])
    dx = lr * (g + lam * w)
    n = mu * st - dx
    if p["use_nesterov"]:
        w = w - mu * st + (_c(1) + mu) * n
    else:
        w = w + n
    return w, n


def _rmsprop(w, g, st, lr, p, v2):
    lam, mu = tf.constant(float(p["weight_decay_factor"]), F64), \
        tf.constant(float(p["momentum"]), F64)
    dx = tf.cast(g, F64) + lam * tf.cast(w, F64)
    if v2:
        n = tf.cast(mu * tf.cast(st, F64) + dx * dx, tf.float32)
        eta = tf.cast(lr, F64)
    else:
        n = tf.cast(mu * tf.cast(st, F64) + (1.0 - mu) * dx * dx, tf.float32)
        eta = tf.constant(float(p["learning_rate"]), F64)   # v1 ignores the lr tensor
    eta_p = eta / (tf.sqrt(tf.cast(n, F64)) + 1.0)
    return tf.cast(tf.cast(w, F64) - eta_p * dx, tf.float32), n


def rmsprop(w, g, st, lr, gs, p, quirks):
    return _rmsprop(w, g, st, lr, p, v2=False)


def rmspropv2(w, g, st, lr, gs, p, quirks):
    return _rmsprop(w, g, st, lr, p, v2=True)


def batch_softmax(w, g, st, lr, gs, p, quirks):
    """num[0] tracks the mean step interval; the state is the int64 last step (two f32 words)."""
    last = tf.bitcast(st, tf.int64)                                 # [m, 2] f32 -> [m] i64
    delta = tf.cast(gs - last, tf.float32)
    w0 = (_c(1) - lr) * w[:, 0] + lr * delta
    w = tf.concat([w0[:, None], w[:, 1:]], 1)
    steps = tf.fill(tf.shape(last), gs)
    return w, tf.bitcast(steps, tf.float32)


def moving_average(w, g, st, lr, gs, p, quirks):
    mu = _c(p["momentum"])
    return mu * w + _c(F(1) - F(p["momentum"])) * g, st


def group_adagrad(w, g, st, lr, gs, p, quirks):
    d = w.shape[1]
    beta, l2, lam = _c(p["beta"]), _c(p["l2_regularization_strength"]), \
        _c(p["weight_decay_factor"])
    gp = g + lam * w
    s = st[:, 0] + tf.reduce_max(gp * gp, axis=1)
    eta_p = lr / (beta + tf.sqrt(s))                                # [m]
    z = gp - w / eta_p[:, None]
    sq = z[:, 0] * z[:, 0]
    for i in range(1, d):                                           # sequential sum order
        sq = sq + z[:, i] * z[:, i]
    norm = tf.sqrt(sq)
    scale = -eta_p * ((norm - l2) / norm)
    w = tf.where((norm < l2)[:, None], tf.zeros_like(z), scale[:, None] * z)
    return w, s[:, None]


STEPS = {f.__name__: f for f in (sgd, adagrad, ftrl, adadelta, adam, amsgrad, momentum, rmsprop,
                                 rmspropv2, batch_softmax, moving_average, group_adagrad)}
