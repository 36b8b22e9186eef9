"""Measure the CI gate's false-alarm rate and power on this machine, on real regressions
built into copies of the engine (the regression zoo, scripts/regression_zoo/): the tables in
docs/measurement.md come from here.

    .venv/bin/python -P scripts/gate_power.py cost --out reports/gate_power
    .venv/bin/python -P scripts/gate_power.py study --mode ab --load one-core --pairs 10 \
        --out reports/gate_power

Run it from a clean checkout: every build is a git ref of it (HEAD, and HEAD with one zoo
patch each), made once by `hashlab ab`'s build cache.

- `cost`: each zoo entry's real cost on a quiet machine (no busy process): one A/B session,
  interleaved, the base and every zoo entry side by side, `--rounds` rounds; per entry and
  op, the median paired change (head / base time).
- `study`: `--pairs` more repetitions (added to the study already in `--out`, if any, of
  the same heads and commit) while `--load` keeps the machine busy (`one-core`: one
  process spinning; `two-procs`: two). Per repetition and mode:
  - `ab` (interleaved): one session with the base, a second copy of the base (same code:
    the false-alarm check) and every zoo entry as heads;
  - `duet`: one two-build session per head (duet pairs exactly two builds);
  - `simulated`: each build's profile counted under callgrind, every head against the base.
  Each head's verdict is evaluated at every `--thresholds` value (wall) on the saved files
  (`--regate` re-evaluates without running anything). A zoo entry is *caught* when the gate
  fails naming one of the ops it affects (zoo.toml); any other op it flags is a *false flag*;
  the same-code head failing is a *false alarm*.

Writes every session's bench files, results-*.json and table.md under --out, and prints the
table.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO_DIR = os.path.join(HERE, "regression_zoo")
SAME = "same_code"
LOADS = {"quiet": 0, "one-core": 1, "two-procs": 2}


def zoo(names=None) -> dict:
    with open(os.path.join(ZOO_DIR, "zoo.toml"), "rb") as f:
        entries = tomllib.load(f)
    unknown = set(names or ()) - set(entries)
    if unknown:
        raise SystemExit(f"gate_power: unknown zoo entries {sorted(unknown)}; known: "
                         f"{sorted(entries)}")
    return {n: e for n, e in entries.items() if not names or n in names}


COMMIT = ["HEAD"]      # --commit


@functools.cache
def base_commit() -> str:
    """The measured commit (HEAD unless --commit), resolved once: a commit made while a
    study runs must not change it."""
    return subprocess.run(["git", "rev-parse", "--verify", f"{COMMIT[0]}^{{commit}}"],
                          capture_output=True, text=True, check=True, cwd=HERE).stdout.strip()


def spec(name: str) -> str:
    """The build spec of an arm: HEAD's commit, or it with the zoo entry's patch."""
    if name == SAME:
        return base_commit()
    return f"{base_commit()}+{os.path.join(ZOO_DIR, zoo([name])[name]['patch'])}"


class Busy:
    """`n` processes spinning on the CPU for the duration of a `with` block."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(self.n)]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
            p.wait()


