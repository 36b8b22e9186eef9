"""Perf rows: one per op of a scenario on an engine, from its raw samples.

Wall-clock rows (`measure` = "wall") hold seconds: `median_s` and its 95% CI
(`ci_low_s`, `ci_high_s`), the raw `samples_s`, the paired ratios to the baseline
(`ratio_samples`, their median `ratio_to_baseline` and its CI `ratio_ci_low/high`).

Simulated rows (`measure` = "simulated") hold callgrind counts instead of seconds: the cost of
a call is its estimated cycles (`lab.timing.simulated.cost`); `median_cost`,
`baseline_median_cost` and `cost_samples` take the place of `median_s`,
`baseline_median_s` and `samples_s` (which stay empty), and `instructions`, `l1_misses`,
`ll_misses`, `d1_misses` and `branch_misses` give the median counts behind the cost, while
`counter_samples` keeps every call's count of each (the gate compares them one by one). Ratios mean the same in both modes; a
simulated ratio's CI is the ratio itself (counts have no sampling error).

`rounds` is how many independent rounds (fresh engine and tables) the samples came from, and
`sample_rounds` the round of each sample, in the order of `samples_s` and `ratio_samples`
(the gate compares per-round medians when there are enough rounds; `lab.gate.significance`).

`mem_peak_bytes`, `mem_alloc_bytes`, `mem_rss_bytes` and `mem_samples` hold what the op's
calls allocated, when the run measured memory (`lab.timing.memory`; empty otherwise).

`unstable` marks a row whose ratio (or, without a baseline, whose time) is not known to the
precision target: its 95% CI reaches further than ±target from the median.
"""
from __future__ import annotations

import json

import numpy as np

from lab.timing.counters import COUNTER_NAMES
from lab.timing.sampling import OpSamples
from lab.timing.stats import iqr, median, median_ci, rate, relative_half_width

WALL, SIMULATED = "wall", "simulated"
MEASURES = (WALL, SIMULATED)

COLUMNS = ["engine", "scenario", "base_scenario", "op", "op_index", "threads", "batch_size",
           "dim", "n_ids", "repeats", "median_s", "iqr_s", "ids_per_s", "bytes_per_s",
           "peak_rss_mb", "baseline", "baseline_median_s", "ratio_to_baseline", "params",
           "ci_low_s", "ci_high_s", "ratio_ci_low", "ratio_ci_high", "samples_s",
           "ratio_samples", "unstable", "load_avg", "measure", "median_cost",
           "baseline_median_cost", "cost_samples", "instructions", "l1_misses", "ll_misses",
           "rounds", "sample_rounds", "d1_misses", "branch_misses", "counter_samples",
           "mem_peak_bytes", "mem_alloc_bytes", "mem_rss_bytes", "mem_samples"]

NAN = float("nan")


def perf_row(scenario, engine_label: str, rec: OpSamples, peak_rss: float, measure: str,
             target: float, counts: dict | None = None) -> dict:
    """The row of one op. `counts` (simulated only): event name -> per-call counts."""
    values = [float(v) for v in rec.engine]
    ratios = rec.ratios()
    bases = [b for b in rec.baseline if b == b]
    med = median(values)
    n_ids = int(median(rec.n_ids))
    nbytes = int(median(rec.nbytes))
    dims = sorted({t.dim() for t in scenario.tables})
    if measure == WALL:
        ratio_low, ratio_high = median_ci(ratios)
    else:                                 # exact counts: no sampling error to bound
        ratio_low = ratio_high = median(ratios) if ratios else NAN
    row = {
        "engine": engine_label, "scenario": scenario.name,
        "base_scenario": scenario.base_name, "op": rec.op, "op_index": rec.index,
        "threads": scenario.threads, "batch_size": scenario.batch_size,
        "dim": dims[0] if len(dims) == 1 else None, "n_ids": n_ids, "repeats": len(values),
        "baseline": rec.kind if bases else None,
        "ratio_to_baseline": median(ratios) if ratios else NAN,
        "params": json.dumps(dict(scenario.params), sort_keys=True),
        "ratio_ci_low": ratio_low, "ratio_ci_high": ratio_high,
        "ratio_samples": ratios, "measure": measure,
        "load_avg": float(np.mean(rec.load)) if rec.load else NAN,
        "sample_rounds": (list(rec.rounds) if len(rec.rounds) == len(values)
                          else [0] * len(values)),      # one round (simulated, direct use)
    }
    row["rounds"] = len(set(row["sample_rounds"])) or 1
    row.update({"mem_peak_bytes": NAN, "mem_alloc_bytes": NAN, "mem_rss_bytes": NAN,
                "mem_samples": {}})           # filled by the memory pass, when it runs
    if measure == WALL:
        low, high = median_ci(values)
        row.update({
            "median_s": med, "iqr_s": iqr(values), "ids_per_s": rate(n_ids, med),
            "bytes_per_s": rate(nbytes, med), "peak_rss_mb": peak_rss / 2 ** 20,
            "baseline_median_s": median(bases) if bases else NAN,
            "ci_low_s": low, "ci_high_s": high, "samples_s": values,
            "unstable": relative_half_width(rec.precision_series()) > target,
            "median_cost": NAN, "baseline_median_cost": NAN, "cost_samples": [],
            "instructions": NAN, "l1_misses": NAN, "ll_misses": NAN, "d1_misses": NAN,
            "branch_misses": NAN, "counter_samples": {}})
    else:
        counts = counts or {}
        row.update({
            "median_s": NAN, "iqr_s": NAN, "ids_per_s": NAN, "bytes_per_s": NAN,
            "peak_rss_mb": NAN, "baseline_median_s": NAN, "ci_low_s": NAN, "ci_high_s": NAN,
            "samples_s": [], "unstable": False,          # counts carry no sampling noise
            "median_cost": med, "baseline_median_cost": median(bases) if bases else NAN,
            "cost_samples": values,
            **{name: median(counts.get(name, [])) for name in ("l1_misses", *COUNTER_NAMES)},
            "counter_samples": {name: [int(v) for v in counts[name]]
                                for name in COUNTER_NAMES if name in counts}})
    return {col: row[col] for col in COLUMNS}
