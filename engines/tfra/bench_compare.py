"""Lookup and Adagrad-apply throughput of native-cpu, tensorflow and tfra, side by side.

    python -m engines.tfra.bench_compare [--rows 100000] [--batch 16384] [--dim 32]

Every engine gets the same prefilled table and the same batches of ids drawn from it; the
table shows median ids/s over the repeats (wall clock around the public op). For tfra the
worker-side median is shown too: the difference is the pipe (IPC) cost. Engines that cannot
run here are listed with the reason. Quote ratios from one run, not absolute numbers.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

import engines

ENGINES = ("native-cpu", "tensorflow", "tfra")


def _time(fn, repeats: int) -> list[float]:
    fn()                                            # warm-up: tracing, first allocation
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench_engine(name: str, rows: int, batch: int, dim: int, repeats: int,
                 seed: int = 0) -> list[dict]:
    eng = engines.get(name)
    rng = np.random.default_rng(seed)
    keys = rng.permutation(np.arange(rows, dtype=np.int64) * 7919)
    table = eng.create_table(engines.table_config(dim=dim, optimizer="adagrad"),
                             learning_rates=(0.01,))
    table.assign(keys, rng.standard_normal((rows, dim)).astype(np.float32))
    batch_ids = keys[rng.integers(0, rows, batch)]
    grads = rng.standard_normal((batch, dim)).astype(np.float32)
    results = []
    for op, fn in (("lookup", lambda: table.lookup(batch_ids)),
                   ("adagrad_apply", lambda: table.apply_gradients(batch_ids, grads,
                                                                   enable_dedup=True))):
        worker = []

        def timed():
            fn()
            if hasattr(table, "last_worker_seconds"):
                worker.append(table.last_worker_seconds)
        wall = statistics.median(_time(timed, repeats))
        row = {"engine": name, "op": op, "ids_per_s": batch / wall, "median_ms": wall * 1e3,
               "worker_ids_per_s": (batch / statistics.median(worker[1:]) if worker
                                    else float("nan"))}
        results.append(row)
    return results


def compare(rows: int = 100_000, batch: int = 16_384, dim: int = 32, repeats: int = 7,
            names=ENGINES) -> tuple[pd.DataFrame, dict[str, str]]:
    """(results table, {engine: why it was skipped})."""
    out, skipped = [], {}
    for name in names:
        try:
            out += bench_engine(name, rows, batch, dim, repeats)
        except engines.EngineUnavailable as exc:
            skipped[name] = exc.reason
    return pd.DataFrame(out), skipped


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=16_384)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    df, skipped = compare(args.rows, args.batch, args.dim, args.repeats)
    print(f"table rows={args.rows} batch={args.batch} dim={args.dim}, median of "
          f"{args.repeats}")
    if len(df):
        print(df.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    for name, why in skipped.items():
        print(f"{name}: skipped ({why})")


if __name__ == "__main__":
    main()
