"""A/B gating: builds of the lab measured side by side in one time window and compared
pairwise (`hashlab ab`): a base and one or more heads.

- `builds`: what a build spec names (`current`, an interpreter, a git ref built in a cache,
  optionally patched: `REF+FILE.patch`);
- `worker`: the process that measures one build (started with that build's interpreter);
- `session`: the workers driven round by round, interleaved step by step or at the same time
  (duet);
- this module: a whole A/B run: builds, parity, the paired comparison of every head with the
  base (`lab.gate.paired`), the builds' bench files, the verdicts (`lab.gate.GateResult`).

In simulated mode (`measure="simulated"`) each build's profile is counted under callgrind
(deterministic, so no interleaving is needed) and the gate compares counter by counter.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
import time
import uuid

import pandas as pd

from lab.ab.builds import Build, BuildError, BuildSpec, ensure
from lab.ab.session import BASE, DUET, INTERLEAVED, MODES, run_session

__all__ = ["AbOutcome", "BASE", "Build", "BuildError", "BuildSpec", "DUET", "INTERLEAVED",
           "MODES", "head_labels", "run_ab"]


@dataclasses.dataclass
class AbOutcome:
    gates: dict                  # head label -> lab.gate.GateResult (head against base)
    results: dict                # arm -> bench JSON (what `hashlab bench --save` writes)
    builds: dict                 # arm -> Build
    meta: dict                   # mode, rounds, seconds, schedule, load

    @property
    def exit_code(self) -> int:
        """The most severe head's: a failure (1) before an inconclusive run (3)."""
        codes = [g.exit_code for g in self.gates.values()]
        return 1 if 1 in codes else max(codes)


def head_labels(n: int) -> list[str]:
    return ["head"] if n == 1 else [f"head{i + 1}" for i in range(n)]


def _engine_spec(label: str, imports) -> dict:
    from engines.registry import parse_spec
    spec = parse_spec(label)
    return {"label": label, "name": spec.name, "options": spec.options,
            "imports": list(imports)}


def run_ab(base: BuildSpec, heads: list[BuildSpec], *, profile: str = "gate",
           engine: str = "native-cpu", mode: str = INTERLEAVED, rounds: int | None = None,
           measure: str = "wall", threshold: float | None = None, alpha: float | None = None,
           counter_thresholds: dict | None = None, allow_inconclusive: bool = False,
           seed: int = 0, imports=(), cache: str | None = None, cuda: bool = False,
           restart_every: int = 1, log=print, memory_threshold: float | None = None
           ) -> AbOutcome:
    """Build (or find) every build, measure the profile's scenarios on `engine` in all of
    them, and gate each head against the base. Every head's verdicts also carry the
    environment differences, memory verdicts (when both measured it) and the differential
    profiles of its regressions (`lab.gate.compare.annotate`)."""
    from lab.gate import paired
    from lab.scenarios.profiles import profile_scenarios, rules
    from lab.suite import sampling_for
    if not heads:
        raise ValueError("heads: at least one")
    specs = {BASE: base, **dict(zip(head_labels(len(heads)), heads))}
    builds = {arm: ensure(spec, cache, log, cuda) for arm, spec in specs.items()}
    for arm, build in builds.items():
        log(f"ab: {arm}: {build.description}")
    scenarios = profile_scenarios(profile)
    ab_rules = rules(profile)["ab"]
    alpha = ab_rules.get("alpha", paired.DEFAULT_ALPHA) if alpha is None else alpha
    if measure == "simulated":
        return _simulated(builds, engine, imports, threshold, counter_thresholds,
                          allow_inconclusive, profile, log, memory_threshold)
    sampling = dataclasses.replace(sampling_for(profile), **ab_rules.get("sampling", {}))
    n_ops = sum(1 for s in scenarios for op in s.ops if op.op != "size")
    rounds = rounds or max(ab_rules.get("rounds", 0), paired.min_rounds_for(n_ops, alpha))
    session = run_session(builds, scenarios, _engine_spec(engine, imports), sampling, rounds,
                          mode, seed, log=log, restart_every=restart_every)
    session_id = uuid.uuid4().hex
    results = {arm: _bench_json(arm, session, scenarios, engine, builds[arm], sampling,
                                profile, mode, session_id) for arm in builds}
    from lab.gate.compare import annotate
    gates = {arm: annotate(paired.gate(session, scenarios, engine, threshold, alpha,
                                       allow_inconclusive, head=arm),
                           results[arm], results[BASE], (arm, BASE), memory_threshold)
             for arm in builds if arm != BASE}
    meta = {"mode": mode, "rounds": rounds, "seconds": round(session.seconds, 1),
            "schedule": session.schedule, "load_avg": session.load, "alpha": alpha,
            "seed": seed, "profile": profile, "engine": engine,
            "restart_every": restart_every}
    return AbOutcome(gates, results, builds, meta)


