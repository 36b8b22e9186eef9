"""Saves that meet real faults (issue 20, rows 2, 3 and 5; docs/checkpoints.md, "Save"): an
error means nothing changed, and a failure after the commit point is a warning on a save that
succeeded.

- A directory the process may write but not list (mode 0311): the save refuses before it
  writes anything (it could not remove an older save's files); the old checkpoint restores
  and nothing new is left.
- The disk full at the manifest write (a 1 MiB tmpfs with exactly room for the new shard; or
  RLIMIT_FSIZE where no tmpfs can be mounted): an error, the temporaries removed, the old
  checkpoint intact.
- A step after the commit point that fails (an older save's shard name taken by a
  directory, which cannot be removed): a CheckpointWarning, and the new checkpoint restores.
- 1,100 shards under a limit of 1,024 open files: a save holds one shard file open at a time.

Each fault is set up in a child process (_save_fault_child.py), never in the test process.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import engines
from engines.testing.conformance import _save_fault_child as content
from engines.testing.helpers import require

pytestmark = [pytest.mark.conformance_area("checkpoints"), pytest.mark.slow]

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_save_fault_child.py")
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_permission_bypass() -> None:
    """preexec_fn of a child of root: without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH in its
    bounding set, the exec'd program obeys file modes like any user (it stays uid 0)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run(engine_param, case: str, where, prefix=(), **popen) -> dict:
    spec = {"engine": engine_param.spec.name, "options": engine_param.options, "case": case,
            "dir": str(where)}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([*prefix, sys.executable, CHILD, json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=900, **popen)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n" \
                                           f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def _state(table):
    probe = np.concatenate([np.arange(600, dtype=np.int64) * 104729 + k for k in (0, 7)])
    return table.size(), table.lookup(probe).tobytes()


def test_save_into_a_directory_it_cannot_list_changes_nothing(engine, engine_param, tmp_path):
    require(engine, op=("save", "restore"))
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux (permission bits and capabilities)")
    folder = tmp_path / "d"
    old = content.table(engine, "A")
    old.save(str(folder / "t"), nshards=3)
    before = sorted(os.listdir(folder))
    folder.chmod(0o311)
    try:
        preexec = _drop_permission_bypass if os.geteuid() == 0 else None
        try:
            got = _run(engine_param, "unlistable", folder, preexec_fn=preexec)
        except subprocess.SubprocessError as exc:
            pytest.skip(f"cannot start a process without the permission bypass: {exc}")
    finally:
        folder.chmod(0o755)
    assert got["outcome"] == "error", got
    assert got["errno"] == errno.EACCES and f"cannot list directory {folder}" in \
        got["message"], got
    assert sorted(os.listdir(folder)) == before, "the failed save left files behind"
    back = content.table(engine, None)
    back.restore(str(folder / "t"))
    assert _state(back) == _state(old)


def _can_mount_tmpfs() -> str | None:
    """None when a child may mount a tmpfs in its own mount namespace, else why not."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare and mount"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t",
                            "tmpfs", "-o", "size=64k", "tmpfs", "/mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"mount failed: {probe.stderr.strip()}"


def test_disk_full_at_the_manifest_write_changes_nothing(engine, engine_param, tmp_path):
    """On a 1 MiB tmpfs with exactly the new shard's pages free, or, where no tmpfs can be
    mounted, under RLIMIT_FSIZE: the save fails writing its manifest (before the commit
    point), removes its temporaries and leaves the old checkpoint."""
    require(engine, op=("save", "restore"))
    folder = tmp_path / "d"
    folder.mkdir()
    why_not = _can_mount_tmpfs()
    if why_not is None:
        got = _run(engine_param, "disk_full_tmpfs", folder,
                   prefix=("unshare", "--mount", "--propagation", "private"))
        assert got["outcome"] == "error" and got["errno"] == errno.ENOSPC, got
        assert got["listing"] == ["filler", "t-00000-of-00001", "t.manifest"], got
        assert got["restore"]["outcome"] == "saved", got
        assert got["restored_size"] == 600 and got["restored_row"] == [[1.0] * content.DIM]
        return
    if not sys.platform.startswith("linux"):
        pytest.skip(f"no tmpfs ({why_not}) and no RLIMIT_FSIZE check off Linux")
    old = content.table(engine, "A")
    old.save(str(folder / "t"), nshards=1)
    before = sorted(os.listdir(folder))
    got = _run(engine_param, "disk_full_fsize", folder)
    assert got["outcome"] == "error" and got["errno"] == errno.EFBIG, got
    assert sorted(os.listdir(folder)) == before, "the failed save left files behind"
    back = content.table(engine, None)
    back.restore(str(folder / "t"))
    assert _state(back) == _state(old)


def test_a_failure_after_the_commit_point_is_a_warning(engine, tmp_path):
    """An older save's shard that cannot be removed (a directory took its name): the new
    checkpoint is committed, restores, and the save warns instead of raising."""
    require(engine, op=("save", "restore"))
    base = str(tmp_path / "t")
    content.table(engine, "A").save(base, nshards=3)
    os.remove(tmp_path / "t-00000-of-00003")
    (tmp_path / "t-00000-of-00003").mkdir()             # in the way of the stale-set removal
    (tmp_path / "t-00000-of-00003" / "keep").write_bytes(b"x")
    new = content.table(engine, "B")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = new.save(base, nshards=2)
    messages = [str(w.message) for w in caught if issubclass(w.category,
                                                              engines.CheckpointWarning)]
    assert len(messages) == 1 and "remove t-00000-of-00003" in messages[0], \
        [str(w.message) for w in caught]
    assert "the new checkpoint is committed" in messages[0]
    assert [os.path.basename(p) for p in paths] == ["t-00000-of-00002", "t-00001-of-00002"]
    back = content.table(engine, None)
    back.restore(base)
    assert _state(back) == _state(new)
    assert (tmp_path / "t.manifest").read_text().split("\n")[1] == "state committed"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_many_shards_under_an_open_file_limit(engine, engine_param, tmp_path):
    """nshards=1100 with `ulimit -n 1024`: neither the save nor the restore holds every
    shard file open at once."""
    require(engine, op=("save", "restore"))
    if not sys.platform.startswith("linux"):
        pytest.skip("needs RLIMIT_NOFILE semantics of Linux")
    got = _run(engine_param, "many_shards", tmp_path)
    assert got["outcome"] == "saved", got
    assert got["restored"], got
    assert len([n for n in os.listdir(tmp_path) if n.startswith("t-")]) == 1100
