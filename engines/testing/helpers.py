"""Small helpers shared by the conformance tests: capability checks, array builders, table
snapshots, checkpoint files written by hand, restores under a time limit."""
from __future__ import annotations

import os
import stat
import struct
import threading

import crc32c
import numpy as np
import pytest

import engines


def require(engine, *, op=None, optimizer=None, initializer=None, compressor=None,
            filter=None, fused=False, ttl=False, dedup=False, multi_segment=False,
            quirks=False):
    """Skip (with the reason) what the engine does not declare. `op` is one op name or a
    tuple of them (every op the test calls beyond assign/assign_add/lookup/apply_gradients)."""
    missing = engine.capabilities.missing(engines.Requirements.of(
        ops=op, optimizers=optimizer, initializers=initializer, compressors=compressor,
        filters=filter, fused=fused, ttl=ttl, dedup=dedup, multi_segment=multi_segment,
        quirks=quirks))
    if missing:
        pytest.skip(f"engine {engine.name} does not declare {', '.join(missing)}")


def ids(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def rows(*values, dim=None) -> np.ndarray:
    arr = np.array(values, dtype=np.float32)
    return arr.reshape(len(values), -1) if dim is None else arr.reshape(-1, dim)


SNAPSHOT_PROBE = np.arange(-3, 8, dtype=np.int64)


def declared_optimizer(engine, preferred: str = "adagrad") -> str:
    """`preferred` when the engine declares it, else sgd (the optimizer every engine must
    declare); a test that needs a particular optimizer uses `require` instead."""
    return preferred if preferred in engine.capabilities.optimizers else "sgd"


def small_table(engine, optimizer: str | None = None):
    """A table of dim 2 holding ids 1, 2, 3 (written at req_time 5): adagrad where the engine
    declares it, else sgd (or `optimizer`)."""
    t = engine.create_table(engines.table_config(
        dim=2, optimizer=optimizer or declared_optimizer(engine)), learning_rates=(0.1,))
    t.assign(ids(1, 2, 3), rows([1, 2], [3, 4], [5, 6]), req_time=5)
    return t


def snapshot(t, probe=SNAPSHOT_PROBE):
    """Everything observable about a table (entries too, where the engine exposes them)."""
    entries = t.lookup_entry(probe) if "lookup_entry" in t.capabilities.ops else None
    return t.size(), entries, t.lookup(probe).tobytes(), t.max_update_ts


# ---- checkpoint files written by hand (independent of engines.formats) ---------------------

def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C."""
    c = crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(payload: bytes) -> bytes:
    """One TFRecord: uint64 length, masked CRC32C of it, payload, masked CRC32C of that."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc(length)) + payload + \
        struct.pack("<I", masked_crc(payload))


def tfrecord_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every record of a well-formed TFRecord file."""
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, pos + 16 + length))
        pos += 16 + length
    return out


def tfrecord_payloads(data: bytes) -> list[bytes]:
    return [data[s + 12:e - 4] for s, e in tfrecord_spans(data)]


def manifest_by_hand(prefix: str, files: list[bytes], state: str = "committed",
                     temps: list[str] | None = None, generation: int | None = 1) -> bytes:
    """The `<prefix>.manifest` of shard files with these bytes (docs/checkpoints.md);
    generation=None writes version 1 (no generation line)."""
    n = len(files)
    lines = ["hashlab-checkpoint-manifest 1", f"state {state}"] if generation is None else \
        ["hashlab-checkpoint-manifest 2", f"state {state}", f"generation {generation}"]
    lines.append(f"shards {n}")
    for i, data in enumerate(files):
        line = f"shard {i} {prefix}-{i:05d}-of-{n:05d} {len(data)} {crc32c.crc32c(data):08x}"
        lines.append(line + (f" {temps[i]}" if temps else ""))
    return "".join(line + "\n" for line in lines).encode()


def restore_with_time_limit(target, base: str, folder, limit_s: float = 60.0):
    """target.restore(base) in a thread: ("error", exc), ("restored", None) or ("hang", None).
    A restore stuck opening a FIFO under `folder` is released by opening the FIFO's other end
    (a test must fail on a hang, not hang itself)."""
    result = {}

    def run():
        try:
            target.restore(base)
            result["outcome"] = ("restored", None)
        except BaseException as exc:          # noqa: BLE001 - the outcome is what we test
            result["outcome"] = ("error", exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit_s)
    if not worker.is_alive():
        return result["outcome"]
    for path in folder.rglob("*"):
        if stat.S_ISFIFO(os.lstat(path).st_mode):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
    worker.join(limit_s)
    return ("hang", None)
# Set for the child processes that run tests/tfops/cluster/ (one in-process cluster each).
TFOPS_CLUSTER_ENV = "HASHLAB_TFOPS_CLUSTER_CHILD"
