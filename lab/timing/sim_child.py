"""The process `lab.timing.simulated` runs under callgrind: `python -m lab.timing.sim_child
JOB.json`. It runs each scenario of the job on one engine, every engine and baseline call
through `lab.callgrind.measured_call`, and writes the raw samples (call labels, sizes) to the
job's result file; the parent turns the dumps into costs.

Each op is measured on its scenario's `steps` (after the untimed warm-up). Engines that work
outside this process (their calls would not be counted) or on a GPU are refused.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import sys

import psutil


def _import(target: str) -> None:
    """A module name, or the path of a Python file (e.g. one registering a test engine)."""
    if target.endswith(".py") and os.path.exists(target):
        name = "hashlab_sim_import_" + os.path.splitext(os.path.basename(target))[0]
        spec = importlib.util.spec_from_file_location(name, target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(target)


def meter(fn, label):
    from lab.callgrind import measured_call
    return measured_call(fn, label), float("nan")


def run_job(job: dict) -> list[dict]:
    import engines
    from lab.engine_select import EngineChoice
    from lab.scenarios import Scenario
    from lab.scenarios.execute import skipped_op_reason
    from lab.timing.baseline import Baselines
    from lab.timing.sampling import Sampling, sample_scenario

    for target in job.get("imports", ()):
        _import(target)
    spec = job["engine"]
    probe = engines.get(spec["name"], **spec["options"])
    choice = EngineChoice(spec["label"], spec["name"], spec["options"], probe.capabilities, {})
    out = []
    for i, data in enumerate(job["scenarios"]):
        scenario = Scenario.from_dict(data)
        entry = {"scenario": scenario.name, "ops": [], "error": None}
        out.append(entry)
        if choice.capabilities.gpu:
            entry["error"] = "device work is not simulated (GPU engine)"
            continue
        work = os.path.join(job["workdir"], f"s{i}")
        os.makedirs(os.path.join(work, "baseline"), exist_ok=True)
        try:
            engine = choice.make(scenario.threads)
            skip = frozenset(j for j, op in enumerate(scenario.ops)
                             if skipped_op_reason(engine, op))
            ops, _ = sample_scenario(scenario, engine, os.path.join(work, "engine"),
                                     Baselines(os.path.join(work, "baseline")),
                                     Sampling.fixed(scenario.steps), meter=meter, skip=skip,
                                     observe=False)
        except Exception as exc:          # reported by the parent, like a wall-clock failure
            entry["error"] = f"{type(exc).__name__}: {exc}"
            continue
        entry["ops"] = [dataclasses.asdict(ops[j]) for j in sorted(ops)]
    # Only now: reading /proc would change this process's heap, and so later counts.
    if psutil.Process().children(recursive=True):
        for entry in out:
            entry["error"] = entry["error"] or ("the engine works in another process; "
                                                "callgrind counts only this one")
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
