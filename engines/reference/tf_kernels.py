"""TensorFlow's own sparse training kernels, for the "tensorflow" engine's `kernels="tf"` mode.

Each `apply_*` updates the resource variables of one segment in place for distinct `rows`
through a `tf.raw_ops.ResourceSparseApply*` kernel (or `ResourceScatterSub` for SGD), feeding
it Monolith's inputs: the gradient with Monolith's weight decay already added (g' = g + λ·w,
as Monolith's scalar rules do) and hyper-parameters mapped onto TF's parameterisation.
Where TF's kernel math differs from Monolith's the result differs too: DIVERGENCES says how,
and tests/tf measures it. Optimizers without a sparse TF kernel are not here; the engine runs
them with the Monolith formulas of tf_optimizers.
"""
from __future__ import annotations

import numpy as np

from engines.api import Divergence
from engines.reference.tf_runtime import tf

F = np.float32

# optimizer -> why TF's kernel does not reproduce Monolith's numbers, and by how much at most
# (the parity runner marks results within the bound "known_divergence" and fails the rest).
# SGD through ResourceScatterSub is bit-identical. Every bound is per optimizer step and
# about three times the worst absolute difference per step measured in tf_oracle's cases (1,
# 5, 20 and 60 steps) and in the quick and default profiles' optimizer_sweep and
# fused_multi_table (docs/semantics.md §4, "Known divergences").
DIVERGENCES = {
    "adagrad": Divergence(
        "ResourceSparseApplyAdagradV2 computes w -= lr*g/(sqrt(n)+eps) with eps=0; Monolith "
        "computes w -= (lr/sqrt(n))*g: same math, different rounding (a few ulp per step, "
        "many more for weights that cancel to near zero; measured at most 1.8e-7 absolute "
        "per step).", max_ulp=4, max_rel=1e-5, abs_floor=6e-7, per_step=True),
    "ftrl": Divergence(
        "ResourceSparseApplyFtrlV2 uses TF's FTRL-Proximal parameterisation (w = (sgn(z)*l1 - "
        "z)/(sqrt(n)/lr + 2*l2)); Monolith's beta and l2 are mapped to TF's l2 = "
        "(beta/lr + l2)/2, which is the same math with different rounding (measured at most "
        "3.7e-5 absolute per step, in the accumulators). Monolith's sign-bit L1 bug cannot "
        "be expressed (quirks are refused).",
        max_ulp=4, max_rel=1e-4, abs_floor=1.2e-4, per_step=True),
    "adadelta": Divergence(
        "ResourceSparseApplyAdadelta uses rsqrt(accum+eps) (Eigen's rsqrt is not correctly "
        "rounded) and multiplies in another order: a few ulp per step (measured at most "
        "2.4e-7 absolute per step).", max_ulp=8, max_rel=1e-5, abs_floor=8e-7, per_step=True),
    "momentum": Divergence(
        "ResourceSparseApplyKerasMomentum matches Monolith's plain momentum, but its Nesterov "
        "form is w += mu*n - lr*g' where Monolith computes w - mu*n_prev + (1+mu)*n: equal in "
        "exact arithmetic, different rounding (measured at most 1e-7 absolute per step).",
        max_ulp=4, max_rel=1e-5, abs_floor=3e-7, per_step=True),
    "rmsprop": Divergence(
        "ResourceSparseApplyRMSProp runs in f32 with the epsilon inside the root "
        "(lr*g/sqrt(ms+eps), eps=1 here) while Monolith runs in float64 with lr/(sqrt(n)+1): "
        "a real formula difference, growing with n (measured at most 6.7e-3 absolute per "
        "step).", max_rel=0.1, abs_floor=2e-2, per_step=True),
}


def _scalar(x):
    return tf.cast(x, tf.float32)


def apply_sgd(var, slots, rows, g, lr, p, scratch):
    tf.raw_ops.ResourceScatterSub(resource=var.handle, indices=rows, updates=lr * g)


def _decayed(var, rows, g, p):
    lam = F(p.get("weight_decay_factor", 0.0))
    if lam == 0:
        return g
    return g + lam * tf.gather(var, rows)


def apply_adagrad(var, slots, rows, g, lr, p, scratch):
    tf.raw_ops.ResourceSparseApplyAdagradV2(
        var=var.handle, accum=slots[0].handle, lr=_scalar(lr), epsilon=_scalar(0.0),
        grad=_decayed(var, rows, g, p), indices=rows)


def apply_ftrl(var, slots, rows, g, lr, p, scratch):
    norm, zero = slots
    # Monolith's denominator (sqrt(n) + beta + l2*lr)/lr equals TF's sqrt(n)/lr + 2*l2_tf.
    l2_tf = (F(p["beta"]) / lr + F(p["l2_regularization_strength"])) / F(2)
    tf.raw_ops.ResourceSparseApplyFtrlV2(
        var=var.handle, accum=norm.handle, linear=zero.handle, grad=g, indices=rows,
        lr=_scalar(lr), l1=_scalar(p["l1_regularization_strength"]), l2=_scalar(l2_tf),
        l2_shrinkage=_scalar(0.0), lr_power=_scalar(-0.5))


def apply_adadelta(var, slots, rows, g, lr, p, scratch):
    accum, accum_update = slots
    tf.raw_ops.ResourceSparseApplyAdadelta(
        var=var.handle, accum=accum.handle, accum_update=accum_update.handle, lr=_scalar(lr),
        rho=_scalar(p["averaging_ratio"]), epsilon=_scalar(p["epsilon"]),
        grad=_decayed(var, rows, g, p), indices=rows)


def apply_momentum(var, slots, rows, g, lr, p, scratch):
    # Keras momentum keeps n = mu*n - lr*g' and w += n: Monolith's state, not TF's
    # lr-free accumulator of ResourceSparseApplyMomentum.
    tf.raw_ops.ResourceSparseApplyKerasMomentum(
        var=var.handle, accum=slots[0].handle, lr=_scalar(lr), grad=_decayed(var, rows, g, p),
        indices=rows, momentum=_scalar(p["momentum"]), use_nesterov=bool(p["use_nesterov"]))


def apply_rmsprop(var, slots, rows, g, lr, p, scratch):
    # v1 uses the config learning rate (core §3.8); momentum 0 makes `scratch` (TF's mom
    # slot, not part of Monolith's state) a plain per-step buffer.
    tf.raw_ops.ResourceSparseApplyRMSProp(
        var=var.handle, ms=slots[0].handle, mom=scratch.handle,
        lr=_scalar(p["learning_rate"]), rho=_scalar(p["momentum"]), momentum=_scalar(0.0),
        epsilon=_scalar(1.0), grad=_decayed(var, rows, g, p), indices=rows)


KERNELS = {
    "sgd": apply_sgd, "adagrad": apply_adagrad, "ftrl": apply_ftrl,
    "adadelta": apply_adadelta, "momentum": apply_momentum, "rmsprop": apply_rmsprop,
}
# the kernels that need an extra TF-only slot
NEEDS_SCRATCH = frozenset({"rmsprop"})
