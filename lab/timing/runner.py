"""The timing runner: warm-up steps, then measured steps; per op the median and IQR of the
engine call, ids/s, bytes/s, peak RSS and the ratio to the same-run baseline."""
from __future__ import annotations

import collections
import json
import shutil
import sys
import tempfile

import pandas as pd
import psutil

from lab.scenarios.execute import ScenarioExecution, skipped_op_reason
from lab.timing.baseline import Baselines, kind_for
from lab.timing.stats import iqr, median, rate

COLUMNS = ["engine", "scenario", "base_scenario", "op", "op_index", "threads", "batch_size",
           "dim", "n_ids", "repeats", "median_s", "iqr_s", "ids_per_s", "bytes_per_s",
           "peak_rss_mb", "baseline", "baseline_median_s", "ratio_to_baseline", "params"]


def _rss_bytes(proc: psutil.Process) -> int:
    """This process plus its children (out-of-process engines run their tables there)."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def time_scenario(scenario, choice, baselines: Baselines, workdir: str) -> list[dict]:
    """Perf rows for one engine on one scenario (one row per op of the sequence)."""
    engine = choice.make(scenario.threads)
    skip = frozenset(i for i, op in enumerate(scenario.ops) if skipped_op_reason(engine, op))
    ex = ScenarioExecution(scenario, engine, workdir, capture=False)
    ex.setup()
    proc = psutil.Process()
    peak = _rss_bytes(proc)
    samples = collections.defaultdict(list)
    for outcome in ex.run(steps=scenario.warmup + scenario.steps, skip=skip):
        peak = max(peak, _rss_bytes(proc))
        if outcome.step >= scenario.warmup:
            samples[outcome.index].append(outcome)
    rows = []
    for index in sorted(samples):
        outs = samples[index]
        secs = [o.seconds for o in outs]
        med = median(secs)
        n_ids = int(median([o.n_ids for o in outs]))
        nbytes = int(median([o.nbytes for o in outs]))
        op = outs[0].op
        kind = kind_for(op)
        base = baselines.seconds(kind, max(scenario.prefill, n_ids), outs[0].row_width, n_ids,
                                 nbytes)
        dims = sorted({t.dim() for t in scenario.tables})
        rows.append({
            "engine": choice.label, "scenario": scenario.name,
            "base_scenario": scenario.base_name, "op": op, "op_index": index,
            "threads": scenario.threads, "batch_size": scenario.batch_size,
            "dim": dims[0] if len(dims) == 1 else None, "n_ids": n_ids, "repeats": len(secs),
            "median_s": med, "iqr_s": iqr(secs), "ids_per_s": rate(n_ids, med),
            "bytes_per_s": rate(nbytes, med), "peak_rss_mb": peak / 2 ** 20,
            "baseline": kind, "baseline_median_s": base,
            "ratio_to_baseline": med / base if base == base and base > 0 else float("nan"),
            "params": json.dumps(dict(scenario.params), sort_keys=True)})
    return rows


def run_timing(scenarios, choices, skip_pairs=frozenset(), progress: bool = False,
               workdir: str | None = None) -> pd.DataFrame:
    """Perf rows for every scenario x engine, except (engine label, scenario name) pairs in
    `skip_pairs` (those parity skipped: the engine cannot run them)."""
    from tqdm import tqdm
    root = tempfile.mkdtemp(prefix="hashlab-timing-", dir=workdir)
    baselines = Baselines(workdir=root)
    rows = []
    todo = [(s, c) for s in scenarios for c in choices if (c.label, s.name) not in skip_pairs]
    try:
        bar = tqdm(todo, desc="timing", unit="run", disable=not progress, leave=False)
        for scenario, choice in bar:
            bar.set_postfix_str(f"{scenario.name} / {choice.label}", refresh=True)
            run_dir = tempfile.mkdtemp(prefix="run-", dir=root)
            try:
                rows.extend(time_scenario(scenario, choice, baselines, run_dir))
            except Exception as exc:      # a crashing engine is a parity failure, not ours
                print(f"timing: {choice.label} on {scenario.name} failed: "
                      f"{type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return pd.DataFrame(rows, columns=COLUMNS)
