"""The gate-power study's test-only engine (`lab.gate.slowdown`): tables answer exactly as the
wrapped engine's, and only `lookup` takes another path (any other difference would show up in
the study as a false regression of an op that did not change)."""
import weakref

import numpy as np
import pytest

import engines
import lab.gate.slowdown as slowdown

CONFIG = engines.table_config(dim=4, optimizer="adagrad")


def _pair(base: str):
    found = engines.info(base)
    if not found.available:             # e.g. no compiled module in this checkout
        pytest.skip(f"{base} unavailable: {found.reason}")
    return engines.get(base), engines.get(slowdown.NAME, base=base, fraction=0.25)


@pytest.mark.parametrize("base", ["numpy", "native-cpu"])
def test_slowed_tables_answer_like_the_base_engine(base):
    fast, slow = _pair(base)
    ids = np.arange(1, 401, dtype=np.int64)
    grads = np.linspace(-1, 1, 400 * 4, dtype=np.float32).reshape(400, 4)
    tables = [engine.create_table(CONFIG, seed=3) for engine in (fast, slow)]
    for t in tables:
        t.assign(ids, np.ones((400, 4), np.float32))
        t.apply_gradients(ids, grads)
    a, b = tables
    assert isinstance(b, type(a)) and type(b) is not type(a)
    np.testing.assert_array_equal(a.lookup(ids), b.lookup(ids))
    out = np.empty((400, 4), np.float32)
    assert b.lookup(ids, out=out) is out
    np.testing.assert_array_equal(out, a.lookup(ids))
    assert (a.size(), a.dim, a.num_segments) == (b.size(), b.dim, b.num_segments)
    assert a.lookup_entry(ids[:3]) == b.lookup_entry(ids[:3])


@pytest.mark.parametrize("base", ["numpy", "native-cpu"])
def test_only_lookup_takes_another_path(base):
    fast, slow = _pair(base)
    cls = type(fast.create_table(CONFIG))
    slowed_cls = type(slow.create_table(CONFIG))
    changed = [name for name in dir(cls) if getattr(slowed_cls, name) is not getattr(cls, name)
               and not name.startswith("__") and name != "_abc_impl"]   # ABC bookkeeping
    assert changed == ["lookup"]
    assert slowed_cls.slowdown_fraction == 0.25
    assert slowed_cls is type(slow.create_table(CONFIG))        # one subclass per class


def test_tracked_tables_are_refused():
    fast, _ = _pair("numpy")
    table = fast.create_table(CONFIG)
    ref = weakref.ref(table)                    # someone holds a reference the copy would lose
    with pytest.raises(ValueError, match="table: .* cannot be slowed down"):
        slowdown.slowed(table, 0.25)
    assert ref() is table


def test_lookup_does_the_extra_work(monkeypatch):
    fast, slow = _pair("numpy")
    table = slow.create_table(CONFIG)
    base_cls = type(fast.create_table(CONFIG))
    batches = []
    real = base_cls._lookup
    monkeypatch.setattr(base_cls, "_lookup",
                        lambda self, ids: batches.append(len(ids)) or real(self, ids))
    table.lookup(np.arange(1, 101, dtype=np.int64))
    assert batches == [100, 25]
