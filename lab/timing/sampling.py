"""Paired, interleaved, adaptive sampling of one scenario on one engine.

Every measured step runs the scenario's ops; right after each engine call its baseline
(`lab.timing.baseline`) runs on the same payload, so each (engine, baseline) pair is one
ratio sample taken under the same machine conditions. Steps repeat until, for every op, the
95% CI of the median ratio is within `target` (±5%) of it, or until the per-op time budget
is spent. Steps cycle through the scenario's `steps` worth of inputs (`ScenarioExecution`'s
`cycle`), so the tables reach a steady size instead of growing with the number of samples.
Before sampling, paired steps run unrecorded for `warmup_s` seconds and at least one full
cycle (and the scenario's `warmup` steps): page faults, caches, clock speed and table sizes
settle first. One such sampling of a fresh engine is a *round*; `Sampling.rounds` > 1 asks
the runner (`lab.timing.runner`) for several rounds per scenario, spread over the run, because
samples inside one round share its table's memory placement and the machine's state of that
moment: the spread between rounds, not inside one, is what a second run will see. A `meter`
measures each call: wall-clock seconds here, callgrind counts in the simulated cost mode
(`lab.timing.simulated`).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import psutil

from lab.scenarios.execute import ScenarioExecution, call_label, wall_meter
from lab.timing.baseline import Baselines, kind_for
from lab.timing.stats import relative_half_width


@dataclasses.dataclass(frozen=True)
class Sampling:
    """When to stop sampling a scenario: after `min_samples` once every op's median ratio is
    known to ±`target` (95% CI), after `max_samples` in any case, and once `cap_s` seconds
    per measured op have passed (but never before `floor` samples). `warmup_s`: unrecorded
    paired steps first, for at least that long.

    `long_s` bounds the slow cases (a 4 M-entry checkpoint written entry by entry in Python
    takes many minutes a step): warm-up stops after the step that passes it, and sampling
    stops once it has passed with at least one sample, `floor` or not.

    `rounds`: independent samplings of each scenario (a fresh engine and tables each time),
    interleaved with the other scenarios' rounds; every limit above applies to one round."""
    min_samples: int = 10
    max_samples: int = 300
    target: float = 0.05
    cap_s: float = 3.0
    floor: int = 3
    warmup_s: float = 1.0
    max_warmup_steps: int = 200
    long_s: float = 120.0
    rounds: int = 1

    def __post_init__(self):
        if not (isinstance(self.rounds, int) and self.rounds >= 1):
            raise ValueError(f"rounds: must be an integer >= 1, got {self.rounds!r}")

    @classmethod
    def fixed(cls, n: int) -> "Sampling":
        """Exactly n samples after the scenario's own warm-up (deterministic meters need no
        more)."""
        return cls(min_samples=n, max_samples=n, cap_s=float("inf"), floor=n, warmup_s=0.0,
                   long_s=float("inf"))

    def converged(self, samples: "OpSamples") -> bool:
        return relative_half_width(samples.precision_series()) <= self.target

    def done(self, ops: list["OpSamples"], elapsed: float) -> bool:
        if not ops:
            return True
        n = min(len(o.engine) for o in ops)
        if n >= self.max_samples:
            return True
        if n >= self.min_samples and all(self.converged(o) for o in ops):
            return True
        if n >= 1 and elapsed >= self.long_s:
            return True
        return n >= self.floor and elapsed >= self.cap_s * len(ops)


QUICK_SAMPLING = Sampling(min_samples=5, max_samples=30, cap_s=0.5, warmup_s=0.1)


@dataclasses.dataclass
class OpSamples:
    """Raw measurements of one op of a scenario, in call order."""
    index: int
    op: str
    kind: str | None                      # its baseline (None: the op has none)
    row_width: int = 0
    engine: list = dataclasses.field(default_factory=list)     # one per engine call
    baseline: list = dataclasses.field(default_factory=list)   # paired; nan without one
    n_ids: list = dataclasses.field(default_factory=list)
    nbytes: list = dataclasses.field(default_factory=list)
    labels: list = dataclasses.field(default_factory=list)     # the meter's call labels
    load: list = dataclasses.field(default_factory=list)       # 1-min load avg per step
    rounds: list = dataclasses.field(default_factory=list)     # the round of each call

    def absorb(self, other: "OpSamples", round_index: int) -> None:
        """Append another round's samples of the same op (the runner's rounds)."""
        for name in ("engine", "baseline", "n_ids", "nbytes", "labels", "load"):
            getattr(self, name).extend(getattr(other, name))
        self.rounds.extend([round_index] * len(other.engine))

    def ratios(self) -> list[float]:
        return [e / b for e, b in zip(self.engine, self.baseline) if b == b and b > 0]

    def precision_series(self) -> list[float]:
        """What the precision target applies to: the paired ratios, or the engine times for
        an op without a baseline."""
        return self.ratios() if self.kind is not None else list(self.engine)


