"""Quick throughput check of the native CPU engine, as ratios inside one run (medians of 5).

    python -m engines.native.bench_quick [--entries 4000000] [--batch 1000000] [--dir /tmp]

Baselines: a dense numpy `take` of the same number of rows from a [entries, 32] f32 array, the
numpy reference engine, and ndarray.tofile / np.fromfile of the same payload bytes.
"""
from __future__ import annotations

import argparse
import gc
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


# Run in a fresh interpreter: RSS growth while a 4M-entry Adagrad table is built from ids that
# are generated before the baseline reading.
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


def median_time(fn, runs=5, setup=None):
    times = []
    for _ in range(runs):
        state = setup() if setup else None
        t0 = time.perf_counter()
        fn(state) if setup else fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def unique_ids(rng, n):
    ids = np.unique(rng.integers(-(1 << 62), 1 << 62, int(n * 1.01) + 16, dtype=np.int64))
    rng.shuffle(ids)
    return ids[:n]


def line(name, value, target=None, unit="x"):
    mark = "" if target is None else ("  OK" if value >= target else "  MISS")
    tgt = "" if target is None else f"  (target >= {target}{unit})"
    print(f"{name:<58} {value:8.3f}{unit}{tgt}{mark}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=4_000_000)
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--dir", default=None, help="where save/restore writes (default: tmp)")
    ap.add_argument("--skip-numpy-engine", action="store_true")
    args = ap.parse_args(argv)
    n, b = args.entries, args.batch
    rng = np.random.default_rng(0)
    keys = unique_ids(rng, n)
    dense = rng.random((n, DIM), dtype=np.float32)
    rows_idx = rng.integers(0, n, b)
    batch = keys[rows_idx]
    print(f"entries={n} batch={b} dim={DIM} cpus={os.cpu_count()}")

    t_take = median_time(lambda: dense.take(rows_idx, axis=0))
    print(f"dense take: {b / t_take / 1e6:.1f} M rows/s")

    # ---- lookup, 1 and 2 threads ----
    e1 = engines.get("native-cpu", threads=1)
    e2 = engines.get("native-cpu", threads=2)
    cfg = engines.table_config(dim=DIM, optimizer="sgd")
    t1 = e1.create_table(cfg)
    t1.assign(keys, dense)
    t2 = e2.create_table(cfg)
    t2.assign(keys, dense)
    assert np.array_equal(t1.lookup(batch), dense[rows_idx])
    lk1 = median_time(lambda: t1.lookup(batch))
    lk2 = median_time(lambda: t2.lookup(batch))
    print(f"native lookup: {b / lk1 / 1e6:.1f} M ids/s (1 thread), {b / lk2 / 1e6:.1f} (2)")
    line("lookup 1 thread / dense take", t_take / lk1, 0.5)
    line("lookup 2 threads / 1 thread", lk1 / lk2, 1.6)
    del t1, t2
    gc.collect()

    # ---- insert: assign_add of n new ids into an empty table ----
    perm = rng.permutation(n)
    t_take_n = median_time(lambda: dense.take(perm, axis=0), runs=3)
    for e, label in ((e1, "1 thread"), (e2, "2 threads")):
        ins = median_time(lambda t: t.assign_add(keys, dense),
                          setup=lambda: e.create_table(cfg))
        print(f"native insert ({label}): {n / ins / 1e6:.2f} M ids/s")
        line(f"insert {label} / dense take of {n} rows", t_take_n / ins, 0.25)
    gc.collect()

    # ---- Adagrad apply_gradients, 1M ids each 4 times, dedup ----
    acfg = engines.table_config(dim=DIM, optimizer="adagrad")
    uniq = keys[rng.choice(n, b, replace=False)]
    grad_ids = np.repeat(uniq, 4)
    rng.shuffle(grad_ids)
    grads = rng.standard_normal((len(grad_ids), DIM), dtype=np.float32)
    results = {}
    for e, label in ((e1, "1 thread"), (e2, "2 threads")):
        ta = e.create_table(acfg)
        ta.assign(keys, dense)
        ag = median_time(lambda: ta.apply_gradients(grad_ids, grads, enable_dedup=True))
        results[label] = ag
        print(f"native adagrad dedup ({label}): {len(grad_ids) / ag / 1e6:.2f} M ids/s")
        line(f"adagrad dedup {label}, ids/s / dense-take rows/s",
             (len(grad_ids) / ag) / (b / t_take), 0.25)
        del ta
        gc.collect()
    if not args.skip_numpy_engine:
        npe = engines.get("numpy")
        tn = npe.create_table(acfg)
        tn.assign(uniq, dense[:b])
        nt = median_time(lambda: tn.apply_gradients(grad_ids, grads, enable_dedup=True), runs=3)
        print(f"numpy engine adagrad dedup: {len(grad_ids) / nt / 1e6:.3f} M ids/s "
              f"(table holds only the {b} updated ids)")
        line("adagrad dedup native 1 thread / numpy engine", nt / results["1 thread"], 20)
        del tn
        gc.collect()

    # ---- memory per entry: 4M Adagrad dim-32 entries, measured in a fresh process ----
    payload = 8 + 4 + 4 * (DIM + DIM)
    for threads in (1, 2):
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(n), str(threads)],
                             check=True, capture_output=True, text=True).stdout.split()
        resident, held = int(out[0]), int(out[1])
        print(f"adagrad dim 32 ({threads} thread(s)): resident {resident / n:.1f} B/entry, held "
              f"{held / n:.1f} B/entry, payload {payload} B/entry")
        line(f"resident bytes per entry / payload, {threads} thread(s) (want <= 1.5)",
             resident / n / payload)
    tm = e2.create_table(acfg)
    tm.assign(keys, dense)

    # ---- save / restore vs tofile / fromfile ----
    d = tempfile.mkdtemp(dir=args.dir, prefix="hashlab-bench-")
    try:
        base = os.path.join(d, "table")
        payload_arr = np.empty(n * payload // 4, np.float32)
        payload_arr[:] = 1.0
        raw = os.path.join(d, "raw.bin")

        def tofile():
            with open(raw, "wb") as f:
                payload_arr.tofile(f)
                f.flush()
                os.fsync(f.fileno())
        t_to = median_time(tofile)
        t_from = median_time(lambda: np.fromfile(raw, np.float32))
        t_save = median_time(lambda: tm.save(base))
        size = sum(os.path.getsize(p) for p in tm.save(base))
        tr = e2.create_table(acfg)
        t_rest = median_time(lambda: tr.restore(base))
        assert tr.size() == n
        mb = n * payload / 1e6
        print(f"save {mb / t_save:.0f} MB/s payload ({size / 1e6:.0f} MB on disk), tofile+fsync "
              f"{mb / t_to:.0f} MB/s; restore {mb / t_rest:.0f} MB/s, fromfile "
              f"{mb / t_from:.0f} MB/s")
        line("save (2 threads) / tofile+fsync, payload bytes/s", t_to / t_save, 0.3)
        line("restore (2 threads) / fromfile, payload bytes/s", t_from / t_rest, 0.3)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
