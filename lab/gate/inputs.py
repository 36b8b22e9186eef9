"""Checks of the two bench files the gate compares: every row it reads must have the shape
`hashlab bench --save` writes, and every ratio must be a positive finite number. Anything else
is a GateUsageError naming the file, the row and the field (exit status 2), never a skipped
row: a current run with NaN or zero ratios must not pass the gate.

What is compared (`lab.gate.compare` chooses): wall-clock rows by the engine's own times
(`samples_s`) when both runs were made on the same kind of machine, else by their paired
ratios to the baseline (`ratio_samples`: machine speed cancels out); simulated rows by their
own cost (`cost_samples`, `median_cost`), because the simulated machine is always the same and
the engine's count is steadier than its baseline's: a baseline's cache misses depend on where
its arrays happen to be mapped. `sample_rounds` (optional) names the round of each sample."""
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


def _number(value, where: str) -> float:
    """A JSON number as a float; an integer too large for one (JSON allows 400 digits) is
    unusable input, not a crash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, f"must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        _fail(where, f"must be a number a float can hold, got an integer of "
                     f"{len(str(abs(value)))} digits")


def _positive(value, where: str, what: str) -> float:
    number = _number(value, where)
    if not (math.isfinite(number) and number > 0):
        _fail(where, f"must be a positive finite {what}, got {value!r}"[:200])
    return number


def _count(value, where: str) -> float:
    number = _number(value, where)
    if not (math.isfinite(number) and number >= 0):
        _fail(where, f"must be a count (finite, >= 0), got {value!r}"[:200])
    return number


def _ratio(value, where: str) -> float:
    return _positive(value, where, "ratio")


def _seconds(value, where: str) -> float:
    return _positive(value, where, "time in seconds")


def _series(row: dict, field: str, where: str, check=None) -> list:
    values = row.get(field)
    if not isinstance(values, list):
        _fail(where, f"field {field!r} must be a list, got {type(values).__name__}")
    if len(values) > MAX_SAMPLES:
        _fail(where, f"more than {MAX_SAMPLES} {field}")
    return [check(v, f"{where}.{field}[{j}]") for j, v in enumerate(values)] if check else values


def _round(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail(where, f"must be a round number (an integer >= 0), got {value!r}")
    return value


# What makes two runs' raw times comparable: the same kind of machine.
MACHINE_KEYS = ("machine", "processor", "cpu_count_logical", "memory_gb")


def same_machine(a: dict, b: dict) -> bool:
    """Both runs name the same kind of machine (architecture, CPU model, logical CPUs and
    memory); runs that say nothing about it are not taken to match."""
    ma, mb = a.get("machine"), b.get("machine")
    if not (isinstance(ma, dict) and isinstance(mb, dict)):
        return False
    known = [k for k in MACHINE_KEYS if ma.get(k) is not None or mb.get(k) is not None]
    return bool(known) and all(ma.get(k) == mb.get(k) for k in known)


def perf_rows(data: dict, name: str) -> dict[tuple, dict]:
    """{key: {"measure", "ratio" (None: nothing to gate), "samples", "times", "rounds",
    "counters"}} of a bench file; for simulated rows "ratio" and "samples" are the op's cost
    and "counters" its other per-call counts ({} in older files). "times": the engine's own
    seconds (wall rows that have them, else []); "rounds": the round of each of them ([] when
    the file does not say)."""
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
        value, series = (("median_cost", "cost_samples") if measure == "simulated"
                         else ("ratio_to_baseline", "ratio_samples"))
        ratio = row.get(value)
        samples = _series(row, series, where)
        if ratio is None:
            if samples:
                _fail(where, f"has {series} but no {value}")
        else:
            ratio = _ratio(ratio, f"{where}.{value}")
            if not samples:
                _fail(where, f"has a {value} but no {series}")
            samples = [_ratio(v, f"{where}.{series}[{j}]") for j, v in enumerate(samples)]
        times, rounds = [], []
        if ratio is not None and measure == "wall" and row.get("samples_s") is not None:
            times = _series(row, "samples_s", where, _seconds)
        if ratio is not None and row.get("sample_rounds") is not None:
            rounds = _series(row, "sample_rounds", where, _round)
            if rounds and len(rounds) != max(len(times), len(samples)):
                _fail(where, f"has {len(rounds)} sample_rounds for "
                             f"{max(len(times), len(samples))} samples")
        counts = {}
        if ratio is not None and measure == "simulated" and row.get("counter_samples"):
            counts = _counters(row["counter_samples"], len(samples), where)
        out[key] = {"measure": measure, "ratio": ratio, "samples": samples, "times": times,
                    "rounds": rounds, "counters": counts}
    return out


def _counters(value, n: int, where: str) -> dict:
    """A simulated row's `counter_samples`: counter name -> one count per call."""
    from lab.timing.counters import COUNTER_NAMES
    if not isinstance(value, dict):
        _fail(where, f"field 'counter_samples' must be an object, got {type(value).__name__}")
    out = {}
    for name, counts in value.items():
        if name not in COUNTER_NAMES:
            _fail(where, f"counter_samples: unknown counter {str(name)[:40]!r}")
        series = _series({name: counts}, name, f"{where}.counter_samples", _count)
        if len(series) != n:
            _fail(where, f"counter_samples.{name}: {len(series)} counts for {n} calls")
        out[name] = series
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
