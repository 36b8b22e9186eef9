"""The process `hashlab explain` samples with py-spy: `python -m lab.explain.child JOB.json`.

For each scenario of the job, on one engine: the memory of each op (`lab.timing.memory`, on a
fresh engine, before any sampling), then a round of paired steps (engine call, then its
baseline; `lab.timing.sampling.RoundSampler`) for about `seconds` per op, every call made
through a function of its own name, `hashlab_op<index>_<op>` (its baseline:
`..._baseline`), so that the sampler's stacks say which op each sample belongs to
(`MARKER`). It writes each op's call count and wall times, and the memory figures, to the
job's result file.
"""
from __future__ import annotations

import json
import os
import sys
import time

MARKER = "hashlab_op"
MARKER_FILE = "<hashlab explain>"


def marker_name(index: int, op: str, baseline: bool = False) -> str:
    return f"{MARKER}{index}_{op}" + ("_baseline" if baseline else "")


def _marker(name: str):
    """A function called `name` that calls its argument (its own code object, so samplers
    show the name)."""
    namespace: dict = {}
    exec(compile(f"def {name}(fn):\n    return fn()\n", MARKER_FILE, "exec"), namespace)
    return namespace[name]


class MarkerMeter:
    """A meter (`lab.scenarios.execute`): times each call, made through its op's marker."""

    def __init__(self):
        self.markers: dict[str, object] = {}

    def __call__(self, fn, label: str):
        parts = label.split("#")           # scenario#step#index#op[#baseline]
        name = marker_name(int(parts[2]), parts[3], label.endswith("#baseline"))
        marker = self.markers.get(name)
        if marker is None:
            marker = self.markers[name] = _marker(name)
        start = time.perf_counter()
        out = marker(fn)
        return out, time.perf_counter() - start


def run_job(job: dict) -> list[dict]:
    from lab.engine_select import resolve
    from lab.scenarios import Scenario
    from lab.scenarios.execute import skipped_op_reason
    from lab.timing.baseline import Baselines
    from lab.timing.memory import measure_scenario, summary
    from lab.timing.memory import unavailable_reason as memory_unavailable
    from lab.timing.sampling import RoundSampler, Sampling

    usable, unusable = resolve([job["engine"]])
    if not usable:
        raise SystemExit(f"engine {job['engine']}: {unusable[0][1]}")
    choice = usable[0]
    seconds = float(job["seconds"])
    out = []
    for i, data in enumerate(job["scenarios"]):
        scenario = Scenario.from_dict(data)
        entry = {"scenario": scenario.name, "ops": [], "memory": {}, "error": None,
                 "memory_error": None}
        out.append(entry)
        work = os.path.join(job["workdir"], f"s{i}")
        os.makedirs(os.path.join(work, "baseline"), exist_ok=True)
        try:
            if job.get("memory"):
                why = memory_unavailable()
                if why:
                    entry["memory_error"] = why
                else:
                    measured = measure_scenario(scenario, choice, work)
                    entry["memory"] = {str(k): {"op": v["op"], **summary(v)}
                                       for k, v in measured.items()}
            engine = choice.make(scenario.threads)
            skip = frozenset(j for j, op in enumerate(scenario.ops)
                             if skipped_op_reason(engine, op))
            sampling = Sampling(min_samples=3, max_samples=1_000_000, target=0.0,
                                cap_s=seconds, floor=3, warmup_s=0.0, long_s=float("inf"))
            sampler = RoundSampler(scenario, engine, os.path.join(work, "engine"),
                                   Baselines(os.path.join(work, "baseline")), sampling,
                                   meter=MarkerMeter(), skip=skip, observe=False)
            sampler.prepare()
            ops, _ = sampler.sample()
        except Exception as exc:          # reported by the parent
            entry["error"] = f"{type(exc).__name__}: {exc}"
            continue
        entry["ops"] = [{"index": rec.index, "op": rec.op, "kind": rec.kind,
                         "calls": len(rec.engine), "engine_s": list(rec.engine),
                         "baseline_s": [b for b in rec.baseline if b == b],
                         "n_ids": list(rec.n_ids)} for rec in (ops[j] for j in sorted(ops))]
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        job = json.load(f)
    result = run_job(job)
    with open(job["result"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
