"""Gating memory: each op's peak memory and bytes allocated per call (`lab.timing.memory`),
current run against the baseline, like its time.

memray's counts are what the code allocates, so the same code gives the same numbers on any
machine and load (the medians of the gate profile's ops agree exactly between same-code runs,
or within a fraction of a percent; docs/investigating.md). A change is a REGRESSION when the
median per call grew beyond the threshold (default 1.10x) *and* by at least `MIN_BYTES`: a
few kilobytes more on a call that allocates almost nothing is not a regression, whatever its
ratio. The resident-set growth is shown by `hashlab explain`, not gated: it depends on what
the allocator already held.

Ops that only one run measured are not compared (a run without `--memory` has none).
"""
from __future__ import annotations

import math

import pandas as pd

from lab.gate.inputs import KEY, GateUsageError

GATED = {"mem_peak_bytes": "peak memory", "mem_alloc_bytes": "bytes allocated"}
DEFAULT_THRESHOLD = 1.10
MIN_BYTES = 64 * 1024
REGRESSION, IMPROVED, OK = "REGRESSION", "improved", "ok"
MEMORY_COLUMNS = [*KEY, "metric", "base", "current", "change", "verdict"]


def _bytes(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GateUsageError(f"{where}: must be a number of bytes, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number):
        return None
    if not (math.isfinite(number) and number >= 0):
        raise GateUsageError(f"{where}: must be a number of bytes >= 0, got {value!r}"[:200])
    return number


def memory_rows(data: dict, name: str) -> dict[tuple, dict]:
    """{gate key: {metric: bytes}} of a bench file's rows that measured memory."""
    out = {}
    for i, row in enumerate(data.get("results") or ()):
        if not isinstance(row, dict):
            continue
        try:
            key = tuple(row[k] for k in KEY)
        except KeyError:
            continue
        values = {m: _bytes(row.get(m), f"{name}: results[{i}].{m}") for m in GATED}
        values = {m: v for m, v in values.items() if v is not None}
        if values:
            out[key] = values
    return out


def verdict(base: float, current: float, threshold: float) -> str:
    if current > base * threshold and current - base >= MIN_BYTES:
        return REGRESSION
    if current * threshold < base and base - current >= MIN_BYTES:
        return IMPROVED
    return OK


def compare_memory(current: dict, baseline: dict, names=("current", "baseline"),
                   threshold: float | None = None) -> pd.DataFrame:
    """One row per op and metric both runs measured."""
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)
            and threshold > 1.0):
        raise GateUsageError(f"--memory-threshold must be a finite number > 1.0, got "
                             f"{threshold}")
    cur, base = memory_rows(current, names[0]), memory_rows(baseline, names[1])
    rows = []
    for key in sorted(set(cur) & set(base), key=str):
        for metric in GATED:
            if metric not in cur[key] or metric not in base[key]:
                continue
            b, c = base[key][metric], cur[key][metric]
            change = c / b if b > 0 else (1.0 if c == 0 else math.inf)
            rows.append({**dict(zip(KEY, key)), "metric": metric, "base": b, "current": c,
                         "change": change, "verdict": verdict(b, c, threshold)})
    return pd.DataFrame(rows, columns=MEMORY_COLUMNS)


def measured_only_in(current: dict, baseline: dict) -> str | None:
    """Which run alone measured memory ("current"/"baseline"), or None."""
    cur, base = bool(memory_rows(current, "current")), bool(memory_rows(baseline, "baseline"))
    if cur == base:
        return None
    return "current" if cur else "baseline"


def _mib(v: float) -> str:
    return f"{v / 2 ** 20:.3f} MiB"


def describe(r) -> str:
    change = "new" if math.isinf(r.change) else f"{r.change:.3f}x"
    return (f"{GATED[r.metric]} {change} ({_mib(r.base)} -> {_mib(r.current)} per call, "
            f"median)")
