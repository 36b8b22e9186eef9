"""A call that fails inside an engine, after its arguments were accepted, changes nothing:
max_update_ts included (issue 11, defect 7: numpy, tensorflow and tfra advanced it before the
op ran). The failure is injected where each Python engine does its work; the native engines'
side is C++ (tests/native)."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.config import parse_table_config
from engines.reference.numpy_engine import NumpyTable
from engines.testing.helpers import ids, rows


def _out_of_memory(*args, **kwargs):
    raise MemoryError("injected")


CALLS = {
    "assign": lambda t: t.assign(ids(7, 8), rows([1, 1], [2, 2]), req_time=900),
    "assign_add": lambda t: t.assign_add(ids(7), rows([1, 1]), req_time=900),
    "apply_gradients": lambda t: t.apply_gradients(ids(7), rows([1, 1]), req_time=900),
    "apply_gradients dedup": lambda t: t.apply_gradients(ids(7, 7), rows([1, 1], [1, 1]),
                                                         req_time=900, enable_dedup=True),
}


def _table(engine):
    t = engine.create_table(engines.table_config(dim=2, optimizer="adagrad"))
    t.assign(ids(1), rows([3, 3]), req_time=100)
    return t


@pytest.mark.parametrize("call", sorted(CALLS))
def test_numpy_failed_call_keeps_max_update_ts(monkeypatch, call):
    t = _table(engines.get("numpy"))
    monkeypatch.setattr(NumpyTable, "_grow", _out_of_memory)      # inserting id 7 fails
    with pytest.raises(MemoryError):
        CALLS[call](t)
    assert t.max_update_ts == 100 and t.size() == 1


@pytest.mark.parametrize("call", sorted(CALLS))
def test_tensorflow_failed_call_keeps_max_update_ts(call):
    pytest.importorskip("tensorflow")
    t = _table(engines.get("tensorflow"))
    for fn in ("_assign_fn", "_assign_add_fn", "_apply_fn"):
        setattr(t, fn, _out_of_memory)
    with pytest.raises(MemoryError):
        CALLS[call](t)
    assert t.max_update_ts == 100 and t.size() == 1


def test_filtered_call_still_counts_its_time():
    """Every id filtered is a success: max_update_ts moves (docs/semantics.md §3)."""
    e = engines.get("numpy")
    f = e.create_hash_filter("sliding", capacity=300, split_num=7, occurrence_threshold=5)
    t = e.create_table(engines.table_config(dim=1), hash_filter=f)
    t.assign(ids(1), rows(1), req_time=50)
    t.apply_gradients(ids(2), rows(1), req_time=60)
    assert t.size() == 0 and t.max_update_ts == 60


def test_tfra_failed_call_keeps_max_update_ts():
    from engines.tfra.engine import TfraTable
    from engines.peer.protocol import WorkerDied

    class DeadClient:
        def request(self, *args, **kwargs):
            raise WorkerDied("the worker process exited")

        def alive(self):
            return False

        def forget_table(self, table_id):
            pass

    class Engine:
        name = "tfra"
        client = DeadClient()

    spec = parse_table_config(engines.table_config(dim=2))
    t = TfraTable(Engine(), spec, (0.1,), table_id=1)
    for call in (lambda: t.assign(ids(1), rows([1, 1]), req_time=5),
                 lambda: t.apply_gradients(ids(1), rows([1, 1]), req_time=5)):
        with pytest.raises(WorkerDied):
            call()
    assert t.max_update_ts == 0
