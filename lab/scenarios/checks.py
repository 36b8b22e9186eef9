"""Type and size checks for scenario fields, so that a hostile or mistyped scenario file is
refused with one clear ScenarioError instead of a traceback or an unbounded run.

`LIMITS` bounds the work one scenario may ask for. The built-in catalog stays well inside
them; a file that needs more is refused with the limit it broke.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

LIMITS = {
    "steps": 10_000,                 # iterations of the ops sequence
    "warmup": 1_000,
    "batch_size": 4_000_000,         # ids per op call (also an op's own `batch`)
    "prefill": 20_000_000,
    "prefill_floats": 500_000_000,   # prefill x the tables' summed dims (2 GB of float32)
    "threads": 256,
    "ps": 64,                        # parameter-server tasks of a sharded scenario
    "tables": 64,
    "ops": 256,
    "variants": 256,                 # product of the sweep lists
    "nshards": 1_024,                # save's shard count (-1 = the automatic rule)
    "num_shards": 1_024,             # fused ops' shard count
    "ids_per_scenario": 100_000_000,     # (warmup + steps) x the largest batch
    "filter_capacity": 1_000_000_000,
    "vocab": 2 ** 62,
    "max_req_time": 2 ** 32 - 1,     # entry timestamps are uint32 seconds
}

# Table names become checkpoint file names inside the run folder: one path component of
# ordinary characters, never `.`/`..`, a separator or a control character.
TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
MAX_TEXT = 1_000


class ScenarioError(ValueError):
    """A scenario (file or dict) is malformed; the message names the field."""


def integer(value, where: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where} must be an integer, got {_show(value)}")
    if low is not None and value < low:
        raise ScenarioError(f"{where} must be >= {low}, got {_show(value, typed=False)}")
    if high is not None and value > high:
        raise ScenarioError(f"{where} must be <= {high} (limit), got "
                            f"{_show(value, typed=False)}")
    return value


def number(value, where: str) -> float:
    """A finite float; an integer too large for one (TOML and JSON allow 400 digits) is
    refused like any other bad number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{where} must be a finite number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ScenarioError(f"{where} must be a finite number, got {_show(value)}")
    return number


def boolean(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(f"{where} must be true or false, got {_show(value)}")
    return value


def text(value, where: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(f"{where} must be a string, got {_show(value)}")
    if len(value) > MAX_TEXT or any(ord(c) < 32 and c not in "\t\n" for c in value):
        raise ScenarioError(f"{where}: at most {MAX_TEXT} printable characters")
    return value


def table_name(value, where: str) -> str:
    if not isinstance(value, str) or not TABLE_NAME.fullmatch(value):
        raise ScenarioError(f"{where}: table names are 1-64 letters, digits, '_', '-' or '.' "
                            f"and do not start with '.' or '-', got {_show(value)}")
    return value


def mapping(value, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where} must be a table/object, got {_show(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ScenarioError(f"{where}: keys must be strings, got {_show(key)}")
    return value


def sequence(value, where: str, limit: int | None = None) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ScenarioError(f"{where} must be a list, got {_show(value)}")
    if limit is not None and len(value) > limit:
        raise ScenarioError(f"{where}: at most {limit} entries (limit), got {len(value)}")
    return list(value)


def scalar(value, where: str) -> Any:
    """A plain JSON/TOML scalar (what `params` and table configs may hold)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return number(value, where)
    raise ScenarioError(f"{where} must be a number, string or boolean, got {_show(value)}")


def check_keys(d: Mapping, allowed, where: str) -> None:
    mapping(d, where)
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _show(value, typed: bool = True) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
        shown = f"an integer of {len(str(abs(value)))} digits"
    else:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
    return f"{shown} ({type(value).__name__})" if typed else shown
