"""Scenario files: TOML (tomllib) or JSON, holding one scenario or a `scenarios` list.
Every field, the id distributions and the ops are described in docs/scenarios.md;
`hashlab scenarios NAME` prints any catalog scenario in this format.

    name = "my_lookup"          # TOML, one scenario
    prefill = 10000             # ids 0..9999 hold random rows before step 0
    batch_size = 4096
    [ids]
    kind = "zipf"
    a = 1.2
    vocab = 20000
    [[tables]]
    name = "t0"
    config = { dim = 32, optimizer = "adagrad" }
    [[ops]]
    op = "lookup"
"""
from __future__ import annotations

import json
import os
import tomllib

from lab.scenarios import toml_writer
from lab.scenarios.model import Scenario, ScenarioError

# Field order of a printed scenario: what it is, its size, then its tables and ops.
_TOML_ORDER = ("name", "description", "tags", "prefill", "batch_size", "steps", "warmup",
               "threads", "dedup", "seed", "seconds_per_step", "ids", "sweep", "quick")
MAX_FILE_BYTES = 1 << 20          # scenario files are small; refuse anything larger


def parse_text(text: str, fmt: str, where: str = "<text>") -> list[Scenario]:
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{where}: not valid {fmt.upper()}: {exc}") from exc
    except RecursionError as exc:
        raise ScenarioError(f"{where}: nested too deeply to be a scenario file") from exc
    if isinstance(data, dict) and "scenarios" in data:
        if set(data) != {"scenarios"}:
            raise ScenarioError(f"{where}: a file with `scenarios` must hold nothing else")
        items = data["scenarios"]
    else:
        items = [data]
    if not isinstance(items, list) or not items:
        raise ScenarioError(f"{where}: no scenarios found")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(Scenario.from_dict(item))
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: scenario {i}: {exc}") from exc
        except RecursionError as exc:
            raise ScenarioError(f"{where}: scenario {i}: nested too deeply") from exc
    return out


def load_file(path: str) -> list[Scenario]:
    """Scenarios from a .toml or .json file; ScenarioError (naming the file) when bad."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".toml", ".json"):
        raise ScenarioError(f"{path}: scenario files must end in .toml or .json")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ScenarioError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not a scenario file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return parse_text(text, ext[1:], path)


def dump_json(scenarios) -> str:
    return json.dumps({"scenarios": [s.to_dict() for s in scenarios]}, indent=2)


def dump_toml(scenario: Scenario, header: str = "") -> str:
    """One scenario as a TOML file that `load_file` reads back to the same scenario.
    `header`: comment lines to put on top."""
    data = scenario.to_dict()
    if not data.get("params"):
        data.pop("params", None)          # set only on sweep variants
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    return comment + toml_writer.dumps(data, order=_TOML_ORDER)
