"""The timing runner: every scenario on every engine, one perf row per op (`lab.timing.rows`).

Wall-clock mode samples in this process (`lab.timing.sampling`: paired with the baseline,
adaptive). The simulated cost mode runs the same loop under callgrind in a child process per
engine (`lab.timing.simulated`).
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
from lab.timing.sampling import Sampling, sample_scenario


def time_scenario(scenario, choice, workdir: str, sampling: Sampling = Sampling()
                  ) -> list[dict]:
    """Wall-clock perf rows for one engine on one scenario (one row per op)."""
    engine = choice.make(scenario.threads)
    skip = frozenset(i for i, op in enumerate(scenario.ops) if skipped_op_reason(engine, op))
    base_dir = os.path.join(workdir, "baseline")
    os.makedirs(base_dir, exist_ok=True)
    ops, peak = sample_scenario(scenario, engine, os.path.join(workdir, "engine"),
                                Baselines(base_dir), sampling, skip=skip)
    return [perf_row(scenario, choice.label, ops[i], peak, WALL, sampling.target)
            for i in sorted(ops)]


def run_timing(scenarios, choices, skip_pairs=frozenset(), progress: bool = False,
               workdir: str | None = None, sampling: Sampling | None = None,
               measure: str = WALL, imports=()) -> pd.DataFrame:
    """Perf rows for every scenario x engine, except (engine label, scenario name) pairs in
    `skip_pairs` (those parity skipped: the engine cannot run them). `imports`: modules the
    simulated child imports first (e.g. one that registers a test-only engine)."""
    if measure not in MEASURES:
        raise ValueError(f"measure: must be one of {MEASURES}, got {measure!r}")
    todo = [(s, c) for s in scenarios for c in choices if (c.label, s.name) not in skip_pairs]
    if measure == SIMULATED:
        from lab.timing.simulated import run_simulated
        return pd.DataFrame(run_simulated(todo, progress=progress, workdir=workdir,
                                          imports=imports), columns=COLUMNS)
    from tqdm import tqdm
    sampling = sampling or Sampling()
    root = tempfile.mkdtemp(prefix="hashlab-timing-", dir=workdir)
    rows = []
    try:
        bar = tqdm(todo, desc="timing", unit="run", disable=not progress, leave=False)
        for scenario, choice in bar:
            bar.set_postfix_str(f"{scenario.name} / {choice.label}", refresh=True)
            run_dir = tempfile.mkdtemp(prefix="run-", dir=root)
            try:
                rows.extend(time_scenario(scenario, choice, run_dir, sampling))
            except Exception as exc:      # a crashing engine is a parity failure, not ours
                print(f"timing: {choice.label} on {scenario.name} failed: "
                      f"{type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return pd.DataFrame(rows, columns=COLUMNS)
