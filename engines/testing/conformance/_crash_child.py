"""The content of the crash test (test_crash_safety.py) and its child process.

The child builds the "new" content on one engine, times one save of it into a scratch
folder, prints `SAVE <seconds>` and then saves it for real over the "old" checkpoint; the
test kills it with SIGKILL at a moment drawn from that time. Run as
`python _crash_child.py '<json spec>'`.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

import engines
from engines import model_checkpoint
from engines.testing.helpers import declared_optimizer

STEP = 7                       # the model step every save writes (a re-save of one step)
TABLE_NAMES = ("emb", "emb-v2")  # prefix-sharing names, on purpose


def table_content(version: str, salt: int = 0):
    """(ids, values, req_time) of a table: "new" has more ids and other values than "old"."""
    n = 2000 if version == "old" else 2400
    keys = np.arange(n, dtype=np.int64) * 7919 - 5000 + salt
    values = (np.arange(n * 4, dtype=np.float32).reshape(n, 4) % 97) + \
        np.float32(0 if version == "old" else 0.5)
    return keys, values, 100 if version == "old" else 200


def build_table(engine, version: str | None, salt: int = 0):
    """A table with the content of `version` ("old", "new"; None: empty): adagrad where the
    engine declares it, else sgd."""
    table = engine.create_table(engines.table_config(dim=4,
                                                     optimizer=declared_optimizer(engine)))
    if version is not None:
        keys, values, req_time = table_content(version, salt)
        table.assign(keys, values, req_time=req_time)
        table.apply_gradients(keys[::5], values[::5], req_time=req_time)
    return table


def probe_ids() -> np.ndarray:
    """Every id either version of either table holds, and a few more."""
    keys = [table_content("new", salt)[0] for salt in range(len(TABLE_NAMES))]
    return np.unique(np.concatenate(keys + [np.array([-1, 0, 1, 10**12], np.int64)]))


def has_sliding_filter(engine) -> bool:
    return "sliding" in engine.capabilities.filters


def build_model(engine, version: str | None, model_dir: str):
    """A CheckpointManager over two prefix-sharing tables and, where the engine has one, a
    sliding hash filter whose counts differ between versions (None: all empty)."""
    manager = model_checkpoint.CheckpointManager(model_dir)
    tables = [build_table(engine, version, salt) for salt in range(len(TABLE_NAMES))]
    for name, table in zip(TABLE_NAMES, tables):
        manager.add_table(name, table)
    hash_filter = None
    if has_sliding_filter(engine):
        hash_filter = engine.create_hash_filter("sliding", capacity=3000, split_num=7,
                                                occurrence_threshold=5)
        if version is not None:
            keys = table_content(version)[0][: 300 if version == "old" else 500]
            hash_filter.intercept_gradient(keys, np.ones((len(keys), 1), np.float32))
        manager.add_hash_filter(hash_filter)
    return manager, tables, hash_filter


def main(spec: dict) -> None:
    engine = engines.get(spec["engine"], **spec["options"])
    if spec.get("no_exchange"):     # the journalled pair of renames instead of an exchange
        model_checkpoint.exchange_paths = lambda a, b: False
    case, where = spec["case"], spec["dir"]
    if case.startswith("manager"):
        manager, tables, hash_filter = build_model(engine, "new", os.path.join(where, "model"))
        scratch = model_checkpoint.CheckpointManager(os.path.join(where, "scratch"))
        for name, table in zip(TABLE_NAMES, tables):
            scratch.add_table(name, table)
        if hash_filter is not None:
            scratch.add_hash_filter(hash_filter)

        def timed():
            scratch.save(STEP)

        def real():
            manager.save(STEP)
    else:
        table = build_table(engine, "new")

        def timed():
            table.save(os.path.join(where, "scratch", "t"), nshards=4)

        def real():
            table.save(os.path.join(where, "t"), nshards=4)
    start = time.perf_counter()
    timed()
    print(f"SAVE {time.perf_counter() - start:.6f}", flush=True)
    real()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
