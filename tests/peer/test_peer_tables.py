"""What every peer engine must do, on each peer whose venv exists (`hashlab env create NAME`):
Monolith's Adagrad vector, refusing what it does not declare (before anything reaches the
worker, the table unchanged), and the worker's own error message on a failed op."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.tfra.engine import TfraEngine
from engines.torchrec.engine import TorchrecEngine


def _peer(cls):
    try:
        cls.probe()
    except engines.EngineUnavailable as exc:
        return pytest.param(cls.name, marks=pytest.mark.skip(
            reason=f"{cls.name} unavailable: {exc.reason}"))
    return cls.name


@pytest.fixture(scope="module", params=[_peer(TfraEngine), _peer(TorchrecEngine)])
def peer(request):
    return engines.get(request.param)


def test_monolith_adagrad_vector(peer):
    t = peer.create_table(engines.table_config(dim=2, optimizer="adagrad",
                                               initial_accumulator_value=1.0),
                          learning_rates=(0.1,))
    t.apply_gradients(np.array([7], np.int64), np.array([[1, 2]], np.float32))
    np.testing.assert_allclose(t.lookup(np.array([7], np.int64)),
                               [[-0.07071067, -0.08944272]], atol=1e-6)


def test_undeclared_is_refused(peer):
    with pytest.raises(ValueError, match="optimizer"):
        peer.create_table(engines.table_config(dim=2, optimizer="ftrl"))
    with pytest.raises(ValueError, match="monolith_quirks"):
        peer.create_table(engines.table_config(dim=2), monolith_quirks=True)
    t = peer.create_table(engines.table_config(dim=2))
    t.assign(np.array([1], np.int64), np.ones((1, 2), np.float32))
    with pytest.raises(NotImplementedError, match=f"'{peer.name}' does not declare save \\("):
        t.save("/tmp/never")
    with pytest.raises(NotImplementedError, match="restore"):
        t.restore("/tmp/never")
    with pytest.raises(ValueError, match="grads"):              # validated on our side
        t.apply_gradients(np.array([1], np.int64), np.array([[np.nan, 0]], np.float32))
    assert t.size() == 1
    np.testing.assert_array_equal(t.lookup(np.array([1], np.int64)), [[1, 1]])


def test_worker_errors_surface_with_their_message(peer):
    t = peer.create_table(engines.table_config(dim=1))
    with pytest.raises(RuntimeError, match=f"{peer.label} failed 'explode'.*unknown op"):
        t._call("explode")
