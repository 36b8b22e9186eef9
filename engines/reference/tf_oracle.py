"""TensorFlow's training kernels as an oracle for our optimizer math.

`optimizer_oracle_table()` runs, for every optimizer that has a TF kernel, the numpy reference
(engines.reference.optimizers: Monolith's formulas) and the TF kernel on the same random rows
and gradients for a few steps, and reports how far apart they end up (embeddings and optimizer
state), with the reason for every nonzero difference. Monolith's known bugs are compared too
(variant "monolith_quirks"): there the difference is the bug. `hashlab report` shows the table.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from engines.config import parse_table_config, table_config
from engines.formats import entry_codec
from engines.reference import optimizers

F = np.float32
COLUMNS = ["optimizer", "variant", "tf_kernel", "max_abs_err", "max_rel_err", "max_ulp",
           "explanation"]
BIT_IDENTICAL = ("bit-identical: TF's kernel evaluates Monolith's formula with the same "
                 "operations in the same order")


@dataclasses.dataclass(frozen=True)
class Case:
    optimizer: str
    variant: str
    tf_kernel: str
    fields: dict
    quirks: bool = False
    restore_between_steps: bool = False    # Adam: save/restore the state after step 1
    why: str = ""                          # the reason when the results differ


CASES = (
    Case("sgd", "default", "ResourceScatterSub", {}),
    Case("adagrad", "default", "ResourceSparseApplyAdagradV2", {},
         why="TF computes w -= lr*g/(sqrt(n)+eps) (eps=0); Monolith w -= (lr/sqrt(n))*g: "
             "the same math rounded in another order (1 ulp per operation; weights that "
             "cancel to near zero show large ulp counts at ~1e-8 absolute error)."),
    Case("adagrad", "weight_decay=0.1, monolith_quirks", "ResourceSparseApplyAdagradV2",
         {"weight_decay_factor": 0.1}, quirks=True,
         why="Monolith bug (core §3.2): its AVX path updates the first 8*floor(D/8) weights "
             "with the raw g instead of g + wd*w, so weight decay only reaches the "
             "accumulator; TF's kernel is fed g + wd*w as Monolith's scalar rule says."),
    Case("ftrl", "default", "ResourceSparseApplyFtrlV2", {"beta": 0.5,
                                                          "l2_regularization_strength": 0.1},
         why="TF's FTRL-Proximal divides by sqrt(n)/lr + 2*l2' (beta and l2 mapped to "
             "l2' = (beta/lr + l2)/2); Monolith multiplies by lr/(sqrt(n) + beta + l2*lr): "
             "equal in exact arithmetic, different rounding."),
    Case("ftrl", "l1=0.05", "ResourceSparseApplyFtrlV2", {"l1_regularization_strength": 0.05},
         why="Same FTRL-Proximal math with L1 shrinkage, rounded in another order."),
    Case("ftrl", "l1=0.05, monolith_quirks", "ResourceSparseApplyFtrlV2",
         {"l1_regularization_strength": 0.05}, quirks=True,
         why="Monolith bug (core §3.3): the L1 term uses the sign *bit* of z (0/1) instead "
             "of sgn(z), so positive z is not shrunk and negative z is pushed away by l1; "
             "TF's kernel is textbook FTRL-Proximal."),
    Case("adadelta", "default", "ResourceSparseApplyAdadelta", {},
         why="TF multiplies by rsqrt(accum+eps) (Eigen's rsqrt is not correctly rounded) "
             "and applies lr after the product; Monolith divides by sqrt(accum+eps)."),
    Case("momentum", "default", "ResourceSparseApplyKerasMomentum", {}),
    Case("momentum", "nesterov", "ResourceSparseApplyKerasMomentum", {"use_nesterov": True},
         why="TF's Nesterov step is w += mu*n - lr*g; Monolith's is w - mu*n_prev + (1+mu)*n: "
             "equal in exact arithmetic, different rounding."),
    Case("rmsprop", "default", "ResourceSparseApplyRMSProp", {},
         why="A formula difference: TF runs in f32 with the epsilon inside the root "
             "(lr*g/sqrt(ms+eps), eps=1 here), Monolith in float64 with lr/(sqrt(n)+1)."),
    Case("adam", "default", "ResourceApplyAdam", {},
         why="TF's dense Adam kernel, fed the same beta powers, rounds in another order."),
    Case("adam", "nesterov", "ResourceApplyAdam", {"use_nesterov": True},
         why="TF's Nesterov Adam combines m and g in another order than Monolith."),
    Case("adam", "restore, monolith_quirks", "ResourceApplyAdam", {}, quirks=True,
         restore_between_steps=True,
         why="Monolith bug (core §3.5): restoring a checkpoint puts the saved beta2_power "
             "into beta1_power and resets beta2_power to beta2, so the bias correction after "
             "a restore is wrong; TF's kernel keeps the true powers."),
    Case("amsgrad", "default", "ResourceApplyAdamWithAmsgrad", {},
         why="TF's AMSGrad kernel, fed the same beta powers, rounds in another order."),
)


def ordered_bits(x: np.ndarray) -> np.ndarray:
    """f32 -> int64 that is monotonic in the value, so differences count ulps (and -0 == +0)."""
    a = np.asarray(x, F).view(np.int32).astype(np.int64)
    return np.where(a < 0, np.int64(-(2 ** 31)) - a, a)


def compare(got: np.ndarray, want: np.ndarray) -> tuple[float, float, int]:
    """(max abs error, max relative error (floor 1e-12), max ulp distance)."""
    got, want = np.asarray(got, F).ravel(), np.asarray(want, F).ravel()
    if not got.size:
        return 0.0, 0.0, 0
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    rel = diff / np.maximum(np.abs(want.astype(np.float64)), 1e-12)
    ulp = np.abs(ordered_bits(got) - ordered_bits(want))
    return float(diff.max()), float(rel.max()), int(ulp.max())


def _reference_run(case, spec, params, dim, w, grads, lr):
    """The numpy reference (Monolith's formulas): the final (w, state). A restore between
    steps goes through the checkpoint codec, as a real save/restore would."""
    opt = optimizers.make(case.optimizer, dim, params)
    st = np.zeros((len(w), opt.words()), F)
    opt.init(st)
    w = w.copy()
    for step, g in enumerate(grads):
        opt.step(w, g.copy(), st, F(lr), 0, case.quirks)
        if case.restore_between_steps and step == 0:
            for r in range(len(st)):
                payload = entry_codec.encode_entry(spec, w[r], st[r], 0, entry_id=r)
                st[r] = entry_codec.decode_entry(spec, payload, "oracle", r, case.quirks)[2]
    return w, st


def _beta_powers(params, steps):
    """(beta1^t, beta2^t) for t = 1..steps, accumulated in f32 as the entries keep them."""
    b1, b2 = F(params["beta1"]), F(params["beta2"])
    out, p1, p2 = [], b1, b2
    for _ in range(steps):
        out.append((p1, p2))
        p1, p2 = p1 * b1, p2 * b2
    return out


def _tf_run(case, params, dim, w, grads, lr):
    from engines.reference.tf_runtime import tf

    from engines.reference import tf_kernels, tf_ops
    var = tf.Variable(w)
    rows = tf.range(len(w), dtype=tf.int64)
    words = optimizers.make(case.optimizer, dim, params).words()
    init = np.zeros((len(w), words), F)
    optimizers.make(case.optimizer, dim, params).init(init)
    if case.optimizer in tf_kernels.KERNELS:
        widths = {"ftrl": [dim, dim], "adadelta": [dim, dim]}.get(case.optimizer,
                                                                  [dim] if words else [])
        bounds = np.cumsum([0] + widths)
        slots = [tf.Variable(init[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        scratch = tf.Variable(np.zeros_like(w))
        kernel = tf_kernels.KERNELS[case.optimizer]
        with tf_ops.exact_math():
            for g in grads:
                kernel(var, slots, rows, tf.constant(g), tf.constant(F(lr)), params, scratch)
        return var.numpy(), np.concatenate([s.numpy() for s in slots] or [init], 1)
    # Adam family: TF has dense kernels only, taking the (shared) beta powers as inputs
    n = 3 if case.optimizer == "amsgrad" else 2
    m_slots = [tf.Variable(np.zeros_like(w)) for _ in range(n)]
    for g, (b1p, b2p) in zip(grads, _beta_powers(params, len(grads))):
        args = dict(var=var.handle, m=m_slots[0].handle, v=m_slots[1].handle,
                    beta1_power=F(b1p), beta2_power=F(b2p), lr=F(lr),
                    beta1=F(params["beta1"]), beta2=F(params["beta2"]),
                    epsilon=F(params["epsilon"]), grad=tf.constant(g))
        with tf_ops.exact_math():
            if case.optimizer == "amsgrad":
                tf.raw_ops.ResourceApplyAdamWithAmsgrad(vhat=m_slots[2].handle, **args)
            else:
                tf.raw_ops.ResourceApplyAdam(use_nesterov=bool(params["use_nesterov"]), **args)
    return var.numpy(), np.concatenate([s.numpy() for s in m_slots], 1)


def run_case(case: Case, seed: int = 0, rows: int = 256, dim: int = 16, steps: int = 5,
             lr: float = 0.05) -> dict:
    rng = np.random.default_rng(seed)
    spec = parse_table_config(table_config(dim=dim, optimizer=case.optimizer, **case.fields))
    params = dict(spec.segments[0].opt_params)
    w = rng.uniform(-0.1, 0.1, (rows, dim)).astype(F)
    grads = [rng.standard_normal((rows, dim)).astype(F) for _ in range(steps)]
    ref_w, ref_st = _reference_run(case, spec, params, dim, w, grads, lr)
    tf_w, tf_st = _tf_run(case, params, dim, w, grads, lr)
    # Compare the state words both sides keep (Adam's per-entry powers are ours only).
    shared = min(ref_st.shape[1], tf_st.shape[1])
    abs_err, rel_err, ulp = compare(np.concatenate([tf_w, tf_st[:, :shared]], 1),
                                    np.concatenate([ref_w, ref_st[:, :shared]], 1))
    return {"optimizer": case.optimizer, "variant": case.variant, "tf_kernel": case.tf_kernel,
            "max_abs_err": abs_err, "max_rel_err": rel_err, "max_ulp": ulp,
            "explanation": BIT_IDENTICAL if ulp == 0 else case.why}


def optimizer_oracle_table(seed: int = 0, rows: int = 256, dim: int = 16,
                           steps: int = 5) -> pd.DataFrame:
    """One row per (optimizer, variant): the numpy reference vs TF's training kernel after
    `steps` steps on `rows` random rows of `dim` elements. Needs TensorFlow."""
    return pd.DataFrame([run_case(c, seed, rows, dim, steps) for c in CASES], columns=COLUMNS)
