"""The simulated cost mode (`hashlab bench --measure simulated`): each op counted by
valgrind's callgrind instead of timed, so the same code gives the same numbers on any machine
and under any load.

One child process per engine (`lab.timing.sim_child`) runs under
`valgrind --tool=callgrind --instr-atstart=no`: set-up, prefill and warm-up run without
instrumentation; each engine call and each baseline call is wrapped by
`lab.callgrind.measured_call`, which switches instrumentation on, zeroes the counters, makes
the call, dumps the counters under the call's label and switches instrumentation off. This
module reads the dumps back and turns each into a cost:

    cost = Ir + 10 x (I1mr + D1mr + D1mw) + 100 x (ILmr + DLmr + DLmw)      (lab.timing.counters)

(instructions, plus level-1 and last-level cache misses weighted by typical latencies in
cycles; the usual callgrind "estimated cycles"). Every call also keeps its counters
(`COUNTERS`: instructions, D1 misses, LL misses, branch mispredictions), which the gate
compares one by one (`lab.gate.counters`). The cache model is fixed (32 KiB 8-way L1s,
8 MiB 16-way LL, 64-byte lines) rather than read from the host, and the child gets a fixed
minimal environment (`child_environment`), so two runs of the same code on one thread give
identical counts. The counters and the cost formula live in `lab.timing.counters`.

Every dump is written per function and source line (`--dump-line=yes`: what is counted is the
same, only the output is finer), so a run can also keep each op's profile: where its cost
went, function by function (`lab.explain.profiles`; the gate's differential profiles and
`hashlab explain` read them).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from lab.timing.counters import COUNTERS, cost, counter, l1_misses
from lab.timing.rows import SIMULATED, perf_row
from lab.timing.sampling import OpSamples, baseline_label

CACHE_MODEL = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64"]
TARGET = 0.0          # counts carry no noise: nothing is "unstable"
TRIGGER = "desc: Trigger: Client Request: "


def valgrind_command(out_prefix: str, log: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--cache-sim=yes",
            "--branch-sim=yes", *CACHE_MODEL, "--dump-instr=no", "--dump-line=yes",
            f"--callgrind-out-file={out_prefix}", f"--log-file={log}"]


def read_dump(path: str) -> tuple[str, dict]:
    """(the label it was dumped under, {event: total count}) of one callgrind.out file."""
    label, names, totals = None, None, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(TRIGGER):
                label = line[len(TRIGGER):].strip()
            elif line.startswith("events:"):
                names = line.split()[1:]
            elif line.startswith(("totals:", "summary:")) and totals is None:
                totals = [int(x) for x in line.split()[1:]]
    if label is None or names is None or totals is None:
        raise ValueError(f"{path}: not a callgrind dump of a measured call")
    return label, dict(zip(names, totals + [0] * (len(names) - len(totals))))


def dump_files(folder: str, prefix: str) -> list[str]:
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.startswith(prefix + "."))


def read_dumps(folder: str, prefix: str) -> dict[str, dict]:
    out = {}
    for path in dump_files(folder, prefix):
        label, events = read_dump(path)
        out[label] = events
    return out


def child_environment() -> dict:
    """A fixed, minimal environment: the child's heap layout (and so its counts) must not
    depend on who started it from where, and no idle library thread pool (OpenBLAS starts
    one per core) may run while a call is counted."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0",
           "LC_ALL": "C.UTF-8", "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.update((k, v) for k, v in os.environ.items() if k.startswith("HASHLAB_"))
    return env


def unavailable_reason() -> str | None:
    from lab.callgrind import unavailable_reason as why
    return why()


def run_simulated(todo, progress: bool = False, workdir: str | None = None,
                  imports=(), profiles: list | None = None) -> list[dict]:
    """Perf rows for (scenario, engine choice) pairs, one valgrind child per engine.
    `profiles`: a list to append each op's profile to (`lab.explain.profiles`, keyed like
    the rows)."""
    why = unavailable_reason()
    if why:
        raise RuntimeError(f"--measure simulated: {why}")
    by_engine: dict[str, tuple] = {}
    for scenario, choice in todo:
        by_engine.setdefault(choice.label, (choice, []))[1].append(scenario)
    rows = []
    for choice, scenarios in by_engine.values():
        if progress:
            print(f"simulated: {choice.label}: {len(scenarios)} scenario(s) under callgrind",
                  file=sys.stderr, flush=True)
        rows.extend(_run_engine(choice, scenarios, workdir, imports, profiles))
    return rows


