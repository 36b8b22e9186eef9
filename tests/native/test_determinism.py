"""Thread-count determinism: threads 1, 2 and 3 give bit-identical tables after random
workloads (writes are partitioned by id, so each id's updates keep their batch order)."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.native.cpu import native_module

# The compiled engine is part of every install: its absence is an error, never a skip
# (a CI run must fail when the native build silently failed; tests/native/test_build.py).
native_module()

CONFIGS = {
    "adagrad": dict(dim=8, optimizer="adagrad", initializer="random_uniform",
                    weight_decay_factor=0.01),
    "multi": dict(segments=[dict(dim=1, optimizer="ftrl"),
                            dict(dim=5, optimizer="adam", use_nesterov=True,
                                 compressor="one_bit", step_size=2),
                            dict(dim=3, optimizer="group_adagrad", l2_regularization_strength=0.1),
                            dict(dim=2, optimizer="rmsprop", initializer="random_uniform",
                                 compressor="fixed_r8", r=0.5)]),
}


def run_workload(threads: int, config: str, seed: int, with_filter: bool):
    eng = engines.get("native-cpu", threads=threads)
    f = (eng.create_hash_filter("sliding", capacity=2000, split_num=5, occurrence_threshold=2)
         if with_filter else None)
    t = eng.create_table(engines.table_config(**CONFIGS[config]), seed=seed,
                         learning_rates=(0.1,) * (4 if config == "multi" else 1),
                         hash_filter=f)
    rng = np.random.default_rng(seed)
    pool = rng.integers(-(1 << 63), (1 << 63) - 1, 3000)
    outs = []
    for step in range(12):
        n = int(rng.integers(0, 4000))
        ids = pool[rng.integers(0, len(pool), n)]
        vals = rng.standard_normal((n, t.dim)).astype(np.float32)
        op = step % 4
        if op == 0:
            t.assign(ids, vals, req_time=step)
        elif op == 1:
            t.assign_add(ids, vals, req_time=step)
        else:
            t.apply_gradients(ids, vals, global_step=step, enable_dedup=bool(op == 3),
                              req_time=step)
        outs.append(t.lookup(pool[:500]).tobytes())
    outs.append(t.lookup_entry(pool))
    outs.append((t.size(), t.max_update_ts))
    outs.append(t.save_as_tensor(0, 2, 10_000, 0))
    return outs


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("with_filter", [False, True])
def test_thread_count_does_not_change_results(config, with_filter):
    base = run_workload(1, config, 5, with_filter)
    for threads in (2, 3):
        assert run_workload(threads, config, 5, with_filter) == base, threads
