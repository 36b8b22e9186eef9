"""One lab run: parity and timing of scenarios on engines, as one result that the CLI prints,
saves as JSON (`hashlab bench --save`), the report renders and the gate compares."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time

import pandas as pd

from lab import parity, timing

SCHEMA = "hashlab-bench/1"
PERF_STATUSES = (parity.PASS, parity.KNOWN)     # performance is shown only for these


@dataclasses.dataclass
class SuiteResult:
    parity_rows: pd.DataFrame
    parity_summary: pd.DataFrame
    perf: pd.DataFrame
    engines: list
    meta: dict

    def failed(self) -> bool:
        return bool((self.parity_summary["status"] == parity.FAIL).any())

    def perf_passing(self) -> pd.DataFrame:
        """Perf rows of engine-scenario pairs whose parity passed (or diverged knowingly)."""
        return self.perf[self.perf["parity"].isin(PERF_STATUSES)]

    def to_json(self) -> dict:
        return {"schema": SCHEMA, **self.meta, "engines": self.engines,
                "results": _records(self.perf), "parity": _records(self.parity_summary)}

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1)


def _records(df: pd.DataFrame) -> list[dict]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in rec.items()})
    return out


def _with_parity(perf: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    status = {(r.engine, r.scenario): r.status for r in summary.itertuples()}
    perf = perf.copy()
    perf["parity"] = [status.get((e, s), "not_run") for e, s in zip(perf.engine, perf.scenario)]
    return perf


def run_suite(scenarios, choices, unusable=(), *, quick: bool = False, timing_on: bool = True,
              progress: bool = False) -> SuiteResult:
    started = time.perf_counter()
    rows = parity.run_parity(scenarios, choices, unusable, progress=progress)
    summary = parity.summarize(rows)
    # Time what parity could run: not the skipped pairs, not the ones that crashed.
    no_time = {(r.engine, r.scenario) for r in summary.itertuples()
               if r.status == parity.SKIPPED or str(r.note).startswith("error:")
               or "] error:" in str(r.note)}
    perf = (timing.run_timing(scenarios, choices, no_time, progress=progress) if timing_on
            else pd.DataFrame(columns=timing.COLUMNS))
    perf = _with_parity(perf, summary)
    engines_info = ([{"label": c.label, "name": c.name, "options": c.options,
                      "available": True, "reason": "",
                      "threads": bool(c.capabilities.threads)} for c in choices]
                    + [{"label": label, "name": label.split(":")[0], "options": {},
                        "available": False, "reason": reason, "threads": False}
                       for label, reason in unusable])
    meta = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "quick": quick, "machine": timing.machine_info(), "git": timing.git_info(),
            "scenarios": [s.name for s in scenarios],
            "wall_seconds": round(time.perf_counter() - started, 2)}
    return SuiteResult(rows, summary, perf, engines_info, meta)


def load_bench_json(path: str) -> dict:
    """A saved bench JSON; ValueError (with the reason) when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a hashlab bench file (schema {SCHEMA!r} expected)")
    for key in ("results", "parity"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing list {key!r}")
    return data