def _ab(heads: list[str], mode: str, out: str, rounds: int | None, seed: int,
        measure: str = "wall") -> dict:
    """One `hashlab ab HEAD <heads...>` session; its bench files go to `out`. Returns
    {arm label: file} plus "seconds" and "load"."""
    from lab.ab import BuildSpec, head_labels, run_ab
    started, load0 = time.perf_counter(), os.getloadavg()[0]
    outcome = run_ab(BuildSpec.parse(base_commit()), [BuildSpec.parse(spec(h)) for h in heads],
                     mode=mode, rounds=rounds, seed=seed, measure=measure,
                     allow_inconclusive=True, log=lambda *a: None)
    os.makedirs(out, exist_ok=True)
    files = {}
    for arm, data in outcome.results.items():
        name = "base" if arm == "base" else heads[head_labels(len(heads)).index(arm)]
        files[name] = os.path.join(out, f"{name}.json")
        with open(files[name], "w", encoding="utf-8") as f:
            json.dump(data, f)
    return {"files": files, "seconds": round(time.perf_counter() - started, 1),
            "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "rounds": outcome.meta["rounds"]}


def verdicts(head_file: str, base_file: str, affects, thresholds) -> dict:
    """The gate's verdict on one head, at each threshold (None: the gate's defaults, e.g.
    the simulated counters' own): failed, caught (a regression on an op it affects), false
    flags (regressions on other ops), unstable count."""
    from lab.gate import compare
    from lab.suite import load_bench_json
    head, base = load_bench_json(head_file), load_bench_json(base_file)
    out = {}
    for th in thresholds:
        res = compare(head, base, threshold=th, allow_inconclusive=True)
        regressed = res.perf[res.perf["verdict"] == "REGRESSION"]
        ops = sorted(f"{r.scenario}:{r.op}" for r in regressed.itertuples())
        out[_key(th)] = {
            "fail": res.exit_code == 1, "regressed": ops,
            "caught": bool(affects) and any(op.split(":")[1] in affects for op in ops),
            "false_flags": [op for op in ops if op.split(":")[1] not in (affects or ())],
            "unstable": res.count("unstable"), "ops": len(res.perf),
            "inconclusive": res.inconclusive, "basis": res.basis}
    return out


def _key(threshold) -> str:
    return "default" if threshold is None else f"{threshold:.2f}"


def cost(args) -> dict:
    """Each zoo entry's real cost: a quiet interleaved session, base and every entry."""
    entries = zoo(args.zoo)
    folder = os.path.join(args.out, "cost")
    run = _ab(list(entries), "interleaved", folder, args.rounds, seed=0)
    from lab.gate import compare
    from lab.suite import load_bench_json
    base = load_bench_json(run["files"]["base"])
    table = {}
    for name, entry in entries.items():
        res = compare(load_bench_json(run["files"][name]), base, allow_inconclusive=True)
        table[name] = {f"{r.scenario}:{r.op}": [round(r.change, 3), round(r.ci_low, 3),
                                                round(r.ci_high, 3)]
                       for r in res.perf.itertuples()}
    result = {"rounds": run["rounds"], "seconds": run["seconds"], "load": run["load"],
              "changes": table, "affects": {n: e["affects"] for n, e in entries.items()}}
    with open(os.path.join(args.out, "cost.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return result


def study(args) -> dict:
    entries = zoo(args.zoo)
    heads = [SAME, *entries]
    tag = f"{args.mode}-{args.load}"
    path = os.path.join(args.out, f"results-{tag}.json")
    result = {"mode": args.mode, "load": args.load, "pairs": [], "heads": heads,
              "affects": {n: e["affects"] for n, e in entries.items()},
              "commit": base_commit()}
    if os.path.exists(path):                # go on with an earlier study of the same heads
        with open(path, encoding="utf-8") as f:
            earlier = json.load(f)
        if earlier["heads"] != heads or earlier.get("commit", result["commit"]) != \
                result["commit"]:
            raise SystemExit(f"gate_power: {path} holds a study of other heads or another "
                             f"commit; choose another --out")
        result["pairs"] = earlier["pairs"]
    done = len(result["pairs"])
    with Busy(LOADS[args.load]):
        for i in range(done, done + args.pairs):
            folder = os.path.join(args.out, tag, f"pair{i + 1}")
            if args.mode == "ab":
                runs = [_ab(heads, "interleaved", folder, args.rounds, seed=i)]
            elif args.mode == "duet":
                runs = [_ab([h], "duet", os.path.join(folder, h), args.rounds, seed=i)
                        for h in heads]
            else:
                runs = [_ab(heads, "interleaved", folder, None, seed=i, measure="simulated")]
            files = {}
            for run in runs:
                files.update(run["files"])
            bases = {h: next(r["files"]["base"] for r in runs if h in r["files"])
                     for h in heads}
            result["pairs"].append({"files": files, "bases": bases,
                                    "seconds": sum(r["seconds"] for r in runs),
                                    "load": [x for r in runs for x in r["load"]]})
            print(f"  {tag} pair {i + 1}: {result['pairs'][-1]['seconds']:.0f} s, load "
                  f"{result['pairs'][-1]['load']}", flush=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1)        # usable if cut short
    return result


def _thresholds(result: dict, thresholds) -> list:
    """Simulated runs are gated at the counters' own thresholds; wall runs at each given."""
    return [None] if result["mode"] == "simulated" else list(thresholds)


def regate(result: dict, thresholds) -> dict:
    """Verdicts of every saved pair, judged by the zoo's manifest as it is now (which ops
    each entry affects may have been corrected since the runs)."""
    entries = zoo()
    result["affects"] = {h: entries[h]["affects"] if h in entries else a
                         for h, a in result["affects"].items()}
    for pair in result["pairs"]:
        pair["verdicts"] = {h: verdicts(pair["files"][h], pair["bases"][h],
                                        result["affects"].get(h, ()),
                                        _thresholds(result, thresholds))
                            for h in result["heads"]}
    return result


def table(results: list[dict], thresholds) -> str:
    lines = ["| mode | load | threshold | head | real regression caught | same code failing "
             "(false alarm) | other ops falsely flagged | inconclusive | load avg min/mean/max "
             "| s per repetition |", "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        n = len(res["pairs"])
        if not n:
            continue
        loads = [x for p in res["pairs"] for x in p["load"]]
        secs = sorted(p["seconds"] for p in res["pairs"])
        load = f"{min(loads)}/{sum(loads) / len(loads):.2f}/{max(loads)}"
        for th in map(_key, _thresholds(res, thresholds)):
            for h in res["heads"]:
                vs = [p["verdicts"][h][th] for p in res["pairs"]]
                caught = "-" if h == SAME else f"{sum(v['caught'] for v in vs)}/{n}"
                alarm = f"{sum(v['fail'] for v in vs)}/{n}" if h == SAME else "-"
                flagged = f"{sum(bool(v['false_flags']) for v in vs)}/{n}"
                inconclusive = f"{sum(v['inconclusive'] for v in vs)}/{n}"
                th_text = "per counter" if th == "default" else f"{th}x"
                lines.append(f"| {res['mode']} | {res['load']} | {th_text} | {h} | {caught} | "
                             f"{alarm} | {flagged} | {inconclusive} | {load} | "
                             f"{secs[len(secs) // 2]} |")
    return "\n".join(lines)


def cost_table(result: dict) -> str:
    lines = [f"Real cost, quiet machine: one interleaved session of {result['rounds']} rounds "
             f"({result['seconds']:.0f} s, load {result['load']}); median paired change "
             f"(head / base time) [95% CI] of the ops each entry affects, and the largest "
             f"change of any other op:", "",
             "| zoo entry | affected ops | other ops, largest change |", "|---|---|---|"]
    for name, changes in result["changes"].items():
        affects = result["affects"][name]
        mine = [f"{op} {c[0]:.2f}x [{c[1]:.2f}-{c[2]:.2f}]" for op, c in changes.items()
                if op.split(":")[1] in affects]
        others = [(c[0], op) for op, c in changes.items() if op.split(":")[1] not in affects]
        worst = max(others, key=lambda c: abs(c[0] - 1)) if others else None
        lines.append(f"| {name} | {'; '.join(mine) or '-'} | "
                     f"{f'{worst[1]} {worst[0]:.2f}x' if worst else '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("cost", "study", "table"))
    ap.add_argument("--mode", choices=("ab", "duet", "simulated"), default="ab")
    ap.add_argument("--load", choices=sorted(LOADS), default="one-core")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--rounds", type=int, help="rounds per session (default: the profile's)")
    ap.add_argument("--zoo", nargs="+", help="zoo entries (default: all)")
    ap.add_argument("--thresholds", nargs="+", type=float, default=[1.05, 1.10, 1.20])
    ap.add_argument("--out", default=os.path.join("reports", "gate_power"))
    ap.add_argument("--commit", default="HEAD",
                    help="the commit measured (default HEAD); its builds, and those with each "
                         "zoo patch, are found in the build cache when an earlier study made "
                         "them")
    args = ap.parse_args(argv)
    COMMIT[0] = args.commit
    os.makedirs(args.out, exist_ok=True)
    if args.what == "cost":
        print(cost_table(cost(args)))
        return 0
    if args.what == "study":
        study(args)
    results = []
    for name in sorted(os.listdir(args.out)):
        if name.startswith("results-") and name.endswith(".json"):
            with open(os.path.join(args.out, name), encoding="utf-8") as f:
                results.append(regate(json.load(f), args.thresholds))
    text = table(results, args.thresholds)
    cost_file = os.path.join(args.out, "cost.json")
    if os.path.exists(cost_file):
        with open(cost_file, encoding="utf-8") as f:
            text = cost_table(json.load(f)) + "\n\n" + text
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