PREFIX = "callgrind.out"


def count_engine(choice, scenarios, root: str, imports=()) -> tuple[list | None, float]:
    """Runs the valgrind child of one engine in the folder `root`, where its dumps land
    (`PREFIX`.N, one per measured call, under the call's label): (the child's outcome: per
    scenario its ops with their call labels, sizes and errors; None when the child failed,
    which is printed), the load average over the child's run."""
    job, result, log = (os.path.join(root, n) for n in ("job.json", "result.json",
                                                         "valgrind.log"))
    with open(job, "w", encoding="utf-8") as f:
        json.dump({"engine": {"label": choice.label, "name": choice.name,
                              "options": choice.options},
                   "scenarios": [s.to_dict() for s in scenarios],
                   "imports": [os.path.abspath(i) if os.path.exists(i) else i
                               for i in imports],
                   "workdir": os.path.join(root, "work"), "result": result}, f)
    cmd = [*valgrind_command(os.path.join(root, PREFIX), log), sys.executable, "-P", "-m",
           "lab.timing.sim_child", job]
    env = child_environment()
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)   # fixed stdio: same start
    load = (load + os.getloadavg()[0]) / 2        # the rows' load_avg: over the child
    if proc.returncode != 0 or not os.path.exists(result):
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        print(f"simulated: {choice.label} failed (exit {proc.returncode}): "
              + " | ".join(tail), file=sys.stderr)
        return None, load
    with open(result, encoding="utf-8") as f:
        return json.load(f), load


def _run_engine(choice, scenarios, workdir, imports, profiles=None) -> list[dict]:
    root = tempfile.mkdtemp(prefix="hashlab-simulated-", dir=workdir)
    try:
        outcome, load = count_engine(choice, scenarios, root, imports)
        if outcome is None:
            return []
        counts = read_dumps(root, PREFIX)
        if profiles is not None:
            profiles.extend(_profiles(choice.label, scenarios, outcome, root, PREFIX))
        by_name = {s.name: s for s in scenarios}
        rows = []
        for entry in outcome:
            if entry.get("error"):
                print(f"simulated: {choice.label} on {entry['scenario']}: {entry['error']}",
                      file=sys.stderr)
                continue
            scenario = by_name[entry["scenario"]]
            for op in entry["ops"]:
                rec, events = _with_costs(OpSamples(**op), counts)
                rec.load = [load]
                rows.append(perf_row(scenario, choice.label, rec, float("nan"), SIMULATED,
                                     TARGET, events))
        return rows
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dump_labels(root: str, prefix: str = PREFIX) -> dict[str, str]:
    """{call label: its dump file} (the label is in the header, before any cost line)."""
    paths = {}
    for path in dump_files(root, prefix):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(TRIGGER):
                    paths[line[len(TRIGGER):].strip()] = path
                    break
                if line.startswith("fn="):
                    break
    return paths


def _profiles(label, scenarios, outcome, root, prefix) -> list[dict]:
    """Each op's profile from its calls' dumps, keyed like its perf row."""
    from lab.explain.callgrind_out import read
    from lab.explain.profiles import from_dumps
    paths = dump_labels(root, prefix)
    threads = {s.name: s.threads for s in scenarios}
    out = []
    for entry in outcome:
        if entry.get("error"):
            continue
        for op in entry["ops"]:
            dumps = [read(paths[lab]) for lab in op["labels"] if lab in paths]
            if not dumps:
                continue
            out.append({"engine": label, "scenario": entry["scenario"], "op": op["op"],
                        "op_index": op["index"], "threads": threads[entry["scenario"]],
                        "measure": SIMULATED, **from_dumps(dumps)})
    return out


def _with_costs(rec: OpSamples, counts: dict) -> tuple[OpSamples, dict]:
    """rec with its engine and baseline entries replaced by costs, plus per-call counts
    ({"l1_misses": [...], and one list per COUNTERS name})."""
    events = {"l1_misses": [], **{name: [] for name in COUNTERS}}
    rec.engine, rec.baseline = [], []
    for label in rec.labels:
        ev = counts[label]
        rec.engine.append(cost(ev))
        base = counts.get(baseline_label(label))
        rec.baseline.append(cost(base) if base is not None else float("nan"))
        events["l1_misses"].append(l1_misses(ev))
        for name in COUNTERS:
            events[name].append(counter(ev, name))
    return rec, events
