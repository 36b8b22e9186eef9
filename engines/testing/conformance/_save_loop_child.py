"""The processes of test_restore_during_saves.py: a writer that saves two versions of a table
over one basename in a loop until it is killed, and a reader that restores that basename again
and again and reports a digest of what each restore gave.

Run as `python _save_loop_child.py '<json spec>'`; spec: {"engine", "options", "role"
("writer" | "reader"), "base"}. The writer prints `SAVING` once it built its tables; the
reader prints `READY`, waits for a line on stdin (GO), then restores until the next line
(STOP), printing one JSON object per restore: {"digest": <hex>} or
{"error": "<type>: <message>"}.
"""
from __future__ import annotations

import hashlib
import json
import select
import sys

import numpy as np

import engines

DIM = 8
NSHARDS = 4


def content(version: str):
    """(ids, values, req_time) of version "A" (20,000 ids) or "B" (20,400 ids, other
    values): large enough that one save takes a while, as in a real deployment."""
    n = 20_000 if version == "A" else 20_400
    ids = np.arange(n, dtype=np.int64) * 7919 - 3_000_000
    values = (np.arange(n * DIM, dtype=np.float32).reshape(n, DIM) % 89) + \
        np.float32(0 if version == "A" else 0.25)
    return ids, values, 100 if version == "A" else 200


def config():
    return engines.table_config(dim=DIM, optimizer="sgd")


def build(engine, version: str | None):
    table = engine.create_table(config())
    if version is not None:
        ids, values, req_time = content(version)
        table.assign(ids, values, req_time=req_time)
    return table


def probe() -> np.ndarray:
    ids = content("B")[0]
    return np.concatenate([ids, np.array([-1, 0, 1, 10**12], np.int64)])


def digest(table) -> str:
    """What a restore gave: its size and every probed row (not max_update_ts, which a restore
    only ever raises)."""
    h = hashlib.sha256()
    h.update(str(table.size()).encode())
    h.update(np.ascontiguousarray(table.lookup(probe())).tobytes())
    return h.hexdigest()


def main(spec: dict) -> None:
    engine = engines.get(spec["engine"], **spec["options"])
    base = spec["base"]
    if spec["role"] == "writer":
        tables = [build(engine, "A"), build(engine, "B")]
        print("SAVING", flush=True)
        i = 0
        while True:                                   # until the test kills it
            tables[i % 2].save(base, nshards=NSHARDS)
            i += 1
    table = build(engine, None)
    print("READY", flush=True)
    sys.stdin.readline()                             # GO: the writer is saving
    while not select.select([sys.stdin], [], [], 0)[0]:    # until STOP
        try:
            table.restore(base)
            line = {"digest": digest(table)}
        except Exception as exc:                     # noqa: BLE001 - reported to the test
            line = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
