"""The native CPU engine's figures, each a same-run ratio against its baseline.

    python -P -m engines.native.bench_quick [--entries 4000000] [--batch 1000000] [--pairs 7]
                                            [--busy] [--dir DIR] [--json OUT]

Every figure alternates the engine op with its baseline (engine, baseline, engine, baseline,
...), so both see the same machine at the same moments; each pair gives one ratio, and the
figure is the median ratio with its min..max over the pairs. Ratios are oriented so that
higher is better for the engine, except latency (engine time / baseline time, lower is
better). `--busy` starts a second process that keeps one core busy for the whole run, to check
that conclusions survive a loaded machine.

Baselines: a dense numpy `take` of the same number of rows from a dense float32 [entries, dim]
array (lookup, insert, updates), the numpy reference engine (updates), writing + fsyncing the
checkpoint's own bytes (save) and reading them back (restore).
"""
from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import engines

DIM = 32

# Run in a fresh interpreter: RSS growth while a table of n Adagrad entries is built from ids
# generated before the baseline reading.
_MEMORY_PROBE = """
import os, sys, numpy as np, engines
n, threads = int(sys.argv[1]), int(sys.argv[2])
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
rng = np.random.default_rng(0)
keys = np.unique(rng.integers(-(1 << 62), 1 << 62, n + n // 50))[:n]
vals = np.ones((1 << 16, 32), np.float32)
t = engines.get('native-cpu', threads=threads).create_table(
    engines.table_config(dim=32, optimizer='adagrad'))
before = rss()
for s in range(0, n, 1 << 16):
    k = keys[s:s + (1 << 16)]
    t.assign(k, vals[:len(k)])
print(rss() - before, t.memory_bytes())
"""


def _timed(fn, setup=None) -> float:
    state = setup() if setup else None
    t0 = time.perf_counter()
    fn(state) if setup else fn()
    return time.perf_counter() - t0


def paired(engine_fn, base_fn, pairs, engine_setup=None, base_setup=None, warmup=1):
    """Per-pair (engine seconds, baseline seconds), the two interleaved."""
    for _ in range(warmup):
        _timed(engine_fn, engine_setup)
        _timed(base_fn, base_setup)
    out = []
    for k in range(pairs):
        if k % 2:   # alternate which side goes first
            b = _timed(base_fn, base_setup)
            e = _timed(engine_fn, engine_setup)
        else:
            e = _timed(engine_fn, engine_setup)
            b = _timed(base_fn, base_setup)
        out.append((e, b))
    return out


class Report:
    def __init__(self):
        self.rows = []

    def figure(self, name, samples, target=None, lower_is_better=False, unit="x", note=""):
        """samples: (engine s, baseline s) pairs; the ratio is baseline/engine (throughput
        ratio) or engine/baseline when lower_is_better (latency ratio)."""
        ratios = [(e / b) if lower_is_better else (b / e) for e, b in samples]
        med = statistics.median(ratios)
        ok = None
        if target is not None:
            ok = med <= target if lower_is_better else med >= target
        self.rows.append({"figure": name, "median": med, "min": min(ratios), "max": max(ratios),
                          "pairs": len(ratios), "target": target,
                          "direction": "lower" if lower_is_better else "higher",
                          "met": ok, "note": note})
        tgt = "" if target is None else f"  target {'<=' if lower_is_better else '>='} {target}"
        mark = "" if ok is None else ("  OK" if ok else "  MISS")
        print(f"{name:<62} {med:7.3f}{unit} [{min(ratios):.3f}..{max(ratios):.3f}]{tgt}{mark}"
              f"{'  ' + note if note else ''}", flush=True)
        return med


def unique_ids(rng, n):
    ids = np.unique(rng.integers(-(1 << 62), 1 << 62, int(n * 1.01) + 16, dtype=np.int64))
    rng.shuffle(ids)
    return ids[:n]


