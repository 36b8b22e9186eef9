"""A small TOML writer for the plain data scenarios serialise to (Python's tomllib only reads).

Handles what `Scenario.to_dict()` produces: str, int, float, bool, lists, and dicts whose
values are those. Scalars and lists become `key = value`, nested dicts become `[tables]`,
lists of dicts become `[[arrays of tables]]`, and dicts inside lists become inline tables.
None has no TOML form: keys holding None (and empty top-level tables) are left out, so a
reader takes the default.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key(name) -> str:
    name = str(name)
    return name if _BARE_KEY.match(name) else string(name)


def string(text: str) -> str:
    # JSON's escapes (\" \\ \n \uXXXX ...) are TOML basic-string escapes too; DEL is the one
    # control character JSON leaves alone and TOML does not.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def value(v: Any) -> str:
    """One value in inline form."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, Mapping):
        items = [f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}: {v!r}")


def _is_table_array(v) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, Mapping) for x in v)


def dumps(data: Mapping, order=None) -> str:
    """TOML text for a dict. `order`: top-level keys to write first (the rest follow)."""
    keys = list(dict.fromkeys([*(order or ()), *data]))
    # None and empty tables have no useful TOML form: readers take the default instead.
    keys = [k for k in keys if k in data and data[k] is not None
            and not (isinstance(data[k], Mapping) and not data[k])]
    plain = [k for k in keys if not isinstance(data[k], Mapping)
             and not _is_table_array(data[k])]
    tables = [k for k in keys if isinstance(data[k], Mapping)]
    arrays = [k for k in keys if _is_table_array(data[k])]
    lines = [f"{key(k)} = {value(data[k])}" for k in plain]
    for k in tables:
        lines += ["", f"[{key(k)}]"]
        lines += [f"{key(sub)} = {value(v)}" for sub, v in data[k].items() if v is not None]
    for k in arrays:
        for item in data[k]:
            lines += ["", f"[[{key(k)}]]"]
            lines += [f"{key(sub)} = {value(v)}" for sub, v in item.items() if v is not None]
    return "\n".join(lines) + "\n"
