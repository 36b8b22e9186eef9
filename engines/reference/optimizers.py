"""Optimizer math of Monolith's embedding table (core §3), vectorised over rows, in f32.

Each optimizer updates `w` ([m, D] f32) and its state words `st` ([m, words] f32) in place for
m distinct ids. Every expression is evaluated in f32 in the order core §3 writes it (numpy
keeps f32 when both operands are f32, so every constant is an `F(...)`), except RMSprop, which
Monolith evaluates in double. `quirks=True` selects Monolith's known bugs (docs/semantics.md §4).
"""
from __future__ import annotations

import numpy as np

from engines.vocabulary import OPTIMIZERS

F = np.float32


def _fma32(a, b, c):
    """f32 fused multiply-add: a*b is exact in f64, so one f64 add then one rounding."""
    return (a.astype(np.float64) * np.float64(b) + c.astype(np.float64)).astype(np.float32) \
        if isinstance(a, np.ndarray) else F(np.float64(a) * np.float64(b) + np.float64(c))


class Optimizer:
    """One segment's optimizer. Subclasses define `init` and `step`; the state layout (and how
    checkpoints store it) is engines.vocabulary's."""
    name = ""

    def __init__(self, dim: int, params: dict):
        self.dim = dim
        self.p = {k: (F(v) if isinstance(v, float) else v) for k, v in params.items()}

    def words(self) -> int:
        return OPTIMIZERS[self.name].state_words(self.dim)

    def init(self, st: np.ndarray) -> None:
        """Fill fresh state rows (st: [m, words])."""

    def step(self, w, g, st, lr, global_step, quirks):
        raise NotImplementedError


class Sgd(Optimizer):
    name = "sgd"

    def step(self, w, g, st, lr, global_step, quirks):
        w -= F(lr) * g


