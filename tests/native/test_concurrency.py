"""Concurrency contract (engines/native/README.md): lookups from several Python threads run in
parallel (shared lock, GIL released); an update takes the table exclusively, so every lookup
sees the table entirely before or entirely after each update."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import engines
from engines.native.cpu import native_module

# The compiled engine is part of every install: its absence is an error, never a skip
# (a CI run must fail when the native build silently failed; tests/native/test_build.py).
native_module()


@pytest.mark.parametrize("threads", [1, 2])
def test_lookups_see_whole_updates(threads):
    eng = engines.get("native-cpu", threads=threads)
    n, dim = 20_000, 8
    t = eng.create_table(engines.table_config(dim=dim))
    ids = np.arange(n, dtype=np.int64) * 7919
    t.assign(ids, np.zeros((n, dim), np.float32))
    rounds = 30
    stop = threading.Event()
    errors = []

    def reader():
        try:
            while not stop.is_set():
                out = t.lookup(ids)
                # One value everywhere: the state after some number k of whole assigns.
                first = out[0, 0]
                if not (out == first).all():
                    errors.append(f"torn read: values {np.unique(out)[:5]}")
                    return
                if not (first == int(first) and 0 <= first <= rounds):
                    errors.append(f"unexpected value {first}")
                    return
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        for k in range(1, rounds + 1):
            t.assign(ids, np.full((n, dim), k, np.float32), req_time=k)
    finally:
        stop.set()
        for r in readers:
            r.join()
    assert not errors, errors[0]
    assert (t.lookup(ids) == rounds).all()


def test_concurrent_updates_on_two_tables_sharing_a_pool():
    eng = engines.get("native-cpu", threads=2)
    cfg = engines.table_config(dim=4, optimizer="adagrad")
    tables = [eng.create_table(cfg) for _ in range(2)]
    ref = engines.get("native-cpu", threads=1).create_table(cfg)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 5000, 3000), rng.standard_normal((3000, 4)).astype(np.float32))
               for _ in range(20)]
    for ids, g in batches:
        ref.apply_gradients(ids, g, enable_dedup=True)

    def work(t):
        for ids, g in batches:
            t.apply_gradients(ids, g, enable_dedup=True)

    workers = [threading.Thread(target=work, args=(t,)) for t in tables]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    probe = np.arange(5000, dtype=np.int64)
    for t in tables:
        assert t.lookup_entry(probe) == ref.lookup_entry(probe)


_THREAD_COUNTS = """
import os, numpy as np, engines
count = lambda: len(os.listdir("/proc/self/task"))
before = count()
eng = engines.get("native-cpu", threads=4)
t = eng.create_table(engines.table_config(dim=4))
t.assign(np.arange(3, dtype=np.int64), np.ones((3, 4), np.float32))       # one chunk: inline
idle = count()
n = 200_000
t.assign(np.arange(n, dtype=np.int64), np.ones((n, 4), np.float32))
working = count()
t.lookup(np.arange(n, dtype=np.int64))
print(before, idle, working, count())
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_pool_threads_start_with_the_first_parallel_job():
    """An engine that never runs parallel work has no thread of its own (issue 20, row 11: the
    simulated child's capability probe had an idle pool thread, whose first run landed inside
    a counted call); its first parallel job starts them, once. In a fresh process, so no other
    test's engine comes and goes meanwhile."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _THREAD_COUNTS], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, idle, working, after = map(int, out.stdout.split())
    assert (idle, working, after) == (before, before + 3, before + 3)
