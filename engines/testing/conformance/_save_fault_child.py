"""The child processes of test_save_faults.py: saves that meet a real fault of the file system
or the process (no mocks), each run where the fault can be set up without touching the test
process: a directory this process may write but not list, a full disk, a limit on open files.

Run as `python _save_fault_child.py '<json spec>'`; spec: {"engine", "options", "case", "dir"}.
Prints one JSON object: {"outcome": "saved" | "error", "type", "errno", "message",
"warnings": [...]} plus what the case measured.

Cases:
- "unlistable": save B (2 shards) over the checkpoint at dir/t (the test made dir mode 0311
  and, when it runs as root, started this process without the capabilities that bypass
  permissions).
- "disk_full_tmpfs": mount a 1 MiB tmpfs at dir (the test started this process in a mount
  namespace of its own), save A, fill the file system so that exactly B's shard still fits,
  then save B: the manifest write finds the disk full.
- "disk_full_fsize": the same fault through RLIMIT_FSIZE where no tmpfs can be mounted: every
  file this process writes is limited to a few bytes, so B (an empty table: a 0-byte shard)
  fails at its manifest.
- "many_shards": save 1,100 shards and restore them under a limit of 1,024 open files.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import warnings

import numpy as np

import engines

DIM = 4


def table(engine, version: str | None, n: int = 600):
    t = engine.create_table(engines.table_config(dim=DIM, optimizer="sgd"))
    if version is not None:
        ids = np.arange(n, dtype=np.int64) * 104729 + (0 if version == "A" else 7)
        t.assign(ids, np.full((n, DIM), 1.0 if version == "A" else 2.0, np.float32),
                 req_time=10)
    return t


def attempt(save) -> dict:
    """{"outcome": ..., "warnings": [...]} of one save."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            save()
            out = {"outcome": "saved"}
        except Exception as exc:               # noqa: BLE001 - reported to the test
            out = {"outcome": "error", "type": type(exc).__name__,
                   "errno": getattr(exc, "errno", None), "message": str(exc)}
    out["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return out


def free_pages(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // 4096


def disk_full_tmpfs(engine, where: str) -> dict:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", where], check=True)
    base = os.path.join(where, "t")
    table(engine, "A").save(base, nshards=1)
    new = table(engine, "B")
    scratch = os.path.join(os.path.dirname(where), "scratch")   # outside the tmpfs
    (shard,) = new.save(os.path.join(scratch, "t"), nshards=1)
    need = -(-os.path.getsize(shard) // 4096)                  # pages of B's shard
    with open(os.path.join(where, "filler"), "wb") as f:
        f.write(b"\0" * (4096 * (free_pages(where) - need)))
    out = attempt(lambda: new.save(base, nshards=1))
    out["free_pages_before"] = need
    return out


def disk_full_fsize(engine, where: str) -> dict:
    base = os.path.join(where, "t")        # A was saved there by the test
    new = table(engine, None)              # its only shard is a 0-byte file
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write beyond the limit: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
    return attempt(lambda: new.save(base, nshards=1))


def many_shards(engine, where: str) -> dict:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    base = os.path.join(where, "t")
    source = table(engine, "A", n=3000)
    out = attempt(lambda: source.save(base, nshards=1100))
    if out["outcome"] == "saved":
        back = table(engine, None)
        restored = attempt(lambda: back.restore(base))
        probe = np.arange(3000, dtype=np.int64) * 104729
        out["restored"] = restored["outcome"] == "saved" and back.size() == 3000 and \
            bool((back.lookup(probe) == source.lookup(probe)).all())
        out["restore"] = restored
    return out


def main(spec: dict) -> None:
    engine = engines.get(spec["engine"], **spec["options"])
    case, where = spec["case"], spec["dir"]
    if case == "unlistable":
        out = attempt(lambda: table(engine, "B").save(os.path.join(where, "t"), nshards=2))
    elif case == "disk_full_tmpfs":
        out = disk_full_tmpfs(engine, where)
        out["listing"] = sorted(os.listdir(where))
        back = table(engine, None)
        out["restore"] = attempt(lambda: back.restore(os.path.join(where, "t")))
        out["restored_size"] = back.size()
        out["restored_row"] = back.lookup(np.array([0], np.int64)).tolist()
    elif case == "disk_full_fsize":
        out = disk_full_fsize(engine, where)
    elif case == "many_shards":
        out = many_shards(engine, where)
    else:
        raise SystemExit(f"unknown case {case!r}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