def _spin(stop_at):
    x = 0
    while time.time() < stop_at:
        x += 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=4_000_000)
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--pairs", type=int, default=7, help="interleaved pairs per figure (>= 5)")
    ap.add_argument("--dir", default=None, help="where save/restore write (default: tmp)")
    ap.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    ap.add_argument("--skip-numpy-engine", action="store_true")
    ap.add_argument("--only", default="", help="comma list: lookup,threads,latency,insert,"
                                               "adagrad,memory,checkpoint")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    want = (lambda k: not only or k in only)
    n, b, P = args.entries, args.batch, args.pairs
    busy = None
    if args.busy:
        busy = multiprocessing.get_context("spawn").Process(
            target=_spin, args=(time.time() + 24 * 3600,), daemon=True)
        busy.start()
    rep = Report()
    rng = np.random.default_rng(0)
    keys = unique_ids(rng, n)
    dense = rng.random((n, DIM), dtype=np.float32)
    rows_idx = rng.integers(0, n, b)
    batch = keys[rows_idx]
    load0 = os.getloadavg()[0]
    print(f"entries={n} batch={b} dim={DIM} cpus={os.cpu_count()} pairs={P} busy={args.busy} "
          f"load={load0:.2f}", flush=True)
    take = lambda: dense.take(rows_idx, axis=0)  # noqa: E731
    e1 = engines.get("native-cpu", threads=1)
    e2 = engines.get("native-cpu", threads=2)
    cfg = engines.table_config(dim=DIM, optimizer="sgd")

    if want("lookup") or want("threads") or want("latency"):
        t1 = e1.create_table(cfg)
        t1.assign(keys, dense)
        t2 = e2.create_table(cfg)
        t2.assign(keys, dense)
        assert np.array_equal(t1.lookup(batch), dense[rows_idx])
        if want("lookup"):
            rep.figure(f"lookup 1 thread vs dense take ({n} x {DIM}, batch {b})",
                       paired(lambda: t1.lookup(batch), take, P), 0.9)
        if want("threads"):
            for m in (256, 1_000, 10_000, 100_000, b):
                ids_m = batch[:m]
                # About a million ids per sample: one call of a small batch takes microseconds,
                # below what a timer and the scheduler let one sample resolve.
                calls = max(1, 1_000_000 // m)
                rep.figure(f"lookup 2 threads vs 1 thread, batch {m} ({calls} calls/sample)",
                           paired(lambda: [t2.lookup(ids_m) for _ in range(calls)],
                                  lambda: [t1.lookup(ids_m) for _ in range(calls)], P * 3),
                           0.95 if args.busy else (1.7 if m >= 100_000 else 0.95))
        if want("latency"):
            small, small_idx = batch[:256], rows_idx[:256]
            reps = 200
            rep.figure("lookup latency, 256 ids vs np.take of 256 rows (lower is better)",
                       paired(lambda: [t1.lookup(small) for _ in range(reps)],
                              lambda: [dense.take(small_idx, axis=0) for _ in range(reps)], P),
                       1.5, lower_is_better=True)
        del t1, t2
        gc.collect()

    if want("insert"):
        fresh = unique_ids(np.random.default_rng(1), b)
        perm = rng.integers(0, n, b)
        for e, label in ((e1, "1 thread"), (e2, "2 threads")):
            rep.figure(f"insert {b} new ids ({label}) vs dense take of {b} rows",
                       paired(lambda t: t.assign_add(fresh, dense[:b]),
                              lambda: dense.take(perm, axis=0), P,
                              engine_setup=lambda: e.create_table(cfg)), 0.5)
        gc.collect()

    if want("adagrad"):
        acfg = engines.table_config(dim=DIM, optimizer="adagrad")
        uniq = keys[rng.choice(n, b // 4, replace=False)]
        grad_ids = np.repeat(uniq, 4)          # Monolith's x // 4 shape: each id 4 times
        rng.shuffle(grad_ids)
        grads = rng.standard_normal((len(grad_ids), DIM), dtype=np.float32)
        take_g = rng.integers(0, n, len(grad_ids))
        ta = e1.create_table(acfg)
        ta.assign(keys, dense)
        rep.figure(f"adagrad dedup apply, {len(grad_ids)} ids (x4), 1 thread, vs dense take",
                   paired(lambda: ta.apply_gradients(grad_ids, grads, enable_dedup=True),
                          lambda: dense.take(take_g, axis=0), P), 0.5)
        if not args.skip_numpy_engine:
            tn = engines.get("numpy").create_table(acfg)
            tn.assign(uniq, dense[:len(uniq)])
            rep.figure("adagrad dedup apply, native 1 thread vs numpy engine",
                       paired(lambda: ta.apply_gradients(grad_ids, grads, enable_dedup=True),
                              lambda: tn.apply_gradients(grad_ids, grads, enable_dedup=True),
                              max(P // 2, 5)), 20)
            del tn
        del ta
        gc.collect()

    if want("memory"):
        payload = 8 + 4 + 4 * (DIM + DIM)
        for threads in (1, 2):
            out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(n), str(threads)],
                                 check=True, capture_output=True, text=True).stdout.split()
            resident = int(out[0])
            ratio = resident / n / payload
            rep.rows.append({"figure": f"resident bytes / payload, adagrad dim 32, {threads} "
                                       f"thread(s)", "median": ratio, "min": ratio,
                             "max": ratio, "pairs": 1, "target": 1.1, "direction": "lower",
                             "met": ratio <= 1.1, "note": ""})
            print(f"{'resident bytes / payload, adagrad dim 32, ' + str(threads) + ' thread(s)':<62}"
                  f" {ratio:7.3f}x  target <= 1.1  {'OK' if ratio <= 1.1 else 'MISS'}",
                  flush=True)

    if want("checkpoint"):
        acfg = engines.table_config(dim=DIM, optimizer="adagrad")
        d = tempfile.mkdtemp(dir=args.dir, prefix="hashlab-bench-")
        try:
            for e, label in ((e1, "1 thread"), (e2, "2 threads")):
                tm = e.create_table(acfg)
                tm.assign(keys, dense)
                base = os.path.join(d, "table")
                paths = tm.save(base)
                blob = b"".join(open(p, "rb").read() for p in paths)
                raw = os.path.join(d, "raw.bin")

                def write_fsync():
                    with open(raw, "wb") as f:
                        f.write(blob)
                        f.flush()
                        os.fsync(f.fileno())

                def read_back():
                    for p in paths:
                        with open(p, "rb") as f:
                            f.read()

                rep.figure(f"save ({label}) vs write+fsync of its {len(blob) >> 20} MiB",
                           paired(lambda: tm.save(base), write_fsync, P), 0.6)
                tr = e.create_table(acfg)
                rep.figure(f"restore ({label}) vs reading the same files",
                           paired(lambda: tr.restore(base), read_back, P), 0.5)
                assert tr.size() == n
                del tm, tr
                gc.collect()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    load1 = os.getloadavg()[0]
    print(f"load average {load0:.2f} at start, {load1:.2f} at end", flush=True)
    if busy is not None:
        busy.terminate()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"entries": n, "batch": b, "dim": DIM, "pairs": P, "busy": args.busy,
                       "cpus": os.cpu_count(), "load_start": load0, "load_end": load1,
                       "figures": rep.rows}, f, indent=1)


if __name__ == "__main__":
    main()
