"""A/B gating: two builds of the lab (base and head) measured side by side in one time window
and compared pairwise (`hashlab ab`).

- `builds`: what a build spec names (`current`, an interpreter, a git ref built in a cache);
- `worker`: the process that measures one build (started with that build's interpreter);
- `session`: both workers driven round by round, interleaved or at the same time (duet);
- this module: a whole A/B run: builds, parity, the paired comparison
  (`lab.gate.paired`), the two builds' bench files, the verdict (a `lab.gate.GateResult`).

In simulated mode (`measure="simulated"`) each build's profile is counted under callgrind
(deterministic, so no interleaving is needed) and the gate compares counter by counter.
"""
from __future__ import annotations

import dataclasses
import json
import os

import pandas as pd

from lab.ab.builds import Build, BuildError, BuildSpec, ensure
from lab.ab.session import DUET, INTERLEAVED, MODES, SIDES, run_session

__all__ = ["AbOutcome", "Build", "BuildError", "BuildSpec", "DUET", "INTERLEAVED", "MODES",
           "run_ab"]


@dataclasses.dataclass
class AbOutcome:
    gate: object                 # lab.gate.GateResult
    results: dict                # side -> bench JSON (what `hashlab bench --save` writes)
    builds: dict                 # side -> Build
    meta: dict                   # mode, rounds, seconds, schedule, load


def _engine_spec(label: str, imports) -> dict:
    from engines.registry import parse_spec
    spec = parse_spec(label)
    return {"label": label, "name": spec.name, "options": spec.options,
            "imports": list(imports)}


def run_ab(base: BuildSpec, head: BuildSpec, *, profile: str = "gate",
           engine: str = "native-cpu", mode: str = INTERLEAVED, rounds: int | None = None,
           measure: str = "wall", threshold: float | None = None, alpha: float | None = None,
           counter_thresholds: dict | None = None, allow_inconclusive: bool = False,
           seed: int = 0, imports=(), cache: str | None = None, cuda: bool = False,
           log=print) -> AbOutcome:
    """Build (or find) both builds, measure the profile's scenarios on `engine` in both, and
    gate head against base."""
    from lab.gate import paired
    from lab.scenarios.profiles import profile_scenarios, rules
    from lab.suite import sampling_for
    builds = {side: ensure(spec, cache, log, cuda) for side, spec in (("base", base),
                                                                      ("head", head))}
    for side in SIDES:
        log(f"ab: {side}: {builds[side].description}")
    scenarios = profile_scenarios(profile)
    r = rules(profile)
    alpha = r.get("ab", {}).get("alpha", paired.DEFAULT_ALPHA) if alpha is None else alpha
    if measure == "simulated":
        return _simulated(builds, scenarios, engine, imports, threshold, counter_thresholds,
                          allow_inconclusive, profile, log)
    sampling = sampling_for(profile)
    n_ops = sum(1 for s in scenarios for op in s.ops if op.op != "size")
    rounds = rounds or max(r.get("ab", {}).get("rounds", 0), paired.min_rounds_for(n_ops,
                                                                                   alpha))
    session = run_session(builds, scenarios, _engine_spec(engine, imports), sampling, rounds,
                          mode, seed, log=log)
    results = {side: _bench_json(side, session, scenarios, engine, builds[side], sampling,
                                 profile, mode) for side in SIDES}
    gate = paired.gate(session, scenarios, engine, threshold, alpha, allow_inconclusive)
    meta = {"mode": mode, "rounds": rounds, "seconds": round(session.seconds, 1),
            "schedule": session.schedule, "load_avg": session.load, "alpha": alpha,
            "seed": seed, "profile": profile, "engine": engine}
    return AbOutcome(gate, results, builds, meta)


def _bench_json(side, session, scenarios, engine, build, sampling, profile, mode) -> dict:
    """One build's measurements as a bench file (`hashlab bench --save`'s format)."""
    from lab.suite import SuiteResult
    from lab.timing.rows import COLUMNS, WALL, perf_row
    rows = []
    for scenario in scenarios:
        ops = sorted((i, rec) for (name, i), rec in session.samples[side].items()
                     if name == scenario.name)
        for _, rec in ops:
            rows.append(perf_row(scenario, engine, rec, session.peaks[side].get(scenario.name,
                                                                                 0),
                                 WALL, sampling.target))
    perf = pd.DataFrame(rows, columns=COLUMNS)
    parity_rows = pd.DataFrame(session.parity[side])
    status = {(p["engine"], p["scenario"]): p["status"] for p in session.parity[side]}
    perf["parity"] = [status.get((e, s), "not_run") for e, s in zip(perf.engine, perf.scenario)]
    hello = session.workers[side]
    meta = {"created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "quick": False, "machine": hello.get("machine"),
            "git": {"commit": build.commit, "dirty": build.dirty},
            "scenarios": [s.name for s in scenarios], "profile": profile, "measure": WALL,
            "sampling": dataclasses.asdict(dataclasses.replace(sampling,
                                                               rounds=len(session.load))),
            "load_avg": {"start": session.load[:1], "end": session.load[-1:]},
            "wall_seconds": round(session.seconds, 1),
            "ab": {"side": side, "mode": mode, "build": build.as_dict(),
                   "engines_file": hello.get("engines_file")}}
    engines_info = [{"label": engine, "name": engine.split(":")[0], "options": {},
                     "available": True, "reason": "", "threads": True}]
    return SuiteResult(parity_rows, parity_rows, perf, engines_info, meta).to_json()


def _simulated(builds, scenarios, engine, imports, threshold, counter_thresholds,
               allow_inconclusive, profile, log) -> AbOutcome:
    """Each build's profile counted under callgrind, then compared counter by counter."""
    import time
    from lab.gate import compare
    if imports:
        raise ValueError("imports: the simulated A/B runs each build's own `hashlab bench`, "
                         "which imports no extra modules")
    results, seconds = {}, {}
    for side in SIDES:
        started = time.perf_counter()
        log(f"ab: {side}: counting the profile under callgrind")
        results[side] = _simulated_json(builds[side], engine, profile)
        seconds[side] = round(time.perf_counter() - started, 1)
    gate = compare(results["head"], results["base"], threshold, names=("head", "base"),
                   counter_thresholds=counter_thresholds,
                   allow_inconclusive=allow_inconclusive)
    meta = {"mode": "simulated", "rounds": 1, "seconds": round(sum(seconds.values()), 1),
            "profile": profile, "engine": engine}
    return AbOutcome(gate, results, builds, meta)


def _simulated_json(build, engine, profile) -> dict:
    """The build's own `hashlab bench --profile P --measure simulated`, run with its
    interpreter (so its own lab and engine are counted), as a bench file."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory(prefix="hashlab-ab-sim-") as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [build.python, "-P", "-m", "lab.cli", "bench", "--profile", profile,
               "--measure", "simulated", "--engines", engine, "--no-progress", "--save", out]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
        if not os.path.exists(out):
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            raise RuntimeError(f"simulated run of {build.description} failed (exit "
                               f"{done.returncode}):\n{tail}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)
