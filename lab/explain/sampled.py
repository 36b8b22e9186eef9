"""`hashlab explain`, sampled: each op's wall-clock profile from py-spy, for every engine
(Python engines too: py-spy shows Python frames, and with `--native` the C and C++ frames
under them), plus the memory of each op.

py-spy starts the explain child (`lab.explain.child`) itself (`py-spy record --native --idle
--format raw -- python -m lab.explain.child`), so it may trace it without special
privileges, and samples it `RATE` times a second, idle waits included (`--idle`: an fsync or
a lock is wall time too). The child makes every call through a function named after its op
(`lab.explain.child.MARKER`); the stacks through that frame are the op's. What py-spy cannot
see: threads that never ran Python (the native engine's worker threads when a scenario uses
more than one); their time shows as the caller's wait.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from lab.explain import folded as fold
from lab.explain import profiles
from lab.explain.child import marker_name

RATE = 200                         # samples per second


def unavailable_reason() -> str | None:
    if shutil.which("py-spy") is None and not os.path.exists(_pyspy_beside_python()):
        return ("py-spy is not installed (the `profile` extra: pip install -c constraints.txt "
                "-e \".[profile]\")")
    return None


def _pyspy_beside_python() -> str:
    return os.path.join(os.path.dirname(sys.executable), "py-spy")


def _pyspy() -> str:
    here = _pyspy_beside_python()
    return here if os.path.exists(here) else shutil.which("py-spy")


def sample(choice, scenario, seconds: float, memory: bool = True,
           workdir: str | None = None) -> dict:
    """{"ops": [...], "memory": {...}, "folded": stacks (samples) through the op markers,
    "sampler": what sampled} of one engine on one scenario, in a child of its own (the op
    markers are named by op index, so two scenarios in one child would share them). py-spy
    pauses the child for each sample (native stacks need it): wall times measured while
    sampled run slower than `hashlab bench`'s (docs/investigating.md has the overhead)."""
    root = tempfile.mkdtemp(prefix="hashlab-explain-sample-", dir=workdir)
    try:
        job, result, raw = (os.path.join(root, n) for n in ("job.json", "result.json",
                                                             "pyspy.txt"))
        with open(job, "w", encoding="utf-8") as f:
            json.dump({"engine": choice.label, "scenarios": [scenario.to_dict()],
                       "seconds": seconds, "memory": memory,
                       "workdir": os.path.join(root, "work"), "result": result}, f)
        child = [sys.executable, "-P", "-m", "lab.explain.child", job]
        why = unavailable_reason()
        cmd = child if why else [_pyspy(), "record", "--native", "--idle", "--rate",
                                 str(RATE), "--format", "raw", "--output", raw, "--", *child]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(result):
            tail = " | ".join((proc.stderr or "").strip().splitlines()[-5:])
            return {"error": f"the sampled run failed (exit {proc.returncode}): {tail}",
                    "ops": [], "memory": {}}
        with open(result, encoding="utf-8") as f:
            outcome = json.load(f)
        stacks = fold.read_pyspy(raw) if os.path.exists(raw) else {}
        sampler = (f"py-spy {RATE} Hz, native frames, idle included" if not why
                   else f"none ({why})")
        return _scenario(outcome[0], stacks, sampler)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _is_marker(frame: str) -> bool:
    return frame.startswith("hashlab_op") and "(<hashlab explain>" in frame


def _scenario(entry: dict, stacks: dict, sampler: str) -> dict:
    out = {"sampler": sampler, "memory": entry.get("memory") or {},
           "memory_error": entry.get("memory_error"), "error": entry.get("error"),
           "ops": []}
    if entry.get("error"):
        return out
    ops_stacks = fold.below(stacks, _is_marker)
    out["folded"] = ops_stacks
    for op in entry["ops"]:
        mine = marker_name(op["index"], op["op"])
        op_stacks = fold.below(ops_stacks, lambda f, m=mine: f.startswith(m + " "))
        base_stacks = fold.below(ops_stacks,
                                 lambda f, m=mine: f.startswith(m + "_baseline "))
        profile = (profiles.from_samples(op_stacks, op["calls"], 1.0 / RATE)
                   if op_stacks else None)
        out["ops"].append({
            "index": op["index"], "op": op["op"], "calls": op["calls"],
            "engine_s": _median(op["engine_s"]), "baseline_s": _median(op["baseline_s"]),
            "samples": fold.total(op_stacks), "baseline_samples": fold.total(base_stacks),
            "top_functions": profiles.top_functions(profile, 10) if profile else [],
            "profile": profile})
    return out


def _median(values):
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def wall_profiles(todo, seconds: float = 1.0, progress: bool = False) -> list[dict]:
    """Every op's wall-clock profile (`lab.explain.profiles`, keyed like its perf row) for
    (scenario, engine choice) pairs: what `hashlab bench --wall-profiles` keeps for the gate's
    differential profiles. Run after the timing, never during it."""
    out = []
    for scenario, choice in todo:
        if progress:
            print(f"wall profiles: {choice.label} on {scenario.name}", file=sys.stderr,
                  flush=True)
        found = sample(choice, scenario, seconds, memory=False)
        if found.get("error"):
            print(f"wall profiles: {choice.label} on {scenario.name}: {found['error']}",
                  file=sys.stderr)
            continue
        for op in found["ops"]:
            if op.get("profile"):
                out.append({"engine": choice.label, "scenario": scenario.name, "op": op["op"],
                            "op_index": op["index"], "threads": scenario.threads,
                            "measure": "wall", **op["profile"]})
    return out