class Adagrad(Optimizer):
    name = "adagrad"

    def init(self, st):
        st[:] = self.p["initial_accumulator_value"]

    def step(self, w, g, st, lr, global_step, quirks):
        lam, eta = self.p["weight_decay_factor"], F(lr)
        n = st
        if quirks and lam != 0:
            # Monolith's AVX path on the first 8*floor(D/8) elements: FMAs, and the weight
            # update uses the raw g (weight decay only reaches the accumulator).
            k = 8 * (self.dim // 8)
            gp = _fma32(w[:, :k], lam, g[:, :k])
            n[:, :k] = _fma32(gp, gp, n[:, :k])
            w[:, :k] -= (eta / np.sqrt(n[:, :k])) * g[:, :k]
            sl = slice(k, self.dim)
        else:
            sl = slice(0, self.dim)
        gp = g[:, sl] + lam * w[:, sl]
        n[:, sl] += gp * gp
        w[:, sl] -= (eta / np.sqrt(n[:, sl])) * gp


class Ftrl(Optimizer):
    name = "ftrl"

    def init(self, st):
        st[:, :self.dim] = self.p["initial_accumulator_value"]
        st[:, self.dim:] = F(0)

    def step(self, w, g, st, lr, global_step, quirks):
        d, eta = self.dim, F(lr)
        beta, l1, l2 = self.p["beta"], self.p["l1_regularization_strength"], \
            self.p["l2_regularization_strength"]
        n, z = st[:, :d], st[:, d:]
        n_new = n + g * g
        sigma = (np.sqrt(n_new) - np.sqrt(n)) / eta
        z[:] = z + g - sigma * w
        n[:] = n_new
        if quirks:
            s = np.signbit(z).astype(np.float32)          # sign *bit*: 1 for z < 0 (or -0.0)
        else:
            s = np.sign(z).astype(np.float32)             # textbook FTRL-Proximal
        num = eta * (s * l1 - z)
        den = np.sqrt(n) + beta + l2 * eta
        w[:] = np.where(np.abs(z) > l1, num / den, F(0))


class Adadelta(Optimizer):
    name = "adadelta"

    def step(self, w, g, st, lr, global_step, quirks):
        d, eta = self.dim, F(lr)
        lam, rho, eps = self.p["weight_decay_factor"], self.p["averaging_ratio"], self.p["epsilon"]
        a, u_acc = st[:, :d], st[:, d:]
        gp = g + lam * w
        a_new = rho * a + (F(1) - rho) * (gp * gp)
        u = np.sqrt(u_acc + eps) / np.sqrt(a_new + eps) * gp
        w -= eta * u
        u_acc[:] = rho * u_acc + (F(1) - rho) * (u * u)
        a[:] = a_new


class Adam(Optimizer):
    """Adam; `Amsgrad` reuses it with the v-hat maximum (core §3.5, §3.6)."""
    name = "adam"
    amsgrad = False


    def _powers(self, st):
        k = (3 if self.amsgrad else 2) * self.dim
        return st[:, k:k + 1], st[:, k + 1:k + 2]

    def init(self, st):
        st[:] = F(0)
        b1p, b2p = self._powers(st)
        b1p[:] = self.p["beta1"]
        b2p[:] = self.p["beta2"]

    def step(self, w, g, st, lr, global_step, quirks):
        d, eta = self.dim, F(lr)
        b1, b2, eps, lam = self.p["beta1"], self.p["beta2"], self.p["epsilon"], \
            self.p["weight_decay_factor"]
        m, v = st[:, :d], st[:, d:2 * d]
        b1p, b2p = self._powers(st)
        eta_t = eta * np.sqrt(F(1) - b2p) / (F(1) - b1p)          # [m, 1]
        gp = g + lam * w
        m += (gp - m) * (F(1) - b1)
        v += (gp * gp - v) * (F(1) - b2)
        if self.amsgrad:
            vhat = st[:, 2 * d:3 * d]
            np.maximum(vhat, v, out=vhat)
            denom = np.sqrt(vhat) + eps
        else:
            denom = np.sqrt(v) + eps
        if self.p["use_nesterov"]:
            w -= eta_t * ((F(1) - b1) * gp + b1 * m) / denom
        else:
            w -= eta_t * m / denom
        b1p *= b1
        b2p *= b2


class Amsgrad(Adam):
    name = "amsgrad"
    amsgrad = True


class Momentum(Optimizer):
    name = "momentum"

    def step(self, w, g, st, lr, global_step, quirks):
        eta, lam, mu = F(lr), self.p["weight_decay_factor"], self.p["momentum"]
        dx = eta * (g + lam * w)
        if self.p["use_nesterov"]:
            n_prev = st.copy()
            st[:] = mu * st - dx
            w[:] = w - mu * n_prev + (F(1) + mu) * st
        else:
            st[:] = mu * st - dx
            w += st


class Rmsprop(Optimizer):
    """RMSprop v1: double arithmetic, config learning rate, "+1" as epsilon (core §3.8)."""
    name = "rmsprop"
    v2 = False


    def step(self, w, g, st, lr, global_step, quirks):
        f64 = np.float64
        lam, mu = f64(self.p["weight_decay_factor"]), f64(self.p["momentum"])
        dx = g.astype(f64) + lam * w.astype(f64)
        if self.v2:
            n = (mu * st.astype(f64) + dx * dx).astype(np.float32)
            eta = f64(F(lr))
        else:
            n = (mu * st.astype(f64) + (f64(1) - mu) * dx * dx).astype(np.float32)
            eta = f64(self.p["learning_rate"])
        st[:] = n
        eta_p = eta / (np.sqrt(n.astype(f64)) + f64(1))
        w[:] = (w.astype(f64) - eta_p * dx).astype(np.float32)


class RmspropV2(Rmsprop):
    name = "rmspropv2"
    v2 = True


class BatchSoftmax(Optimizer):
    """Estimates the mean step interval of an id in num[0] (core §3.10); ignores gradients."""
    name = "batch_softmax"

    def step(self, w, g, st, lr, global_step, quirks):
        alpha = F(lr)
        last = st.copy().view(np.int64)[:, 0]
        delta = (np.int64(global_step) - last).astype(np.float32)
        w[:, 0] = (F(1) - alpha) * w[:, 0] + alpha * delta
        st[:] = np.full(len(st), global_step, dtype=np.int64).view(np.float32).reshape(-1, 2)


class MovingAverage(Optimizer):
    name = "moving_average"

    def step(self, w, g, st, lr, global_step, quirks):
        mu = self.p["momentum"]
        w[:] = mu * w + (F(1) - mu) * g


class GroupAdagrad(Optimizer):
    name = "group_adagrad"

    def init(self, st):
        st[:] = self.p["initial_accumulator_value"]

    def step(self, w, g, st, lr, global_step, quirks):
        eta = F(lr)
        beta, l2, lam = self.p["beta"], self.p["l2_regularization_strength"], \
            self.p["weight_decay_factor"]
        gp = g + lam * w
        st[:, 0] += np.max(gp * gp, axis=1)
        eta_p = eta / (beta + np.sqrt(st[:, 0]))                  # [m]
        z = gp - w / eta_p[:, None]
        sq = z[:, 0] * z[:, 0]
        for i in range(1, self.dim):                               # sequential sum order
            sq += z[:, i] * z[:, i]
        norm = np.sqrt(sq)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = -eta_p * ((norm - l2) / norm)
        w[:] = np.where((norm < l2)[:, None], F(0), scale[:, None] * z)


_CLASSES = {c.name: c for c in (Sgd, Adagrad, Ftrl, Adadelta, Adam, Amsgrad, Momentum, Rmsprop,
                                RmspropV2, BatchSoftmax, MovingAverage, GroupAdagrad)}


def make(name: str, dim: int, params: dict) -> Optimizer:
    try:
        cls = _CLASSES[name]
    except KeyError:
        raise ValueError(f"optimizer: unknown optimizer {name!r}") from None
    return cls(dim, params)


def dc_gradient(g, w, latest, lam):
    """Delay compensation (core §3.15): g + λ·g²·(w − latest). Not reachable from config;
    kept so Monolith's Dc vectors can be checked on top of the base optimizers."""
    lam = F(lam)
    return g + lam * (g * g) * (w - latest)
