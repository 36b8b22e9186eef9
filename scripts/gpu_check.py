"""GPU benchmark of native-gpu (run by scripts/gpu_check.sh on the H200 machine).

For each table size (entries) and dim: fill an Adagrad table with N distinct pseudo-random ids,
then time, on batches of B unique uniform ids (device arrays via CuPy):
  lookup      t.lookup(ids, out=buf)                vs a plain cupy.take of the same rows
                                                    from a dense [N, dim] array (same run)
  insert      t.assign_add(new ids, values)         (ids not in the table)
  apply       t.apply_gradients(ids, grads, enable_dedup=True)
and the numpy in/out forms of lookup and apply (host copies included). Medians of several reps,
timed with CUDA events on the default stream (the engine's ops synchronize before returning).
Prints a table and writes JSON to $OUT/gpu_check.json (else ./gpu_check.json).
Targets (figures, not assertions): lookup dim 32 >= 4e9/s and >= 0.5x the gather; apply
(Adagrad, dedup) dim 32 >= 1e9/s; insert >= 1.5e9/s.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

import numpy as np

TARGETS = {("lookup", 32): 4e9, ("apply", 32): 1e9, ("insert", 32): 1.5e9}


def mix64(cp, x):
    """splitmix64 finaliser on a uint64 CuPy array: a bijection, so ids are distinct."""
    x = x.astype(cp.uint64)
    x = (x ^ (x >> cp.uint64(30))) * cp.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> cp.uint64(27))) * cp.uint64(0x94D049BB133111EB)
    return (x ^ (x >> cp.uint64(31))).view(cp.int64)


def time_device(cp, fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(reps):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(times), times


def time_host(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def table_bytes(n, dim, cap_rows):
    """Device bytes of an Adagrad table: rows (emb + state padded, ts, id) + slots (16 B,
    load factor <= 0.5, power of two)."""
    de = (dim + 3) // 4 * 4
    rows = n * (2 * de + 3) * 4
    slots = 16
    cap = 16
    while cap < 2 * cap_rows:
        cap *= 2
    return rows + cap * slots, cap


def bench_one(cp, engines, n, dim, batch, reps, insert_reps, log):
    free, _total = cp.cuda.runtime.memGetInfo()
    extra = insert_reps * batch
    need_table, cap = table_bytes(n + extra, dim, n + extra)
    dense = n * dim * 4
    batches = batch * dim * 4 * 8 + n * 8
    need = need_table + dense + batches
    if need > 0.92 * free:
        return {"entries": n, "dim": dim, "skipped":
                f"needs ~{need / 2**30:.1f} GiB (table {need_table / 2**30:.1f}, dense baseline "
                f"{dense / 2**30:.1f}), {free / 2**30:.1f} GiB free"}
    eng = engines.get("native-gpu")
    cfg = engines.table_config(dim=dim, optimizer="adagrad", initializer="random_uniform",
                          minval=-0.01, maxval=0.01, initial_capacity=n + extra)
    t = eng.create_table(cfg, learning_rates=(0.01,))
    all_ids = mix64(cp, cp.arange(n, dtype=cp.uint64))
    chunk = 1 << 24
    vals = cp.random.standard_normal((min(chunk, n), dim), dtype=cp.float32)
    t0 = time.perf_counter()
    for s in range(0, n, chunk):
        part = all_ids[s:s + chunk]
        t.assign_add(part, vals[:len(part)])
    fill_s = time.perf_counter() - t0
    assert t.size() == n, (t.size(), n)
    log(f"  filled {n:,} x dim {dim} in {fill_s:.2f} s ({n / fill_s / 1e9:.2f} G ids/s, "
        f"{t.memory_bytes() / 2**30:.1f} GiB, load factor {n / cap:.2f})")

    cp.random.seed(12345)
    idx = cp.unique(cp.random.randint(0, n, int(batch * 1.05), dtype=cp.int64))
    idx = idx[cp.random.permutation(len(idx))][:batch]  # unique, in random order
    ids = all_ids[idx]
    b = int(len(ids))
    out = cp.empty((b, dim), dtype=cp.float32)
    res = {"entries": n, "dim": dim, "batch": b, "fill_s": fill_s, "load_factor": n / cap,
           "memory_gib": t.memory_bytes() / 2**30}

    sec, _ = time_device(cp, lambda: t.lookup(ids, out=out), reps)
    res["lookup"] = {"median_ms": sec * 1e3, "ids_per_s": b / sec}
    check = t.lookup(ids[:1000])
    assert bool(cp.isfinite(check).all()) and bool((cp.abs(check) > 0).any())

    dense_rows = cp.random.standard_normal((n, dim), dtype=cp.float32)
    gout = cp.empty((b, dim), dtype=cp.float32)
    gsec, _ = time_device(cp, lambda: cp.take(dense_rows, idx[:b], axis=0, out=gout), reps)
    res["gather"] = {"median_ms": gsec * 1e3, "rows_per_s": b / gsec,
                     "gbytes_per_s": 2 * b * dim * 4 / gsec / 1e9}
    res["lookup"]["vs_gather"] = gsec / sec
    del dense_rows, gout
    cp.get_default_memory_pool().free_all_blocks()

    grads = cp.random.standard_normal((b, dim), dtype=cp.float32)
    sec, _ = time_device(cp, lambda: t.apply_gradients(ids, grads, enable_dedup=True), reps)
    res["apply"] = {"median_ms": sec * 1e3, "ids_per_s": b / sec}

    new_vals = cp.random.standard_normal((b, dim), dtype=cp.float32)
    fresh = [mix64(cp, cp.arange(n + k * b, n + (k + 1) * b, dtype=cp.uint64))
             for k in range(insert_reps + 1)]
    it = iter(fresh)
    before = t.size()
    sec, _ = time_device(cp, lambda: t.assign_add(next(it), new_vals), insert_reps, warmup=1)
    assert t.size() == before + (insert_reps + 1) * b
    res["insert"] = {"median_ms": sec * 1e3, "ids_per_s": b / sec}

    h_ids = cp.asnumpy(ids)
    h_grads = cp.asnumpy(grads)
    hsec, _ = time_host(lambda: t.lookup(h_ids), max(3, reps // 4))
    res["lookup_numpy"] = {"median_ms": hsec * 1e3, "ids_per_s": b / hsec}
    hsec, _ = time_host(lambda: t.apply_gradients(h_ids, h_grads, enable_dedup=True),
                        max(3, reps // 4))
    res["apply_numpy"] = {"median_ms": hsec * 1e3, "ids_per_s": b / hsec}

    for op in ("lookup", "apply", "insert"):
        target = TARGETS.get((op, dim))
        if target:
            res[op]["target_ids_per_s"] = target
    del t, all_ids, vals, ids, out, grads, new_vals, fresh
    gc.collect()
    cp.get_default_memory_pool().free_all_blocks()
    return res


def print_table(results, log):
    log("")
    log(f"{'entries':>11} {'dim':>4} {'op':<13} {'median ms':>10} {'G ids/s':>9} {'note'}")
    for r in results:
        if "skipped" in r:
            log(f"{r['entries']:>11,} {r['dim']:>4} {'(skipped)':<13} {'':>10} {'':>9} "
                f"{r['skipped']}")
            continue
        if "error" in r:
            log(f"{r['entries']:>11,} {r['dim']:>4} {'(error)':<13} {'':>10} {'':>9} "
                f"{r['error']}")
            continue
        for op in ("lookup", "gather", "insert", "apply", "lookup_numpy", "apply_numpy"):
            m = r[op]
            rate = m.get("ids_per_s", m.get("rows_per_s"))
            note = []
            if op == "lookup":
                note.append(f"{m['vs_gather']:.2f}x gather")
            if op == "gather":
                note.append(f"{m['gbytes_per_s']:.0f} GB/s moved")
            if "target_ids_per_s" in m:
                t = m["target_ids_per_s"]
                note.append(f"target {t / 1e9:.1f}G: {'met' if rate >= t else 'MISSED'}")
            log(f"{r['entries']:>11,} {r['dim']:>4} {op:<13} {m['median_ms']:>10.3f} "
                f"{rate / 1e9:>9.3f} {'; '.join(note)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64M,128M", help="entries, e.g. 64M,128M (or 1M for a "
                    "smoke run)")
    ap.add_argument("--dims", default="32,64")
    ap.add_argument("--batch", type=int, default=1 << 20)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--insert-reps", type=int, default=5)
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, flush=True)

    try:
        import cupy as cp
    except ImportError as exc:
        log(f"benchmark needs CuPy: {exc}")
        return 2

    import engines
    info = {i.name: i for i in engines.available()}["native-gpu"]
    if not info.available:
        log(f"native-gpu unavailable: {info.reason}")
        return 2
    sizes = [int(float(s[:-1]) * (1 << 20)) if s[-1] in "Mm" else int(s)
             for s in args.sizes.split(",")]
    dims = [int(d) for d in args.dims.split(",")]
    props = cp.cuda.runtime.getDeviceProperties(0)
    meta = {"device": props["name"].decode() if isinstance(props["name"], bytes)
            else props["name"], "sms": props["multiProcessorCount"],
            "engines_file": engines.__file__, "python": sys.version.split()[0],
            "cupy": cp.__version__, "numpy": np.__version__}
    log(f"benchmark on {meta['device']} ({meta['sms']} SMs), engines from {meta['engines_file']}")
    results = []
    for n in sizes:
        for dim in dims:
            log(f"- {n:,} entries, dim {dim}")
            try:
                results.append(bench_one(cp, engines, n, dim, args.batch, args.reps,
                                         args.insert_reps, log))
            except Exception as exc:  # keep the other sizes' numbers
                import traceback
                traceback.print_exc()
                results.append({"entries": n, "dim": dim, "error": repr(exc)})
                gc.collect()
                cp.get_default_memory_pool().free_all_blocks()
    print_table(results, log)
    out_dir = os.environ.get("OUT") or "."
    path = os.path.join(out_dir, "gpu_check.json")
    with open(path, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    log(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