def _bench_json(arm, session, scenarios, engine, build, sampling, profile, mode,
                session_id) -> dict:
    """One build's measurements as a bench file (`hashlab bench --save`'s format)."""
    from lab.suite import SuiteResult
    from lab.timing.rows import COLUMNS, WALL, perf_row
    rows = []
    for scenario in scenarios:
        ops = sorted((i, rec) for (name, i), rec in session.samples[arm].items()
                     if name == scenario.name)
        peak = session.peaks[arm].get(scenario.name, 0)
        rows += [perf_row(scenario, engine, rec, peak, WALL, sampling.target)
                 for _, rec in ops]
    perf = pd.DataFrame(rows, columns=COLUMNS)
    parity_rows = pd.DataFrame(session.parity[arm])
    status = {(p["engine"], p["scenario"]): p["status"] for p in session.parity[arm]}
    perf["parity"] = [status.get((e, s), "not_run") for e, s in zip(perf.engine, perf.scenario)]
    hello = session.workers[arm]
    meta = {"created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            "quick": False, "machine": hello.get("machine"),
            "git": {"commit": build.commit, "dirty": build.dirty},
            "scenarios": [s.name for s in scenarios], "profile": profile, "measure": WALL,
            "sampling": dataclasses.asdict(dataclasses.replace(sampling,
                                                               rounds=max(len(session.load), 1))),
            "load_avg": {"start": session.load[:1], "end": session.load[-1:]},
            "wall_seconds": round(session.seconds, 1),
            "ab": {"session": session_id, "arm": arm, "mode": mode,
                   "build": build.as_dict(), "engines_file": hello.get("engines_file")}}
    engines_info = [{"label": engine, "name": engine.split(":")[0], "options": {},
                     "available": True, "reason": "", "threads": True}]
    return SuiteResult(parity_rows, parity_rows, perf, engines_info, meta).to_json()


def _simulated(builds, engine, imports, threshold, counter_thresholds, allow_inconclusive,
               profile, log, memory_threshold=None) -> AbOutcome:
    """Each build's profile counted under callgrind, then each head compared with the base
    counter by counter."""
    from lab.gate import compare
    if imports:
        raise ValueError("imports: the simulated A/B runs each build's own `hashlab bench`, "
                         "which imports no extra modules")
    results, seconds = {}, 0.0
    for arm, build in builds.items():
        started = time.perf_counter()
        log(f"ab: {arm}: counting the profile under callgrind")
        results[arm] = _simulated_json(build, engine, profile)
        # The build's own bench ran outside the checkout: say which code it was.
        results[arm]["git"] = {"commit": build.commit, "dirty": build.dirty}
        results[arm]["ab"] = {"arm": arm, "mode": "simulated", "build": build.as_dict()}
        seconds += time.perf_counter() - started
    gates = {arm: compare(results[arm], results[BASE], threshold, names=(arm, BASE),
                          counter_thresholds=counter_thresholds,
                          allow_inconclusive=allow_inconclusive,
                          memory_threshold=memory_threshold)
             for arm in builds if arm != BASE}
    meta = {"mode": "simulated", "rounds": 1, "seconds": round(seconds, 1),
            "profile": profile, "engine": engine}
    return AbOutcome(gates, results, builds, meta)


def _simulated_json(build, engine, profile) -> dict:
    """The build's own `hashlab bench --profile P --measure simulated`, run with its
    interpreter (so its own lab and engine are counted), as a bench file."""
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
