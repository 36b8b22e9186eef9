"""One lab run: parity and timing of scenarios on engines, as one result that the CLI prints,
saves as JSON (`hashlab bench --save`), the report renders and the gate compares."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import time

import pandas as pd

from lab import parity, timing

SCHEMA = "hashlab-bench/2"        # 2: raw samples, CIs, load average, measure mode
PERF_STATUSES = (parity.PASS, parity.KNOWN)     # performance is shown only for these
DATA_FILES = ("bench.json", "parity.csv", "perf.csv")


@dataclasses.dataclass
class SuiteResult:
    parity_rows: pd.DataFrame
    parity_summary: pd.DataFrame
    perf: pd.DataFrame
    engines: list
    meta: dict
    profiles: list = dataclasses.field(default_factory=list)   # per-op profiles, if kept

    def failed(self) -> bool:
        return bool((self.parity_summary["status"] == parity.FAIL).any())

    def perf_passing(self) -> pd.DataFrame:
        """Perf rows of engine-scenario pairs whose parity passed (or diverged knowingly)."""
        return self.perf[self.perf["parity"].isin(PERF_STATUSES)]

    def to_json(self) -> dict:
        out = {"schema": SCHEMA, **self.meta, "engines": self.engines,
               "results": _records(self.perf), "parity": _records(self.parity_summary)}
        if self.profiles:
            out["profiles"] = self.profiles
        return out

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1)

    def write_files(self, out_dir: str) -> list[str]:
        """The run's data in `out_dir` (made if missing): `bench.json` (everything, as
        `save` writes it), `parity.csv` (every compared op) and `perf.csv` (the timings of
        the pairs that passed parity), notes whole. Returns the file names."""
        os.makedirs(out_dir, exist_ok=True)
        self.parity_rows.to_csv(os.path.join(out_dir, DATA_FILES[1]), index=False)
        self.perf_passing().to_csv(os.path.join(out_dir, DATA_FILES[2]), index=False)
        self.save(os.path.join(out_dir, DATA_FILES[0]))
        return list(DATA_FILES)


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


def sampling_for(profile: str | None = None, quick: bool = False,
                 time_cap: float | None = None) -> timing.Sampling:
    """The wall-clock sampling settings of a run: the defaults (`QUICK_SAMPLING` with
    --quick), then the profile's `sampling` overrides, then `--time-cap`."""
    from lab.scenarios.profiles import rules
    sampling = timing.QUICK_SAMPLING if quick else timing.Sampling()
    if profile:
        sampling = dataclasses.replace(sampling, **rules(profile)["sampling"])
    if time_cap is not None:
        sampling = dataclasses.replace(sampling, cap_s=time_cap)
    return sampling


def run_suite(scenarios, choices, unusable=(), *, quick: bool = False, timing_on: bool = True,
              progress: bool = False, measure: str = timing.WALL,
              sampling: timing.Sampling | None = None, imports=(),
              profile: str | None = None, memory: bool = False,
              wall_profiles: bool = False) -> SuiteResult:
    """Parity, then timing of what parity could run. `measure`: "wall" (seconds, paired and
    adaptive per `sampling`; default: `sampling_for(profile, quick)`) or "simulated"
    (callgrind costs). `imports`: modules the simulated child imports (test-only engines).
    `memory`: then measure each op's memory in a pass of its own (`lab.timing.memory`).
    `wall_profiles` (wall-clock runs): then sample each op with py-spy for the gate's
    differential profiles (`lab.explain.sampled.wall_profiles`)."""
    started = time.perf_counter()
    load_start = os.getloadavg()
    code = timing.git_info()          # the commit measured: read before a long run, not after
    if sampling is None:
        sampling = sampling_for(profile, quick)
    rows = parity.run_parity(scenarios, choices, unusable, progress=progress)
    summary = parity.summarize(rows)
    profiles: list = []           # simulated runs keep every op's profile
    # Time what parity could run: not the skipped pairs, not the ones that crashed.
    no_time = {(r.engine, r.scenario) for r in summary.itertuples()
               if r.status == parity.SKIPPED or str(r.note).startswith("error:")
               or "] error:" in str(r.note)}
    perf = (timing.run_timing(scenarios, choices, no_time, progress=progress, measure=measure,
                              sampling=sampling, imports=imports,
                              profiles=profiles if measure == timing.SIMULATED else None)
            if timing_on
            else pd.DataFrame(columns=timing.COLUMNS))
    timed = [(s, c) for s in scenarios for c in choices if (c.label, s.name) not in no_time]
    if memory and timing_on and len(perf):
        from lab.timing.memory import add_memory
        perf = add_memory(perf, timed, progress=progress)
    if wall_profiles and timing_on and measure == timing.WALL:
        from lab.explain.sampled import wall_profiles as sample_profiles
        profiles.extend(sample_profiles(timed, progress=progress))
    perf = _with_parity(perf, summary)
    engines_info = ([{"label": c.label, "name": c.name, "options": c.options,
                      "available": True, "reason": "",
                      "threads": bool(c.capabilities.threads)} for c in choices]
                    + [{"label": label, "name": label.split(":")[0], "options": {},
                        "available": False, "reason": reason, "threads": False}
                       for label, reason in unusable])
    meta = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "quick": quick, "machine": timing.machine_info(), "git": code,
            "scenarios": [s.name for s in scenarios], "profile": profile,
            "measure": measure, "sampling": dataclasses.asdict(sampling),
            "memory": "memray" if memory and timing_on else None,
            "load_avg": {"start": list(load_start), "end": list(os.getloadavg())},
            "wall_seconds": round(time.perf_counter() - started, 2)}
    return SuiteResult(rows, summary, perf, engines_info, meta, profiles)


MAX_BENCH_BYTES = 256 << 20


def load_bench_json(path: str) -> dict:
    """A saved bench JSON; ValueError (with the reason) when it is not one."""
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            raise ValueError(f"{path}: not a regular file")
        with open(path, "rb") as f:
            raw = f.read(MAX_BENCH_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_BENCH_BYTES:
        raise ValueError(f"{path}: larger than {MAX_BENCH_BYTES >> 20} MiB; not a bench file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValueError(f"{path}: nested too deeply to be a bench file") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = repr(data.get("schema") if isinstance(data, dict) else None)[:40]
        raise ValueError(f"{path}: not a hashlab bench file (schema {SCHEMA!r} expected, "
                         f"found {found}; re-run `hashlab bench` to refresh an old one)")
    for key in ("results", "parity"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing list {key!r}")
    return data
