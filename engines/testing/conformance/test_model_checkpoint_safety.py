"""Model checkpoints (engines/model_checkpoint.py) with names that share a prefix, and restore
all-or-nothing across the tables and filters of a model (issue 11, defects 3 and 6)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import engines
from engines.model_checkpoint import CheckpointManager
from engines.testing.helpers import ids, require, rows

pytestmark = pytest.mark.conformance_area("checkpoints")


def _table(engine, value=None, n=30, first=0):
    t = engine.create_table(engines.table_config(dim=2))
    if value is not None:
        keys = np.arange(first, first + n, dtype=np.int64)
        t.assign(keys, np.full((n, 2), value, np.float32), req_time=3)
    return t


def _content(t, first=0, n=30):
    return t.size(), t.lookup(np.arange(first, first + n, dtype=np.int64)).tobytes()


@pytest.mark.parametrize("names", [("emb", "emb-v2"), ("user", "user:1"), ("a", "a/b"),
                                   ("t", "t-00000-of-00001"), ("x-v2", "x")])
def test_prefix_sharing_table_names_save_and_restore(engine, tmp_path, names):
    """Defect 3: `emb` + `emb-v2` (and `user` + `user:1`, `a` + `a/b`) saved fine but restore
    always failed with "stray file ... matches .../emb-* but is not a shard"."""
    require(engine, op=("save", "restore"))
    tables = [_table(engine, 1.0 + k, n=20 + 5 * k, first=100 * k) for k in range(2)]
    m = CheckpointManager(tmp_path)
    for name, t in zip(names, tables):
        m.add_table(name, t, saver_parallel=2)
    m.save(1)
    fresh = [_table(engine) for _ in tables]
    m2 = CheckpointManager(tmp_path)
    for name, t in zip(names, fresh):
        m2.add_table(name, t)
    assert m2.restore() == 1
    for k, (t, u) in enumerate(zip(tables, fresh)):
        assert _content(u, 100 * k, 20 + 5 * k) == _content(t, 100 * k, 20 + 5 * k)
        assert u.size() == 20 + 5 * k


def test_names_that_would_share_files_are_rejected(engine, tmp_path):
    m = CheckpointManager(tmp_path)
    m.add_table("a:b", _table(engine))
    with pytest.raises(ValueError, match="name: 'a/b' and 'a:b' would both save as 'a-b'"):
        m.add_table("a/b", _table(engine))
    with pytest.raises(ValueError, match="hash filter"):
        m.add_table("hash_filter_0", _table(engine))
    with pytest.raises(ValueError, match="name.*cannot name checkpoint files"):
        m.add_table("x\0y", _table(engine))
    with pytest.raises(ValueError, match="extra_restore_names"):
        m.add_table("ok", _table(engine), extra_restore_names=["bad name"])


@pytest.mark.parametrize("broken", ["second_table", "filter"])
def test_restore_is_all_or_nothing(engine, tmp_path, broken):
    """Defect 6: with one table's shard corrupt, restore raised, but the tables restored
    before it had already moved to the new step."""
    require(engine, op=("save", "restore"))
    if broken == "filter":
        require(engine, filter="sliding")
    f = (engine.create_hash_filter("sliding", capacity=300, split_num=7, occurrence_threshold=2)
         if broken == "filter" else None)
    a, b = _table(engine, 1.0), _table(engine, 2.0)
    m = CheckpointManager(tmp_path)
    m.add_table("a", a)
    m.add_table("b", b)
    if f is not None:
        m.add_hash_filter(f)
        f.intercept_gradient(ids(1, 2, 3), rows(1, 1, 1))
    m.save(5)
    asset = tmp_path / "model.ckpt-5.assets"
    victim = asset / ("b-00000-of-00001" if broken == "second_table"
                      else "hash_filter_0-00003-of-00007")
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    a.assign(ids(0, 1), rows([9, 9], [9, 9]), req_time=7)         # state after the save
    b.assign(ids(0), rows([8, 8]), req_time=7)
    before = (_content(a), _content(b), a.max_update_ts, b.max_update_ts)
    filter_before = None
    if f is not None:
        f.save(str(tmp_path / "filter_before"))
        filter_before = (tmp_path / "filter_before-00000-of-00007").read_bytes()
    with pytest.raises(engines.CheckpointError, match=victim.name):
        m.restore(5)
    assert (_content(a), _content(b), a.max_update_ts, b.max_update_ts) == before
    if f is not None:
        f.save(str(tmp_path / "filter_after"))
        assert (tmp_path / "filter_after-00000-of-00007").read_bytes() == filter_before


def test_resaving_a_step_replaces_all_of_it(engine, tmp_path):
    require(engine, op=("save", "restore"))
    a = _table(engine, 1.0)
    m = CheckpointManager(tmp_path)
    m.add_table("a", a, saver_parallel=3)
    m.save(2)
    a.assign(np.arange(100, 140, dtype=np.int64), np.ones((40, 2), np.float32))
    m.save(2)
    names = sorted(os.listdir(tmp_path))
    assert names == ["checkpoint", "model.ckpt-2.assets"]
    fresh = _table(engine)
    m2 = CheckpointManager(tmp_path)
    m2.add_table("a", fresh)
    m2.restore(2)
    assert fresh.size() == 70
