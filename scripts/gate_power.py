"""Measure the CI gate's false-alarm rate and power on this machine (docs/measurement.md).

    .venv/bin/python -P scripts/gate_power.py --pairs 10 --out reports/gate_power

For each measure mode (wall, simulated), while a second process keeps one core busy
(`--no-busy` to leave it out), it makes `--pairs` + 1 same-code runs R0..Rn and `--pairs`
slowed runs S1..Sn of `hashlab bench --profile gate`, in the order R0, R1, S1, R2, S2, ...:
- same code: pair i gates R(i) against R(i-1). False alarm = the gate fails.
- power: S(i) runs the profile on `test-slow-lookup` (lab/gate/slowdown.py: every `lookup`
  also looks up a quarter of its batch again, about 1.25x the work), labelled native-cpu, and
  is gated against R(i-1). Caught = the gate fails and names a `lookup` op.

That is 2 x pairs + 1 runs per mode: about 1.5 min each in wall-clock mode (the gate
profile's ten rounds) and 2.5-3 min in simulated mode on a 2-core machine, so --pairs 10 takes
roughly 30 min (wall) + 60 min (simulated). Every verdict is evaluated at each `--thresholds` value on the same runs, and
`--regate` re-evaluates saved runs without running anything. Writes every bench JSON,
results-MODE.json and table.md under --out, and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import engines  # noqa: F401  (engine registry, before lab.gate.slowdown registers into it)
from lab.engine_select import EngineChoice, resolve
from lab.gate import compare
from lab.gate.slowdown import NAME as SLOW_ENGINE
from lab.scenarios.profiles import profile_scenarios
from lab.suite import run_suite

BASE = "native-cpu"
SLOWDOWN = 0.25


def _busy_core() -> subprocess.Popen:
    """A second process spinning on one core for the whole study."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _run(measure: str, slow: bool, path: str) -> dict:
    scenarios = profile_scenarios("gate")
    if slow:
        (base,) = resolve([BASE])[0]
        choice = EngineChoice(BASE, SLOW_ENGINE, {"base": BASE, "fraction": SLOWDOWN},
                              base.capabilities, base.known_divergences)
        choices = [choice]
    else:
        choices, _ = resolve([BASE])
    result = run_suite(scenarios, choices, quick=False, measure=measure, profile="gate",
                       imports=["lab.gate.slowdown"] if slow else ())
    data = result.to_json()
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    return data


def _verdicts(current: dict, baseline: dict, thresholds, basis: str = "auto") -> dict:
    out = {}
    for th in thresholds:
        res = compare(current, baseline, threshold=th, basis=basis)
        regressed = res.perf[res.perf["verdict"] == "REGRESSION"]
        out[f"{th:.2f}"] = {"fail": bool(res.exit_code),
                            "regressed_ops": sorted(f"{r.scenario}:{r.op}"
                                                    for r in regressed.itertuples()),
                            "lookup_caught": bool((regressed["op"] == "lookup").any()),
                            "basis": ("cost" if (res.perf["measure"] == "simulated").all()
                                      else res.basis),
                            "unstable": res.count("unstable")}
    return out


