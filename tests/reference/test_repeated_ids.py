"""The numpy reference with ids that repeat many times (issue 11, defect 11: it was quadratic
in how often one id repeats). The batched rounds must give exactly the bits of applying every
occurrence on its own, in order (docs/semantics.md §3), and assign/assign_add no longer run
one round per repeat."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engines
from engines.reference.numpy_engine import NumpyTable, occurrence_rounds

OPTIMIZERS = ["sgd", "adagrad", "ftrl", "adam", "momentum", "rmsprop"]


def _table(optimizer, dim=3):
    return engines.get("numpy").create_table(
        engines.table_config(dim=dim, optimizer=optimizer, initializer="random_uniform"),
        learning_rates=(0.05,))


def _batch(draw):
    n = draw(st.integers(1, 60))
    keys = np.array(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), np.int64)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    values = np.array(draw(st.lists(st.floats(-1, 1, width=32), min_size=3 * n,
                                    max_size=3 * n)), np.float32).reshape(n, 3) * \
        np.float32(scale)
    return keys, values


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batched_writes_equal_one_occurrence_at_a_time(data):
    keys, values = _batch(data.draw)
    op = data.draw(st.sampled_from(["assign", "assign_add"]))
    batched, single = _table("sgd"), _table("sgd")
    getattr(batched, op)(keys, values, req_time=9)
    for k in range(len(keys)):
        getattr(single, op)(keys[k:k + 1], values[k:k + 1], req_time=9)
    probe = np.arange(-3, 4, dtype=np.int64)
    assert batched.lookup_entry(probe) == single.lookup_entry(probe)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batched_steps_equal_one_occurrence_at_a_time(data):
    keys, grads = _batch(data.draw)
    optimizer = data.draw(st.sampled_from(OPTIMIZERS))
    dedup = data.draw(st.booleans())
    batched, single = _table(optimizer), _table(optimizer)
    batched.apply_gradients(keys, grads, enable_dedup=dedup, req_time=4, global_step=3)
    if dedup:      # one step per id, first-occurrence order, f32 sum in occurrence order
        order = list(dict.fromkeys(keys.tolist()))
        for key in order:
            total = None
            for k in np.flatnonzero(keys == key):
                total = grads[k].copy() if total is None else total + grads[k]
            single.apply_gradients(np.array([key], np.int64), total[None, :], req_time=4,
                                   global_step=3)
    else:
        for k in range(len(keys)):
            single.apply_gradients(keys[k:k + 1], grads[k:k + 1], req_time=4, global_step=3)
    probe = np.arange(-3, 4, dtype=np.int64)
    assert batched.lookup_entry(probe) == single.lookup_entry(probe)


def test_occurrence_rounds():
    rounds = occurrence_rounds(np.array([5, 7, 5, 5, 9, 7], np.int64))
    assert [r.tolist() for r in rounds] == [[0, 1, 4], [2, 5], [3]]
    assert occurrence_rounds(np.array([], np.int64)) == []


@pytest.mark.parametrize("op", ["assign", "assign_add"])
def test_writes_do_not_loop_over_repeats(monkeypatch, op):
    """One id 1000 times: one upsert, not one per repeat (the old rounds loop also scanned
    the whole batch in each of its 1000 rounds)."""
    calls = []
    real = NumpyTable._upsert_rows
    monkeypatch.setattr(NumpyTable, "_upsert_rows",
                        lambda self, ids: calls.append(len(ids)) or real(self, ids))
    t = _table("sgd")
    getattr(t, op)(np.full(1000, 3, np.int64), np.ones((1000, 3), np.float32))
    assert calls == [1]
