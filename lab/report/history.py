"""History across commits, read from asv's results directory (`.asv/results`).

asv 0.6 writes one JSON file per (machine, commit, environment):
`<results_dir>/<machine>/<hash8>-<env>.json` with `commit_hash`, `date` (ms since epoch),
`result_columns` and `results: {benchmark: [column values...]}`; the `result` column holds one
value per parameter combination (itertools.product order of the `params` column).
"""
from __future__ import annotations

import glob
import itertools
import json
import math
import os

import pandas as pd

COLUMNS = ["machine", "commit", "date", "benchmark", "params", "value"]


def load_asv_history(results_dir: str = ".asv/results") -> pd.DataFrame:
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*", "*.json"))):
        if os.path.basename(path) == "machine.json":
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError):
            continue
        cols = data.get("result_columns")
        if not cols or "results" not in data or "commit_hash" not in data:
            continue
        machine = os.path.basename(os.path.dirname(path))
        date = pd.to_datetime(data.get("date", 0), unit="ms")
        for bench, values in data["results"].items():
            record = dict(zip(cols, values))
            results = record.get("result")
            if results is None:
                continue
            params = record.get("params") or []
            combos = list(itertools.product(*params)) if params else [()]
            if not isinstance(results, list):
                results = [results]
            for combo, value in zip(combos, results):
                if value is None or not math.isfinite(float(value)):
                    continue                       # skipped or failed combination
                rows.append({"machine": machine, "commit": data["commit_hash"][:8],
                             "date": date, "benchmark": bench,
                             "params": ", ".join(str(p).strip("'") for p in combo),
                             "value": float(value)})
    return pd.DataFrame(rows, columns=COLUMNS)
