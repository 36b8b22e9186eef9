"""Bad input raises a clear error naming the argument, and the table is unchanged
(docs/semantics.md §8). Non-finite values and gradients are rejected by every engine. The
checks live once, in engines/api.py and engines/validation.py, so every engine raises the
numpy reference's exception type with its very message (issue 20, row 6)."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.testing.helpers import declared_optimizer, ids, require, rows, small_table, snapshot

pytestmark = pytest.mark.conformance_area("bad input")


@pytest.fixture
def table(engine):
    return small_table(engine)


GOOD_IDS = ids(1, 4)
GOOD_ROWS = rows([1, 1], [2, 2])

BAD_CALLS = {
    "ids int32": (lambda t: t.assign(GOOD_IDS.astype(np.int32), GOOD_ROWS), TypeError, "ids"),
    "ids float": (lambda t: t.assign_add(GOOD_IDS.astype(np.float64), GOOD_ROWS), TypeError,
                  "ids"),
    "ids 2-D": (lambda t: t.lookup(GOOD_IDS.reshape(2, 1)), ValueError, "ids"),
    "ids not array": (lambda t: t.lookup("12"), TypeError, "ids"),
    "values float64": (lambda t: t.assign(GOOD_IDS, GOOD_ROWS.astype(np.float64)), TypeError,
                       "values"),
    "values width": (lambda t: t.assign_add(GOOD_IDS, np.ones((2, 3), np.float32)), ValueError,
                     "values"),
    "values rows": (lambda t: t.assign(GOOD_IDS, np.ones((3, 2), np.float32)), ValueError,
                    "values"),
    "values NaN": (lambda t: t.assign(GOOD_IDS, rows([1, np.nan], [2, 2])), ValueError,
                   "values.*non-finite.*row 0"),
    "values Inf": (lambda t: t.assign_add(GOOD_IDS, rows([1, 1], [np.inf, 2])), ValueError,
                   "values.*non-finite.*row 1"),
    "grads NaN": (lambda t: t.apply_gradients(GOOD_IDS, rows([1, 1], [np.nan, 0])), ValueError,
                  "grads.*non-finite"),
    "grads dtype": (lambda t: t.apply_gradients(GOOD_IDS, GOOD_ROWS.astype(np.float16)),
                    TypeError, "grads"),
    "grads width": (lambda t: t.apply_gradients(GOOD_IDS, np.ones((2, 1), np.float32)),
                    ValueError, "grads"),
    "lr count": (lambda t: t.apply_gradients(GOOD_IDS, GOOD_ROWS, learning_rates=[0.1, 0.2]),
                 ValueError, "learning_rates"),
    "lr nan": (lambda t: t.apply_gradients(GOOD_IDS, GOOD_ROWS, learning_rates=[np.nan]),
               ValueError, "learning_rates"),
    "dedup not bool": (lambda t: t.apply_gradients(GOOD_IDS, GOOD_ROWS, enable_dedup=1),
                       TypeError, "enable_dedup"),
    "req_time float": (lambda t: t.assign(GOOD_IDS, GOOD_ROWS, req_time=1.5), TypeError,
                       "req_time"),
    "global_step str": (lambda t: t.apply_gradients(GOOD_IDS, GOOD_ROWS, global_step="1"),
                        TypeError, "global_step"),
    "nshards 0": (lambda t: t.save("/tmp/never-written", nshards=0), ValueError, "nshards"),
    "nshards huge": (lambda t: t.save("/tmp/never-written", nshards=100_000), ValueError,
                     r"nshards must be -1 \(automatic\) or in \[1, 99999\]"),
    "nshards -2": (lambda t: t.save("/tmp/never-written", nshards=-2), ValueError, "nshards"),
    "basename empty": (lambda t: t.save(""), TypeError, "basename"),
    "basename dir": (lambda t: t.restore("/tmp/"), ValueError, "basename"),
    "sat shard": (lambda t: t.save_as_tensor(3, 2, 10, 0), ValueError, "shard_idx"),
    "sat limit": (lambda t: t.save_as_tensor(0, 1, 0, 0), ValueError, "limit"),
    "sat offset": (lambda t: t.save_as_tensor(0, 1, 10, -1), ValueError, "offset"),
    "sat shards": (lambda t: t.save_as_tensor(0, 0, 10, 0), ValueError, "num_shards"),
    "sat offset 2**63": (lambda t: t.save_as_tensor(0, 1, 10, 2**63), ValueError,
                         r"offset must be in \[0, 2\*\*63 - 1\]"),
    "sat limit 2**63": (lambda t: t.save_as_tensor(0, 1, 2**63, 0), ValueError, "limit"),
    "sat shards 2**31": (lambda t: t.save_as_tensor(0, 2**31, 10, 0), ValueError,
                         r"num_shards must be in \[1, 2\*\*31 - 1\]"),
    "sat shard float": (lambda t: t.save_as_tensor(0.0, 1, 10, 0), TypeError, "shard_idx"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_names_argument_and_changes_nothing(engine, numpy_engine, table, case):
    call, exc_type, pattern = BAD_CALLS[case]
    before = snapshot(table)
    with pytest.raises(exc_type, match=pattern) as got:
        call(table)
    assert snapshot(table) == before
    with pytest.raises(Exception) as ref:
        call(small_table(numpy_engine, declared_optimizer(engine)))
    assert (type(got.value), str(got.value)) == (type(ref.value), str(ref.value))


@pytest.mark.parametrize("kind,capacity", [
    ("sliding", 10**12), ("sliding", 2**63), ("sliding", 0), ("sliding", -1), ("sliding", 1.5),
    ("probabilistic", 2**63), ("dummy", 0), ("dummy", True)])
def test_filter_capacity_out_of_range_is_one_error_everywhere(engine, numpy_engine, kind,
                                                              capacity):
    """Issue 20, row 6: numpy tried to allocate 373 GiB for capacity 10**12, the native
    engine said "capacity is too large", and 2**63 was a TypeError from the bindings."""
    errors = []
    for eng in (engine, numpy_engine):
        with pytest.raises((ValueError, TypeError), match="capacity") as got:
            eng.create_hash_filter(kind, capacity=capacity)
        errors.append((type(got.value), str(got.value)))
    assert errors[0] == errors[1]


def test_empty_batches_work(table):
    empty_ids = np.empty(0, np.int64)
    empty_rows = np.empty((0, 2), np.float32)
    before = snapshot(table)
    assert table.lookup(empty_ids).shape == (0, 2)
    if "lookup_entry" in table.capabilities.ops:
        assert table.lookup_entry(empty_ids) == []
    table.assign(empty_ids, empty_rows)
    table.apply_gradients(empty_ids, empty_rows, enable_dedup=table.capabilities.dedup)
    assert snapshot(table)[:3] == before[:3]


def test_flat_rows_are_accepted(table):
    table.assign(ids(9), np.array([1.5, 2.5], np.float32))
    np.testing.assert_array_equal(table.lookup(ids(9)), rows([1.5, 2.5]))


def test_non_contiguous_inputs_are_accepted(table):
    wide = np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::3]      # strided view
    table.assign(np.array([20, 0, 21], np.int64)[::2], wide)
    np.testing.assert_array_equal(table.lookup(ids(20, 21)), wide)


@pytest.mark.parametrize("bad", [dict(optimizer="adagradd"), dict(initializer="gauss"),
                                 dict(compressor="int4"), dict(bogus_field=1.0)])
def test_config_builder_names_the_bad_argument(bad):
    word = next(iter(bad.values())) if "bogus_field" not in bad else "bogus_field"
    with pytest.raises(ValueError, match=str(word)):
        engines.table_config(dim=4, **bad)


def test_create_table_rejects_bad_config(engine):
    with pytest.raises(TypeError, match="config"):
        engine.create_table({"dim": 4})
    with pytest.raises(ValueError, match="config"):
        engine.create_table(b"\xff\xff not a proto")
    with pytest.raises(ValueError, match="learning_rates"):
        engine.create_table(engines.table_config(dim=4), learning_rates=(0.1, 0.2))


def test_batch_softmax_negative_step(engine):
    require(engine, optimizer="batch_softmax")
    t = engine.create_table(engines.table_config(dim=1, optimizer="batch_softmax"))
    with pytest.raises(ValueError, match="global_step"):
        t.apply_gradients(ids(1), rows(1), global_step=-1)
    assert t.size() == 0


def test_unknown_engine_and_unknown_option():
    with pytest.raises(ValueError, match="unknown engine"):
        engines.get("no-such-engine")


def test_filter_from_another_kind_is_rejected(engine):
    with pytest.raises(TypeError, match="hash_filter"):
        engine.create_table(engines.table_config(dim=1), hash_filter=object())
