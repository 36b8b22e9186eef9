"""Memory per op: the peak of the memory an engine call holds, the bytes it allocates, and how
far the process's resident set grew while it ran.

Measured in a pass of its own, after every timed or counted sample of a run (so the timings
and counts are exactly what they are without it): a fresh engine and tables, the scenario's
warm-up and one full cycle of its steps unmeasured, then each op of `max(steps, MIN_STEPS)`
more steps (cycling through the same inputs) called under a `MemoryMeter`; the median per
call leaves out the occasional call that maps a new arena for Python's small objects:

- **memray** (`memray.Tracker`, native allocators: malloc, calloc, realloc, the aligned
  variants and mmap, in every thread) records every allocation the call makes; from its
  capture file: `peak` = the high-water mark of the bytes allocated during the call and
  not yet freed (memray's `peak_memory`), `alloc` = the bytes of every allocation added up.
  Python's small-object allocator is not traced allocation by allocation (it appears as the
  arenas it maps);
- the **kernel's RSS counters**: the peak resident set (VmHWM in /proc/self/status, reset
  to the current RSS before the call by writing 5 to /proc/self/clear_refs) minus the RSS
  before the call: how much memory the machine had to find. It depends on what the
  allocator already had mapped, so it is reported, not gated.

The row of an op keeps the median per call of each (`mem_peak_bytes`, `mem_alloc_bytes`,
`mem_rss_bytes`) and every call's values (`mem_samples`); the gate compares the first two
(`lab.gate.memory`).
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from lab.scenarios.execute import ScenarioExecution, call_label, skipped_op_reason, wall_meter

TOOL = "memray"
MIN_STEPS = 5
FIELDS = ("peak", "alloc", "rss")
COLUMNS = {"peak": "mem_peak_bytes", "alloc": "mem_alloc_bytes", "rss": "mem_rss_bytes"}


def unavailable_reason() -> str | None:
    try:
        import memray  # noqa: F401
    except ImportError:
        return ("memray is not installed (the `profile` extra: pip install -c constraints.txt "
                "-e \".[profile]\")")
    return None


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _read_capture(path: str) -> tuple[int, int]:
    """(peak bytes, bytes allocated) of a memray capture file."""
    import memray
    reader = memray.FileReader(path)
    freeing = {memray.AllocatorType.FREE, memray.AllocatorType.MUNMAP,
               memray.AllocatorType.PYMALLOC_FREE}
    allocated = 0
    for record in reader.get_allocation_records():
        if memray.AllocatorType(record.allocator) not in freeing:
            allocated += record.size
    return int(reader.metadata.peak_memory), allocated


class MemoryMeter:
    """A meter (`lab.scenarios.execute`): `meter(fn, label)` -> (fn(), nan), recording
    {peak, alloc, rss} bytes under `label` in `records`."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.records: dict[str, dict] = {}

    def __call__(self, fn, label: str):
        import memray
        path = os.path.join(self.workdir, f"call{len(self.records)}.memray")
        rss_before = _status_kb("VmRSS")
        reset = _reset_peak_rss()
        try:
            with memray.Tracker(path, native_traces=False, follow_fork=False):
                out = fn()
            hwm = _status_kb("VmHWM")
            peak, allocated = _read_capture(path)
        finally:
            if os.path.exists(path):
                os.unlink(path)
        rss = (max(hwm - rss_before, 0) * 1024 if reset and hwm is not None
               and rss_before is not None else float("nan"))
        self.records[label] = {"peak": peak, "alloc": allocated, "rss": rss}
        return out, float("nan")


def measure_scenario(scenario, choice, workdir: str | None = None) -> dict[int, dict]:
    """{op index: {"op", "peak": [...], "alloc": [...], "rss": [...]}} of one engine on one
    scenario: a fresh engine, warmed up, then `max(steps, MIN_STEPS)` steps under a
    MemoryMeter."""
    root = tempfile.mkdtemp(prefix="hashlab-memory-", dir=workdir)
    try:
        engine = choice.make(scenario.threads)
        skip = frozenset(i for i, op in enumerate(scenario.ops)
                         if skipped_op_reason(engine, op))
        ex = ScenarioExecution(scenario, engine, os.path.join(root, "engine"), capture=False,
                               meter=wall_meter, cycle=scenario.steps)
        ex.setup()
        warm = scenario.warmup + scenario.steps
        for step in range(warm):
            for _ in ex.run(steps=1, first_step=step, skip=skip):
                pass
        meter = MemoryMeter(root)
        ex.meter = meter
        out: dict[int, dict] = {}
        for step in range(warm, warm + max(scenario.steps, MIN_STEPS)):
            for done in ex.run(steps=1, first_step=step, skip=skip):
                rec = meter.records[call_label(scenario.name, step, done.index, done.op)]
                entry = out.setdefault(done.index, {"op": done.op,
                                                    **{k: [] for k in FIELDS}})
                for k in FIELDS:
                    entry[k].append(rec[k])
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def summary(entry: dict) -> dict:
    """The row fields of one op's memory measurements."""
    out = {}
    for k in FIELDS:
        values = [v for v in entry[k] if v == v]
        out[COLUMNS[k]] = float(np.median(values)) if values else float("nan")
    out["mem_samples"] = {k: list(entry[k]) for k in FIELDS}
    return out


def add_memory(perf, todo, progress: bool = False, workdir: str | None = None):
    """`perf` (a DataFrame of perf rows) with the memory columns filled for every (scenario,
    engine choice) in `todo` that has rows; pairs that fail are reported and left empty."""
    import sys
    perf = perf.copy()
    for scenario, choice in todo:
        mine = (perf["engine"] == choice.label) & (perf["scenario"] == scenario.name)
        if not mine.any():
            continue
        if progress:
            print(f"memory: {choice.label} on {scenario.name}", file=sys.stderr, flush=True)
        try:
            measured = measure_scenario(scenario, choice, workdir)
        except Exception as exc:           # the timing already ran; report and go on
            print(f"memory: {choice.label} on {scenario.name} failed: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        for i in perf.index[mine]:
            entry = measured.get(int(perf.at[i, "op_index"]))
            if entry is None:
                continue
            for column, value in summary(entry).items():
                perf.at[i, column] = value
    return perf
