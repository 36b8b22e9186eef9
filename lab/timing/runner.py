"""The timing runner: every scenario on every engine, one perf row per op (`lab.timing.rows`).

Wall-clock mode samples in this process (`lab.timing.sampling`: paired with the baseline,
adaptive), in `Sampling.rounds` rounds: round r of every scenario x engine runs before round
r + 1 of any, so an op's rounds are spread over the whole run. The simulated cost mode runs
the same loop under callgrind in a child process per engine (`lab.timing.simulated`).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pandas as pd

from lab.scenarios.execute import skipped_op_reason
from lab.timing.baseline import Baselines
from lab.timing.rows import COLUMNS, MEASURES, SIMULATED, WALL, perf_row
from lab.timing.sampling import OpSamples, RoundSampler, Sampling


def round_sampler(scenario, choice, workdir: str, sampling: Sampling,
                  takes: dict | None = None) -> RoundSampler:
    """One round of `scenario` on a fresh engine of `choice`, not yet prepared. `takes`: a
    dict that keeps the dense-take baselines' inputs across rounds (see `Baselines`)."""
    engine = choice.make(scenario.threads)
    skip = frozenset(i for i, op in enumerate(scenario.ops) if skipped_op_reason(engine, op))
    base_dir = os.path.join(workdir, "baseline")
    os.makedirs(base_dir, exist_ok=True)
    return RoundSampler(scenario, engine, os.path.join(workdir, "engine"),
                        Baselines(base_dir, takes=takes), sampling, skip=skip)


def _one_round(scenario, choice, workdir: str, sampling: Sampling):
    """({op index: OpSamples}, peak RSS) of one round: a fresh engine, sampled once."""
    sampler = round_sampler(scenario, choice, workdir, sampling)
    sampler.prepare()
    return sampler.sample()


class _Rounds:
    """The rounds of one scenario on one engine, gathered into one record per op."""

    def __init__(self):
        self.ops: dict[int, OpSamples] = {}
        self.peak = 0

    def add(self, ops: dict[int, OpSamples], peak: int, round_index: int) -> None:
        for i, rec in ops.items():
            mine = self.ops.setdefault(i, OpSamples(rec.index, rec.op, rec.kind, rec.row_width))
            mine.absorb(rec, round_index)
        self.peak = max(self.peak, peak)

    def rows(self, scenario, label: str, sampling: Sampling) -> list[dict]:
        return [perf_row(scenario, label, self.ops[i], self.peak, WALL, sampling.target)
                for i in sorted(self.ops)]


def time_scenario(scenario, choice, workdir: str, sampling: Sampling = Sampling()
                  ) -> list[dict]:
    """Wall-clock perf rows for one engine on one scenario (one row per op), its
    `sampling.rounds` rounds back to back."""
    acc = _Rounds()
    for r in range(sampling.rounds):
        run_dir = tempfile.mkdtemp(prefix=f"round{r}-", dir=workdir)
        try:
            acc.add(*_one_round(scenario, choice, run_dir, sampling), r)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    return acc.rows(scenario, choice.label, sampling)


def run_timing(scenarios, choices, skip_pairs=frozenset(), progress: bool = False,
               workdir: str | None = None, sampling: Sampling | None = None,
               measure: str = WALL, imports=(), profiles: list | None = None
               ) -> pd.DataFrame:
    """Perf rows for every scenario x engine, except (engine label, scenario name) pairs in
    `skip_pairs` (those parity skipped: the engine cannot run them). `imports`: modules the
    simulated child imports first (e.g. one that registers a test-only engine). `profiles`
    (simulated): a list that receives every op's profile (`lab.explain.profiles`)."""
    if measure not in MEASURES:
        raise ValueError(f"measure: must be one of {MEASURES}, got {measure!r}")
    todo = [(s, c) for s in scenarios for c in choices if (c.label, s.name) not in skip_pairs]
    if measure == SIMULATED:
        from lab.timing.simulated import run_simulated
        return pd.DataFrame(run_simulated(todo, progress=progress, workdir=workdir,
                                          imports=imports, profiles=profiles),
                            columns=COLUMNS)
    from tqdm import tqdm
    sampling = sampling or Sampling()
    root = tempfile.mkdtemp(prefix="hashlab-timing-", dir=workdir)
    gathered = {i: _Rounds() for i in range(len(todo))}
    try:
        # Round r of every pair before round r + 1 of any: each op's rounds spread over the run.
        bar = tqdm(total=len(todo) * sampling.rounds, desc="timing", unit="run",
                   disable=not progress, leave=False)
        for r in range(sampling.rounds):
            for i, (scenario, choice) in enumerate(todo):
                bar.update()
                if i not in gathered:
                    continue                      # failed in an earlier round
                bar.set_postfix_str(f"{scenario.name} / {choice.label}"
                                    + (f" (round {r + 1}/{sampling.rounds})"
                                       if sampling.rounds > 1 else ""), refresh=True)
                run_dir = tempfile.mkdtemp(prefix="run-", dir=root)
                try:
                    gathered[i].add(*_one_round(scenario, choice, run_dir, sampling), r)
                except Exception as exc:  # a crashing engine is a parity failure, not ours
                    print(f"timing: {choice.label} on {scenario.name} failed: "
                          f"{type(exc).__name__}: {exc}", file=sys.stderr)
                    del gathered[i]
                finally:
                    shutil.rmtree(run_dir, ignore_errors=True)
        bar.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [row for i, (scenario, choice) in enumerate(todo) if i in gathered
            for row in gathered[i].rows(scenario, choice.label, sampling)]
    return pd.DataFrame(rows, columns=COLUMNS)
