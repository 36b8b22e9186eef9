"""Time and input limits, the same on every engine (issue 11, defects 7, 8 and 11;
docs/semantics.md §3 and §8): `req_time` is seconds in [0, 2**32 - 1] (what an entry's uint32
timestamp holds), `global_step` is in [0, 2**63 - 1], float id lists and string learning
rates are rejected rather than converted, a basename that cannot name files is rejected, the
config limits match the native engines', and a rejected call changes nothing."""
from __future__ import annotations

import os

import numpy as np
import pytest

import engines
from engines.config import parse_table_config
from engines.testing.helpers import declared_optimizer, ids, require, rows, small_table, snapshot

pytestmark = pytest.mark.conformance_area("bad input")


G = ids(1, 4)
R = rows([1, 1], [2, 2])

REJECTED = {
    # defect 7: req_time in milliseconds, negative, beyond uint32 / int64
    "req_time in ms": (lambda t: t.assign(G, R, req_time=1_700_000_000_000), ValueError,
                       r"req_time must be in \[0, 2\*\*32 - 1\] \(seconds"),
    "req_time -1": (lambda t: t.assign_add(G, R, req_time=-1), ValueError, "req_time"),
    "req_time 2**32": (lambda t: t.apply_gradients(G, R, req_time=2**32), ValueError,
                       "req_time"),
    "req_time 2**64": (lambda t: t.assign(G, R, req_time=2**64), ValueError, "req_time"),
    # defect 11: global_step beyond int64, negative for every optimizer
    "global_step 2**63": (lambda t: t.apply_gradients(G, R, global_step=2**63), ValueError,
                          r"global_step must be in \[0, 2\*\*63 - 1\]"),
    "global_step -1": (lambda t: t.apply_gradients(G, R, global_step=-1), ValueError,
                       "global_step"),
    # defect 11: float id lists were truncated ([1.9, 2.7] -> ids 1, 2)
    "float id list": (lambda t: t.assign([1.9, 2.7], R), TypeError, "ids"),
    "float id list lookup": (lambda t: t.lookup([1.0, 2.0]), TypeError, "ids"),
    "bool id list": (lambda t: t.lookup([True, False]), TypeError, "ids"),
    "id beyond int64": (lambda t: t.lookup([2**63]), TypeError, "ids"),
    "string values": (lambda t: t.assign([1, 4], [["1", "1"], ["2", "2"]]), TypeError,
                      "values"),
    # defect 11: learning_rates="0.1" was parsed
    "learning_rates str": (lambda t: t.apply_gradients(G, R, learning_rates="0.1"), TypeError,
                           "learning_rates"),
    "learning_rates [str]": (lambda t: t.apply_gradients(G, R, learning_rates=["0.1"]),
                             TypeError, "learning_rates"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_out_of_range_and_inexact_input_is_rejected_and_changes_nothing(engine, name):
    call, error, match = REJECTED[name]
    t = small_table(engine)
    before = snapshot(t)
    with pytest.raises(error, match=match):
        call(t)
    assert snapshot(t) == before


def test_int_id_lists_and_int_values_still_convert(engine):
    t = small_table(engine)
    t.assign([10, 11], [[1, 2], [3, 4]], req_time=2**32 - 1)
    np.testing.assert_array_equal(t.lookup([10, 11]), rows([1, 2], [3, 4]))
    t.apply_gradients([10], [[0.5, 0.5]], global_step=2**63 - 1, req_time=0,
                      learning_rates=[0.25])
    assert t.max_update_ts == 2**32 - 1
    assert t.lookup([]).shape == (0, 2)


def test_fused_apply_checks_time_too(engine):
    require(engine, fused=True)
    t = small_table(engine)
    before = snapshot(t)
    key = ids(1, 2, 3)
    for kw, match in ((dict(req_time=-1), "req_time"), (dict(global_step=2**63), "global_step")):
        with pytest.raises(ValueError, match=match):
            engine.fused_apply_gradients([t], key, None, np.array([2, 1], np.int32),
                                         np.ones(6, np.float32), None, None, [0.1],
                                         num_shards=2, **kw)
    assert snapshot(t) == before


def test_ttl_in_seconds_keeps_a_day_old_entry(engine, tmp_path):
    """Defect 7: with req_time in milliseconds a 30-day expiry saved 0 of 100 entries; in
    seconds (the only unit accepted now) nothing a day old expires."""
    require(engine, op=("save", "restore"), ttl=True)
    t = engine.create_table(engines.table_config(dim=1, expire_days=30))
    day = 86_400
    t.assign(np.arange(100, dtype=np.int64), np.ones((100, 1), np.float32),
             req_time=1_700_000_000)
    t.assign(ids(1000), rows(1), req_time=1_700_000_000 + day)
    t.save(str(tmp_path / "t"))
    u = engine.create_table(engines.table_config(dim=1, expire_days=30))
    u.restore(str(tmp_path / "t"))
    assert u.size() == 101 and u.max_update_ts == 1_700_000_000 + day


@pytest.mark.parametrize("basename,match", [
    ("t\0x", "NUL"), ("dir\0/t", "NUL"), ("t\ud800", "cannot be represented"),
    ("my table", "spaces or control characters"), ("t\nx", "spaces or control characters"),
    ("t\x7f", "spaces or control characters")])
def test_basenames_that_cannot_name_files_are_rejected(engine, tmp_path, monkeypatch, basename,
                                                      match):
    """Defect 8: a NUL byte in a basename passed validation, and native save then wrote to
    the path cut at the NUL (an unrelated file)."""
    require(engine, op="save")
    t = small_table(engine)
    victim = tmp_path / "t"
    victim.write_bytes(b"unrelated")
    monkeypatch.chdir(tmp_path)
    for call in (lambda: t.save(basename), lambda: t.restore(basename)):
        with pytest.raises(ValueError, match=rf"basename.*{match}|{match}.*basename"):
            call()
    assert victim.read_bytes() == b"unrelated" and sorted(os.listdir(tmp_path)) == ["t"]


def test_directory_part_may_hold_spaces(engine, tmp_path):
    require(engine, op=("save", "restore"))
    t = small_table(engine)
    base = str(tmp_path / "my run" / "t")
    t.save(base)
    u = engine.create_table(engines.table_config(dim=2, optimizer=declared_optimizer(engine)))
    u.restore(base)
    assert u.size() == 3


@pytest.mark.parametrize("cfg", [dict(dim=2**26), dict(dim=2**26 - 2),
                                 dict(dim=2**25, optimizer="adagrad"),
                                 dict(segments=[dict(dim=2**25), dict(dim=2**25)])])
def test_entry_size_limit_is_the_native_one(engine, cfg):
    """Defect 11: numpy accepted dim=2**26, which native rejects (kMaxRowWords = 2**26 words
    per entry: embedding + optimizer state + id + timestamp)."""
    with pytest.raises(ValueError, match="too large|dim_size must be in"):
        engine.create_table(engines.table_config(**cfg))


def test_largest_entry_fits(numpy_engine):
    spec = parse_table_config(engines.table_config(dim=2**26 - 3))
    assert spec.dim == 2**26 - 3
