"""What the RPC hop costs: lookup and apply_gradients on native-cpu, on tf-native without a
cluster (ps=0) and sharded over 1, 2 and 4 ps tasks of the in-process cluster, interleaved
round by round so machine noise hits every variant alike. Prints per variant the median time
per call, its IQR, and the median of the per-round ratio to native-cpu.

    python -P -m engines.tfops.bench_rpc --rows 100000 --batch 10000 --rounds 30
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _variants(ps_list, threads):
    import engines
    out = [("native-cpu", engines.get("native-cpu", threads=threads))]
    for ps in ps_list:
        out.append((f"tf-native ps={ps}" if ps else "tf-native local",
                    engines.get("tf-native", threads=threads, ps=ps)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.tfops.bench_rpc")
    parser.add_argument("--rows", type=int, default=100_000, help="prefilled ids")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--ps", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import engines
    cfg = engines.table_config(dim=args.dim, optimizer="adagrad")
    rng = np.random.default_rng(0)
    prefill = np.arange(args.rows, dtype=np.int64)
    values = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    tables = []
    for name, eng in _variants(args.ps, args.threads):
        t = eng.create_table(cfg, learning_rates=(0.01,))
        t.assign(prefill, values)
        tables.append((name, t))
    ops = ("lookup", "apply_gradients")
    times = {(name, op): [] for name, _ in tables for op in ops}
    for r in range(args.rounds + 1):                      # round 0 warms up
        ids = rng.integers(0, 2 * args.rows, args.batch).astype(np.int64)
        grads = rng.standard_normal((args.batch, args.dim)).astype(np.float32)
        order = tables if r % 2 == 0 else tables[::-1]    # no variant always goes first
        for name, t in order:
            for op in ops:
                start = time.perf_counter()
                if op == "lookup":
                    t.lookup(ids)
                else:
                    t.apply_gradients(ids, grads, enable_dedup=True, req_time=r)
                if r:
                    times[(name, op)].append(time.perf_counter() - start)
    print(f"{args.rounds} rounds, batch {args.batch}, dim {args.dim}, {args.rows} prefilled "
          f"ids, threads {args.threads}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'variant':18} {'op':16} {'median ms':>10} {'IQR ms':>8} {'x native-cpu':>13}")
    for op in ops:
        base = np.array(times[("native-cpu", op)])
        for name, _ in tables:
            s = np.array(times[(name, op)])
            q1, med, q3 = np.percentile(s, [25, 50, 75])
            print(f"{name:18} {op:16} {med * 1e3:10.3f} {(q3 - q1) * 1e3:8.3f} "
                  f"{np.median(s / base):13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
