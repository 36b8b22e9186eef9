"""Gating simulated runs counter by counter.

A simulated run keeps, per call, callgrind's counts (`lab.timing.counters`): instructions, D1
misses, LL misses and branch mispredictions, besides the estimated-cycles cost. One weighted
sum hides what changed: an extra dependent DRAM access per id is +12% LL misses but only +9%
cost, and a change that trades misses for instructions can leave the cost flat. So each
counter is compared on its own, with its own threshold: the counts are deterministic (the
same code counts the same on any machine and load), so the thresholds can be small.

A counter's growth counts only when it matters: its extra events, weighed in cycles
(`COUNTERS`' weights), must add at least `MIN_SHARE` of the op's cost. Ten more LL misses on
a call of a million cycles are not a regression, whatever their ratio.

What no counter sees (docs/measurement.md has a measured example): software prefetches (a
removed prefetch changes no count, only when the miss is paid), memory-level parallelism
(ten independent misses count the same as ten dependent ones), the TLB and page faults, and
anything the kernel does. The A/B wall-clock gate (`hashlab ab`) sees those.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from lab.timing.counters import COUNTER_NAMES, COUNTERS

COST = "cost"
GATED = (COST, *COUNTER_NAMES)
# Same-code simulated runs count identically on all but a few ops (docs/measurement.md),
# so these are set by what a real regression looks like, not by noise.
DEFAULT_THRESHOLDS = {COST: 1.10, "instructions": 1.05, "d1_misses": 1.05, "ll_misses": 1.05,
                      "branch_misses": 1.10}
MIN_SHARE = 0.01


@dataclasses.dataclass(frozen=True)
class CounterChange:
    name: str
    base: float                  # median count per call before
    current: float               # and now
    change: float                # current / base (inf when base is 0 and current is not)
    share: float                 # (current - base) x weight / the op's base cost
    threshold: float

    @property
    def regressed(self) -> bool:
        return self.change > self.threshold and self.share >= MIN_SHARE

    @property
    def improved(self) -> bool:
        return self.change < 1.0 / self.threshold and -self.share >= MIN_SHARE

    def text(self) -> str:
        change = "new" if self.change == float("inf") else f"{self.change:.3f}x"
        mark = " REGRESSED" if self.regressed else ""
        return f"{self.name} {change}{mark}"


def thresholds(overrides: dict | None = None, cost: float | None = None) -> dict:
    """DEFAULT_THRESHOLDS with `cost` and per-counter `overrides` applied."""
    out = dict(DEFAULT_THRESHOLDS)
    if cost is not None:
        out[COST] = cost
    out.update(overrides or {})
    return out


def _ratio(current: float, base: float) -> float:
    if base > 0:
        return current / base
    return 1.0 if current <= 0 else float("inf")


def compare_counters(current: dict, base: dict, limits: dict) -> list[CounterChange]:
    """One CounterChange per counter both runs kept. `current`, `base`: name -> per-call
    counts, "cost" included."""
    base_cost = float(np.median(base[COST]))
    out = []
    for name in GATED:
        if name not in current or name not in base or not current[name] or not base[name]:
            continue
        b, c = float(np.median(base[name])), float(np.median(current[name]))
        weight = 1.0 if name == COST else COUNTERS[name][1]
        share = (c - b) * weight / base_cost if base_cost > 0 else 0.0
        out.append(CounterChange(name, b, c, _ratio(c, b), share, limits[name]))
    return out


def deciding(changes: list[CounterChange]) -> CounterChange:
    """The counter a verdict rests on: the regressed one furthest past its threshold, else
    the cost."""
    regressed = [c for c in changes if c.regressed]
    if regressed:
        return max(regressed, key=lambda c: c.change / c.threshold)
    return next(c for c in changes if c.name == COST)
