"""`hashlab explain`: one scenario (each of its variants) on engines, explained op by op into a
folder: `explain.json`, the flame graph SVGs and `index.html` (`lab.explain.page`).

For every engine: one callgrind child counts every variant (`lab.explain.counted`), then one
py-spy-sampled child per variant measures memory and samples the wall clock
(`lab.explain.sampled`). The JSON keeps per op: the counted figures per unit of work for the
engine and its baseline, the top functions (file:line) and hot source lines, the wall-clock
medians while sampled, the memory, and the SVGs' file names.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import time

from lab.explain import counted, flamegraph, sampled
from lab.explain import folded as fold

SCHEMA = "hashlab-explain/1"
JSON_NAME = "explain.json"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _without_profile(op: dict) -> dict:
    return {k: v for k, v in op.items() if k != "profile"}


def _ops(count: dict, sample: dict, only: set | None) -> list[dict]:
    """Per op (in scenario order): its counted, wall-clock and memory parts."""
    by_index: dict[int, dict] = {}
    for op in count.get("ops", []):
        by_index.setdefault(op["index"], {"index": op["index"], "op": op["op"]})["counted"] = op
    for op in sample.get("ops", []):
        by_index.setdefault(op["index"], {"index": op["index"], "op": op["op"]})["wall"] = op
    for index, mem in (sample.get("memory") or {}).items():
        entry = by_index.setdefault(int(index), {"index": int(index), "op": mem["op"]})
        entry["memory"] = {k: v for k, v in mem.items() if k != "op"}
    ops = [by_index[i] for i in sorted(by_index)]
    return [o for o in ops if only is None or o["op"] in only]


def _write_svgs(out_dir: str, variant: str, engine: str, ops: list, sample: dict) -> dict:
    """The engine's wall-clock flame graph (all ops) and one cost flame graph per counted op;
    {"wall": file, "ops": {index: file}} (names relative to `out_dir`)."""
    stem = f"{_safe(variant)}-{_safe(engine)}"
    written: dict = {"ops": {}}
    stacks = sample.get("folded")
    if stacks:
        ms = fold.scaled(stacks, 1000.0 / sampled.RATE)
        name = f"{stem}-wall.svg"
        flamegraph.write(os.path.join(out_dir, name), ms,
                         f"{engine} on {variant}: wall clock, every op and its baseline",
                         "ms", f"{sample.get('sampler', '')}; one tower per op "
                               f"(hashlab_op<index>_<op>), ms sampled in all")
        written["wall"] = name
    for op in ops:
        c = op.get("counted") or {}
        profile = c.get("profile")
        if not profile:
            continue
        name = f"{stem}-op{op['index']}-{_safe(op['op'])}-cycles.svg"
        flamegraph.write(os.path.join(out_dir, name), profile["folded"],
                         f"{engine} on {variant}: {op['op']} (op {op['index']}), counted",
                         "cycles", f"callgrind estimated cycles per call, mean of "
                                   f"{profile['calls']} call(s); cache model: 32 KiB L1, "
                                   f"8 MiB LL")
        written["ops"][str(op["index"])] = name
    return written


def explain(name: str, variants, choices, out_dir: str, only_ops=None, seconds: float = 2.0,
            memory: bool = True, progress=print) -> dict:
    """Explain every variant (a list of Scenario) on every engine choice into `out_dir`;
    returns what `explain.json` holds."""
    os.makedirs(out_dir, exist_ok=True)
    for stale in os.listdir(out_dir):        # an older explanation's graphs (ours only)
        if stale.endswith(("-wall.svg", "-cycles.svg")):
            os.unlink(os.path.join(out_dir, stale))
    started = time.perf_counter()
    only = set(only_ops) if only_ops else None
    from lab.timing import git_info, machine_info
    data = {"schema": SCHEMA, "scenario": name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "git": git_info(), "load_avg": {"start": list(
                os.getloadavg())},
            "settings": {"seconds_per_op": seconds, "memory": memory,
                         "rate_hz": sampled.RATE, "ops": sorted(only) if only else None},
            "variants": [{"scenario": v.name, "threads": v.threads,
                          "batch_size": v.batch_size, "steps": v.steps, "prefill": v.prefill,
                          "engines": []} for v in variants]}
    for choice in choices:
        t0 = time.perf_counter()
        progress(f"explain: {choice.label}: counting {len(variants)} variant(s) under "
                 f"callgrind")
        counts = counted.count(choice, variants)
        count_s = time.perf_counter() - t0
        for v, entry in zip(variants, data["variants"]):
            t1 = time.perf_counter()
            progress(f"explain: {choice.label} on {v.name}: memory and wall-clock samples")
            sample = sampled.sample(choice, v, seconds, memory)
            ops = _ops(counts.get(v.name, {}), sample, only)
            svgs = _write_svgs(out_dir, v.name, choice.label, ops, sample)
            for op in ops:
                for part in ("counted", "wall"):
                    if part in op:
                        op[part] = _without_profile(op[part])
                if str(op["index"]) in svgs["ops"]:
                    op["counted"]["svg"] = svgs["ops"][str(op["index"])]
            entry["engines"].append({
                "engine": choice.label, "ops": ops, "wall_svg": svgs.get("wall"),
                "count_error": counts.get(v.name, {}).get("error"),
                "sample_error": sample.get("error"), "memory_error": sample.get("memory_error"),
                "sampler": sample.get("sampler"),
                "seconds": {"counting (all variants)": round(count_s, 1),
                            "sampling and memory": round(time.perf_counter() - t1, 1)}})
    data["load_avg"]["end"] = list(os.getloadavg())
    data["seconds"] = round(time.perf_counter() - started, 1)
    return data