def study(measure: str, pairs: int, out: str, thresholds, busy: bool) -> dict:
    os.makedirs(out, exist_ok=True)
    runs = []                                     # (kind, path, seconds, load at start/end)

    def run(kind, i, slow):
        path = os.path.join(out, f"{measure}-{kind}{i}.json")
        started, load0 = time.perf_counter(), os.getloadavg()[0]
        data = _run(measure, slow, path)
        runs.append({"run": os.path.basename(path), "seconds": round(time.perf_counter() -
                                                                       started, 1),
                     "load_start": round(load0, 2), "load_end": round(os.getloadavg()[0], 2)})
        print(f"  {measure} {kind}{i}: {runs[-1]['seconds']} s, load "
              f"{runs[-1]['load_start']} -> {runs[-1]['load_end']}", flush=True)
        return data

    def save(done):
        loads = [r[k] for r in runs for k in ("load_start", "load_end")]
        result = {"measure": measure, "pairs": done, "runs": runs, "busy_core": busy,
                  "load": {"min": min(loads), "mean": round(sum(loads) / len(loads), 2),
                           "max": max(loads)}}
        with open(os.path.join(out, f"results-{measure}.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)            # after every pair: usable if cut short
        return result

    prev = run("same", 0, False)
    for i in range(1, pairs + 1):
        cur = run("same", i, False)
        slow = run("slow", i, True)
        th = f"{thresholds[0]:.2f}"
        false_alarm = _verdicts(cur, prev, thresholds[:1])[th]["fail"]
        caught = _verdicts(slow, prev, thresholds[:1])[th]["lookup_caught"]
        print(f"    pair {i} at {th}x: same code {'FAIL' if false_alarm else 'pass'}, "
              f"slowdown {'caught' if caught else 'missed'}", flush=True)
        prev = cur
        result = save(i)
    return result


def regate(out: str, result: dict, thresholds, basis: str = "auto") -> dict:
    """The gate's verdicts on a study's saved runs (at every threshold)."""
    def load(kind, i):
        with open(os.path.join(out, f"{result['measure']}-{kind}{i}.json"),
                  encoding="utf-8") as f:
            return json.load(f)
    same, power = [], []
    for i in range(1, result["pairs"] + 1):
        base = load("same", i - 1)
        same.append(_verdicts(load("same", i), base, thresholds, basis))
        power.append(_verdicts(load("slow", i), base, thresholds, basis))
    return dict(result, same=same, power=power, basis=basis)


def table(results: list[dict], thresholds) -> str:
    lines = ["| mode | compared on | threshold | same-code pairs failing (false alarms) | "
             "injected 1.25x lookup slowdown caught | false REGRESSIONs on other ops in slowed "
             "runs | load avg (1 min) min/mean/max | s per run |",
             "|---|---|---|---|---|---|---|---|"]
    for res in results:
        secs = sorted(r["seconds"] for r in res["runs"])
        for th in (f"{t:.2f}" for t in thresholds):
            fa = sum(p[th]["fail"] for p in res["same"])
            caught = sum(p[th]["lookup_caught"] for p in res["power"])
            others = sum(any(not op.endswith(":lookup") for op in p[th]["regressed_ops"])
                         for p in res["power"])
            on = sorted({p[th]["basis"] for p in res["same"] + res["power"]})
            lines.append(f"| {res['measure']} | {'/'.join(on)} | {th}x | {fa}/{res['pairs']} | "
                         f"{caught}/{res['pairs']} | {others}/{res['pairs']} | "
                         f"{res['load']['min']}/{res['load']['mean']}/{res['load']['max']} | "
                         f"{secs[len(secs) // 2]} |")
    busy = sorted({r["measure"] for r in results if r.get("busy_core")})
    idle = sorted({r["measure"] for r in results if not r.get("busy_core")})
    load = (f"a second process kept one core busy in: {', '.join(busy) or 'no mode'}"
            + (f"; not in: {', '.join(idle)}" if idle else ""))
    lines += ["", f"`hashlab bench --profile gate` on {BASE}; slowdown engine {SLOW_ENGINE} "
                  f"(fraction {SLOWDOWN}); {load}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10, help="pairs per mode (default 10)")
    ap.add_argument("--out", default=os.path.join("reports", "gate_power"),
                    help="folder for the bench JSONs, results.json and table.md")
    ap.add_argument("--measure", nargs="+", choices=("wall", "simulated"),
                    default=["wall", "simulated"])
    ap.add_argument("--thresholds", nargs="+", type=float, default=[1.10, 1.15, 1.20])
    ap.add_argument("--no-busy", action="store_true", help="do not keep a core busy")
    ap.add_argument("--basis", nargs="+", choices=("auto", "time", "ratio"), default=["auto"],
                    help="what the gate compares wall-clock ops on (hashlab gate --basis); "
                         "several: one table row each")
    ap.add_argument("--regate", action="store_true",
                    help="only re-evaluate the runs saved under --out")
    args = ap.parse_args(argv)
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")
    if not args.regate:
        estimate = sum((2 * args.pairs + 1) * (85 if m == "wall" else 170)
                       for m in args.measure)
        print(f"gate_power: {args.pairs} pair(s) per mode {args.measure}; about "
              f"{estimate / 60:.0f} min on a 2-core machine", flush=True)
        busy = None if args.no_busy else _busy_core()
        try:
            for m in args.measure:
                study(m, args.pairs, args.out, args.thresholds, busy is not None)
        finally:
            if busy is not None:
                busy.terminate()
                busy.wait()
    results = []
    for m in ("wall", "simulated"):
        path = os.path.join(args.out, f"results-{m}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            for basis in (args.basis if m == "wall" else ["auto"]):
                results.append(regate(args.out, saved, args.thresholds, basis))
    text = table(results, args.thresholds)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
