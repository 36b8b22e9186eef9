"""Checks of the two bench files the gate compares: every row it reads must have the shape
`hashlab bench --save` writes, and every ratio must be a positive finite number. Anything else
is a GateUsageError naming the file, the row and the field (exit status 2), never a skipped
row: a current run with NaN or zero ratios must not pass the gate."""
from __future__ import annotations

import math

KEY = ("engine", "scenario", "op", "op_index", "threads")
MEASURES = ("wall", "simulated")
MAX_ROWS = 100_000
MAX_SAMPLES = 100_000


class GateUsageError(ValueError):
    """The inputs cannot be compared (exit status 2)."""


def _fail(where: str, what: str):
    raise GateUsageError(f"{where}: {what}")


def _ratio(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, f"must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        _fail(where, f"must be a positive finite ratio, got {value!r}")
    return float(value)


def perf_rows(data: dict, name: str) -> dict[tuple, dict]:
    """{key: {"measure", "ratio" (None: op without a baseline), "samples"}} of a bench file."""
    results = data["results"]
    if len(results) > MAX_ROWS:
        _fail(name, f"more than {MAX_ROWS} results")
    out = {}
    for i, row in enumerate(results):
        where = f"{name}: results[{i}]"
        if not isinstance(row, dict):
            _fail(where, f"must be an object, got {type(row).__name__}")
        for field in KEY:
            value = row.get(field)
            typ = int if field in ("op_index", "threads") else str
            if isinstance(value, bool) or not isinstance(value, typ):
                _fail(where, f"field {field!r} must be a {typ.__name__}, got {value!r}")
        key = tuple(row[k] for k in KEY)
        if key in out:
            _fail(where, f"duplicate result for {key}")
        measure = row.get("measure")
        if measure not in MEASURES:
            _fail(where, f"field 'measure' must be one of {MEASURES}, got {measure!r}")
        ratio = row.get("ratio_to_baseline")
        samples = row.get("ratio_samples")
        if not isinstance(samples, list):
            _fail(where, f"field 'ratio_samples' must be a list, got {type(samples).__name__}")
        if len(samples) > MAX_SAMPLES:
            _fail(where, f"more than {MAX_SAMPLES} ratio samples")
        if ratio is None:
            if samples:
                _fail(where, "has ratio_samples but no ratio_to_baseline")
        else:
            ratio = _ratio(ratio, f"{where}.ratio_to_baseline")
            if not samples:
                _fail(where, "has a ratio_to_baseline but no ratio_samples")
            samples = [_ratio(v, f"{where}.ratio_samples[{j}]") for j, v in enumerate(samples)]
        out[key] = {"measure": measure, "ratio": ratio, "samples": samples}
    return out


def parity_rows(data: dict, name: str) -> dict[tuple, str]:
    """{(engine, scenario): status} of a bench file."""
    out = {}
    for i, row in enumerate(data["parity"]):
        where = f"{name}: parity[{i}]"
        if not isinstance(row, dict):
            _fail(where, f"must be an object, got {type(row).__name__}")
        for field in ("engine", "scenario", "status"):
            if not isinstance(row.get(field), str):
                _fail(where, f"field {field!r} must be a string, got {row.get(field)!r}")
        out[(row["engine"], row["scenario"])] = row["status"]
    return out