def baseline_label(label: str) -> str:
    return f"{label}#baseline"


def rss_bytes(proc: psutil.Process) -> int:
    """This process plus its children (out-of-process engines run their tables there)."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


class RoundSampler:
    """One round of one scenario on one engine, in steps: `prepare()` builds and prefills the
    tables and runs the unrecorded warm-up steps; each `step()` is one measured step (every
    op and its baseline once) and says whether sampling is done; `result()` gives
    ({op index: OpSamples}, peak RSS bytes). `sample()` does the steps until done.

    Split so that another process can take its steps in between (an A/B session alternates
    two builds step by step, or runs them in lockstep): the time budget therefore counts the
    seconds this sampler itself spent in its steps, not the wall clock.

    Warm-up steps run with a plain wall clock and are dropped. `observe=False` leaves out the
    machine readings (RSS, load average): their varying values would change the process's
    heap between runs, and with it the simulated mode's counts."""

    def __init__(self, scenario, engine, workdir: str, baselines: Baselines,
                 sampling: Sampling, meter: Callable = wall_meter,
                 skip: frozenset = frozenset(), observe: bool = True):
        self.scenario, self.engine, self.workdir = scenario, engine, workdir
        self.baselines, self.sampling, self.meter = baselines, sampling, meter
        self.skip, self.observe = skip, observe
        self._ex = None
        self._step = 0
        self._proc = psutil.Process() if observe else None
        self._peak = 0
        self._busy = 0.0
        self._ops: dict[int, OpSamples] = {}

    def prepare(self) -> None:
        scenario, sampling = self.scenario, self.sampling
        ex = ScenarioExecution(scenario, self.engine, self.workdir, capture=False,
                               meter=wall_meter, cycle=scenario.steps)
        ex.setup()
        self._peak = rss_bytes(self._proc) if self.observe else 0
        step, start = 0, time.perf_counter()
        least = scenario.warmup + scenario.steps
        while True:
            elapsed = time.perf_counter() - start
            more = (step < least and elapsed < sampling.long_s) or (
                elapsed < sampling.warmup_s and step < sampling.max_warmup_steps)
            if not more:
                break
            _paired_step(ex, scenario, step, self.baselines, wall_meter, self.skip, {},
                         self.observe)
            step += 1
        ex.meter = self.meter
        self._ex, self._step = ex, step

    def step(self) -> bool:
        """One measured step; True once the sampling rules say the round is done."""
        if self._ex is None:
            raise RuntimeError("RoundSampler.step: call prepare() first")
        started = time.perf_counter()
        _paired_step(self._ex, self.scenario, self._step, self.baselines, self.meter,
                     self.skip, self._ops, self.observe)
        if self.observe:
            self._peak = max(self._peak, rss_bytes(self._proc))
        self._step += 1
        self._busy += time.perf_counter() - started
        return self.sampling.done(list(self._ops.values()), self._busy)

    def result(self) -> tuple[dict[int, OpSamples], int]:
        self._ex = None
        return self._ops, self._peak

    def sample(self) -> tuple[dict[int, OpSamples], int]:
        while not self.step():
            pass
        return self.result()


def sample_scenario(scenario, engine, workdir: str, baselines: Baselines, sampling: Sampling,
                    meter: Callable = wall_meter, skip: frozenset = frozenset(),
                    observe: bool = True) -> tuple[dict[int, OpSamples], int]:
    """({op index: OpSamples}, peak RSS bytes) for one engine on one scenario: one round,
    prepared and sampled (`RoundSampler`)."""
    sampler = RoundSampler(scenario, engine, workdir, baselines, sampling, meter, skip,
                           observe)
    sampler.prepare()
    return sampler.sample()


def _paired_step(ex, scenario, step, baselines, meter, skip, ops, observe) -> None:
    """One step of the scenario, each engine call followed by its baseline; recorded in
    `ops`."""
    load = os.getloadavg()[0] if observe else float("nan")
    for out in ex.run(steps=1, first_step=step, skip=skip):
        rec = ops.get(out.index)
        if rec is None:
            rec = ops[out.index] = OpSamples(out.index, out.op, kind_for(out.op),
                                             out.row_width)
        label = call_label(scenario.name, step, out.index, out.op)
        base = baselines.prepare(rec.kind, scenario.prefill, out.row_width, out.n_ids,
                                 out.nbytes, out.files)
        base_value = meter(base, baseline_label(label))[1] if base else float("nan")
        rec.engine.append(out.seconds)
        rec.baseline.append(base_value)
        rec.n_ids.append(out.n_ids)
        rec.nbytes.append(out.nbytes)
        rec.labels.append(label)
        rec.load.append(load)
