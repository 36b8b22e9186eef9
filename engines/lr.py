"""Learning-rate functions (Monolith's `learning_rate_functions.py`, core §8)."""
from __future__ import annotations

import math

import numpy as np


class PolynomialDecay:
    """`tf.compat.v1.train.polynomial_decay` as Monolith's PolynomialDecay evaluates it, in f32.

    Call it with the global step: `PolynomialDecay(0.01, 10, 0.11)(1) == 0.02`.
    An end value above the initial one gives a warm-up ramp.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int,
                 end_learning_rate: float = 0.0001, power: float = 1.0, cycle: bool = False):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.cycle = bool(cycle)

    def __call__(self, global_step: int) -> float:
        f32 = np.float32
        step = f32(global_step)
        decay = f32(self.decay_steps)
        if self.cycle:
            mult = f32(1.0) if global_step == 0 else f32(math.ceil(step / decay))
            decay = f32(decay * mult)
        else:
            step = min(step, decay)
        frac = f32(f32(1.0) - step / decay)
        initial, end = f32(self.initial_learning_rate), f32(self.end_learning_rate)
        return float(f32((initial - end) * f32(frac ** f32(self.power)) + end))

    def __repr__(self) -> str:
        # Monolith compares configs by this string: sorted keys.
        params = {"cycle": self.cycle, "decay_steps": self.decay_steps,
                  "end_learning_rate": self.end_learning_rate,
                  "initial_learning_rate": self.initial_learning_rate, "power": self.power}
        body = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
        return f'LearningRateFunction("PolynomialDecay",Params:{body})'


def warmup_learning_rate(opt_learning_rate: float, warmup_steps: int):
    """Monolith's default per-segment lr: a linear ramp from 0 when warmup_steps > 0."""
    if warmup_steps > 0:
        return PolynomialDecay(0.0, warmup_steps, opt_learning_rate)
    return float(opt_learning_rate)
