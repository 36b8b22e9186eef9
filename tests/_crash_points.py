"""Kill a save at every one of its file-system steps (the driver of test_crash_points.py).

Run as `python _crash_points.py <case>`: prints one JSON object with the outcome of a crash
before step k, for every k. For each k the old checkpoint is written, then a forked child
saves the new one with os.open/replace/rename/remove/unlink/fsync/mkdir/rmdir (and the
directory exchange) wrapped so that the k-th call ends the process with os._exit, which runs
no cleanup, as a kill would. The driver then restores and classifies: old, new, mixed or
unrestorable, and checks that the next save leaves no hidden leftovers. This process is
fresh and single-threaded when it forks (no TensorFlow is imported).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import numpy as np

import engines
from engines import model_checkpoint
from engines.formats import read_shards, write_shards
from engines.errors import CheckpointError

WRAPPED = ("open", "replace", "rename", "remove", "unlink", "fsync", "mkdir", "rmdir")
CRASHED = 77


def _install_crash(at: int) -> list:
    """Wrap the file-system calls so that call number `at` exits (0: only count them)."""
    calls = [0]

    def wrap(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == at:
                os._exit(CRASHED)
            return real(*args, **kwargs)
        return call

    for name in WRAPPED:
        setattr(os, name, wrap(getattr(os, name)))
    exchange = getattr(model_checkpoint, "exchange_paths", None)
    if exchange is not None and exchange is not _no_exchange:
        model_checkpoint.exchange_paths = wrap(exchange)
    return calls


def _no_exchange(a, b):
    return False


# ---- shard sets ---------------------------------------------------------------------------

def _payloads(tag: str, n: int) -> list[list[bytes]]:
    return [[f"{tag}-{i}-{k}".encode() * (k + 1) for k in range(3 + i)] for i in range(n)]


SHARD_CASES = {
    # name: (old shard count, old has a manifest?, new shard count)
    "resave_2_shards": (2, True, 2),
    "grow_1_to_4_shards": (1, True, 4),
    "shrink_3_to_2_shards": (3, True, 2),
    "over_a_checkpoint_without_manifest": (3, False, 2),
}


def _shards_old(base, case):
    n_old, manifest, _ = SHARD_CASES[case]
    write_shards(base, _payloads("old", n_old))
    if not manifest:
        os.remove(base + ".manifest")


def _shards_new(base, case):
    write_shards(base, _payloads("new", SHARD_CASES[case][2]))


def _shards_outcome(base, case) -> str:
    try:
        got = read_shards(base)
    except CheckpointError as exc:
        return f"unrestorable: {exc}"
    n_old, _, n_new = SHARD_CASES[case]
    if got == _payloads("old", n_old):
        return "old"
    return "new" if got == _payloads("new", n_new) else "mixed"


# ---- model checkpoints ----------------------------------------------------------------------

def _model(version: str | None, model_dir: str):
    engine = engines.get("numpy")
    manager = model_checkpoint.CheckpointManager(model_dir)
    tables = []
    for k, name in enumerate(("emb", "emb-v2")):
        t = engine.create_table(engines.table_config(dim=2))
        if version is not None:
            n = 40 if version == "old" else 55
            keys = np.arange(n, dtype=np.int64) + 1000 * k
            t.assign(keys, np.full((n, 2), 1.0 if version == "old" else 2.0, np.float32))
        manager.add_table(name, t, saver_parallel=2 if version == "old" else 3)
        tables.append(t)
    return manager, tables


def _state(tables):
    probe = np.arange(-1, 2100, dtype=np.int64)
    return [(t.size(), t.lookup(probe).tobytes()) for t in tables]


def _model_outcome(model_dir) -> str:
    manager, tables = _model(None, model_dir)
    try:
        manager.restore(3)
    except CheckpointError as exc:
        return f"unrestorable: {exc}"
    got = _state(tables)
    for version in ("old", "new"):
        if got == _state(_model(version, os.path.join(model_dir, "unused"))[1]):
            return version
    return "mixed"


# ---- the driver -----------------------------------------------------------------------------

def _hidden_after_next_save(folder, save_again) -> list[str]:
    save_again()
    found = []
    for root, dirs, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, n), folder)
                  for n in dirs + files if n.startswith(".")]
    return found


def run(case: str) -> dict:
    is_model = case.startswith("manager")
    if case == "manager_journal":
        model_checkpoint.exchange_paths = _no_exchange
    outcomes, problems, at = {}, [], 1
    while True:
        folder = tempfile.mkdtemp(prefix="crashpoint")
        base = os.path.join(folder, "t")
        if is_model:
            _model("old", folder)[0].save(3)
        else:
            _shards_old(base, case)
        pid = os.fork()
        if pid == 0:
            _install_crash(at)
            if is_model:
                _model("new", folder)[0].save(3)
            else:
                _shards_new(base, case)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        crashed = os.WIFEXITED(status) and os.WEXITSTATUS(status) == CRASHED
        if not crashed and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            problems.append(f"step {at}: child ended with status {status}")
        outcome = _model_outcome(folder) if is_model else _shards_outcome(base, case)
        kind = outcome.split(":")[0]
        outcomes[kind] = outcomes.get(kind, 0) + 1
        if kind not in ("old", "new"):
            problems.append(f"crash before step {at}: {outcome}")
        else:
            again = ((lambda: _model("old", folder)[0].save(3)) if is_model
                     else (lambda: _shards_old(base, case)))
            hidden = _hidden_after_next_save(folder, again)
            if hidden:
                problems.append(f"crash before step {at}: leftovers after the next save: "
                                f"{hidden}")
        shutil.rmtree(folder, ignore_errors=True)
        if not crashed:                      # the save ran to the end: every step was tried
            break
        at += 1
    return {"case": case, "steps": at - 1, "outcomes": outcomes, "problems": problems}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])))
