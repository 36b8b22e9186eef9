"""Our engine beside its peers at Monolith's shapes: lookup, Adagrad apply and insert, per
thread count, each as time per call and as its ratio to a dense numpy take of the same rows.

    python -m lab.peer_compare [--engines native-cpu tfra torchrec] [--threads 1 2]
                               [--repeats 9] [--quick] [--json FILE] [--strict]

The cases are Monolith's own benchmarks (docs/perf_anchors.md §5), all at dim 32:
- `lookup`: 10,000 ids looked up in a table holding exactly them (hash_table_ops_benchmark
  test_lookup; the catalog's monolith_lookup);
- `adagrad_apply`: Adagrad (lr 0.001, dedup) on 1,000,000 ids `x // 4` (250,000 distinct, each
  4 times) in a table already holding them (the *_optimize benchmarks; monolith_optimize);
- `insert`: assign_add of ones to 10,000 ids the table has never seen, one batch after another
  into the same table from empty (hash_table_benchmark's insert, growth included).

Measurement, as the lab's timing runner does it (docs/measurement.md): every engine call is
followed at once by its baseline, a dense `take` of as many rows from a float32 array of the
table's shape (lab.timing.baseline), and the (engine, thread count) configurations are
interleaved round by round, so machine load hits all of them alike. Per configuration and op
the table gives the median time per call with its interquartile range, ids/s from the median,
the median of the paired engine/take ratios with its range, and for the out-of-process peers
the median time inside the worker (the rest is the pipe). Engines that cannot run here are
listed with the reason. The machine's load average is printed before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Callable

import numpy as np

import engines
from lab.timing.baseline import DENSE_TAKE, Baselines
from lab.timing.machine import machine_info

ENGINES = ("native-cpu", "tfra", "torchrec")
DIM = 32
# (lookup batch and table, apply batch, distinct ids in it, insert batch)
SHAPES = {"monolith": (10_000, 1_000_000, 250_000, 10_000),
          "quick": (2_000, 20_000, 5_000, 2_000)}


class Case:
    """One op on one prefilled table of one engine configuration."""

    def __init__(self, op: str, call: Callable[[], None], n_ids: int, baseline: Callable,
                 table):
        self.op, self.call, self.n_ids, self.baseline, self.table = \
            op, call, n_ids, baseline, table
        self.seconds: list[float] = []
        self.ratios: list[float] = []
        self.worker: list[float] = []

    def sample(self) -> None:
        start = time.perf_counter()
        self.call()
        took = time.perf_counter() - start
        worker = getattr(self.table, "last_worker_seconds", None)
        start = time.perf_counter()
        self.baseline()
        base = time.perf_counter() - start
        self.seconds.append(took)
        self.ratios.append(took / base)
        if worker is not None:
            self.worker.append(worker)


def build_cases(eng, shape: str, baselines: Baselines, seed: int = 0) -> list[Case]:
    """The three cases on fresh tables of `eng` (prefills untimed)."""
    lookup_n, apply_n, apply_distinct, insert_n = SHAPES[shape]
    rng = np.random.default_rng(seed)
    sgd = engines.table_config(dim=DIM, optimizer="sgd")
    cases = []

    t = eng.create_table(sgd)
    ids = np.arange(lookup_n, dtype=np.int64)
    t.assign_add(ids, np.ones((lookup_n, DIM), np.float32))
    cases.append(Case("lookup", lambda t=t, ids=ids: t.lookup(ids), lookup_n,
                      baselines.prepare(DENSE_TAKE, lookup_n, DIM, lookup_n, 0), t))

    t = eng.create_table(engines.table_config(dim=DIM, optimizer="adagrad"),
                         learning_rates=(0.001,))
    ids = np.arange(apply_n, dtype=np.int64) // (apply_n // apply_distinct)
    grads = rng.standard_normal((apply_n, DIM)).astype(np.float32)
    t.assign(np.unique(ids), np.zeros((apply_distinct, DIM), np.float32))
    cases.append(Case("adagrad_apply",
                      lambda t=t, ids=ids, g=grads: t.apply_gradients(ids, g,
                                                                      enable_dedup=True),
                      apply_n, baselines.prepare(DENSE_TAKE, apply_distinct, DIM, apply_n, 0),
                      t))

    t = eng.create_table(sgd)
    ones = np.ones((insert_n, DIM), np.float32)
    batches = iter(range(1, 1 << 40))

    def insert(t=t, ones=ones):
        base = next(batches) * insert_n * 7919        # never seen before
        t.assign_add(np.arange(base, base + insert_n, dtype=np.int64), ones)
    cases.append(Case("insert", insert, insert_n,
                      baselines.prepare(DENSE_TAKE, insert_n, DIM, insert_n, 0), t))
    return cases


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(med), float(q3)


def compare(names=ENGINES, threads=(1, 2), repeats: int = 9, shape: str = "monolith",
            warmup: int = 1, workdir: str | None = None) -> tuple[list[dict], dict[str, str]]:
    """(one row per engine, thread count and op; {engine: why it was skipped})."""
    workdir = workdir or tempfile.mkdtemp(prefix="peer-compare-")
    baselines = Baselines(workdir)
    configs, skipped = [], {}
    for name in names:
        try:
            info = engines.info(name)
            if not info.available:
                raise engines.EngineUnavailable(info.reason)
            declares = info.capabilities
            counts = threads if declares.threads else (None,)
            for n in counts:
                eng = engines.get(name, threads=n) if n is not None else engines.get(name)
                configs.append((name, n, build_cases(eng, shape, baselines)))
        except engines.EngineUnavailable as exc:
            skipped[name] = exc.reason
    for _ in range(warmup):
        for _, _, cases in configs:
            for case in cases:
                case.call()
    for _ in range(repeats):                      # round r of every configuration, interleaved
        for _, _, cases in configs:
            for case in cases:
                case.sample()
    rows = []
    for name, n, cases in configs:
        for case in cases:
            q1, med, q3 = _quartiles(case.seconds)
            r1, rmed, r3 = _quartiles(case.ratios)
            rows.append({
                "engine": name, "threads": n, "op": case.op, "n_ids": case.n_ids,
                "repeats": len(case.seconds), "median_ms": med * 1e3,
                "q1_ms": q1 * 1e3, "q3_ms": q3 * 1e3, "ids_per_s": case.n_ids / med,
                "ratio_to_take": rmed, "ratio_q1": r1, "ratio_q3": r3,
                "worker_median_ms": (statistics.median(case.worker) * 1e3 if case.worker
                                     else None)})
    return rows, skipped


def format_rows(rows: list[dict]) -> str:
    head = (f"{'engine':11s} {'threads':>7s} {'op':14s} {'ids':>9s} {'ms/call (IQR)':>24s} "
            f"{'ids/s':>11s} {'x dense take (IQR)':>22s} {'in worker ms':>12s}")
    lines = [head]
    for r in rows:
        worker = f"{r['worker_median_ms']:.2f}" if r["worker_median_ms"] is not None else "-"
        threads = "own" if r["threads"] is None else str(r["threads"])
        lines.append(
            f"{r['engine']:11s} {threads:>7s} {r['op']:14s} {r['n_ids']:>9,d} "
            f"{r['median_ms']:>9.2f} ({r['q1_ms']:.2f}-{r['q3_ms']:.2f}) "
            f"{r['ids_per_s']:>11.3g} {r['ratio_to_take']:>8.1f} "
            f"({r['ratio_q1']:.1f}-{r['ratio_q3']:.1f}) {worker:>12s}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2],
                    help="thread counts for engines that declare threads (others run once, "
                         "with their own pools)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true",
                    help="small batches and 3 repeats: a smoke run, not figures to quote")
    ap.add_argument("--json", help="also write the rows, machine and load here")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when one of the engines cannot run here (CI)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or any(t < 1 for t in args.threads):
        ap.error("--repeats and --threads must be >= 1")
    shape = "quick" if args.quick else "monolith"
    repeats = 3 if args.quick else args.repeats
    load_before = os.getloadavg()
    start = time.monotonic()
    rows, skipped = compare(args.engines, tuple(args.threads), repeats, shape)
    load_after = os.getloadavg()
    machine = machine_info()
    print(f"shape {shape}, dim {DIM}, {repeats} interleaved rounds; "
          f"{machine['processor']}, {machine['cpu_count_logical']} logical CPUs; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{time.monotonic() - start:.0f} s")
    if rows:
        print(format_rows(rows))
    for name, why in skipped.items():
        print(f"{name}: skipped ({why})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"shape": shape, "repeats": repeats, "machine": machine,
                       "load_before": load_before, "load_after": load_after,
                       "rows": rows, "skipped": skipped}, f, indent=2)
    return 1 if args.strict and skipped else 0


if __name__ == "__main__":
    raise SystemExit(main())
