"""The "tfra" peer engine against the numpy reference: lookup, assign, size, SGD, Adagrad.
Runs when the TFRA venv exists (`hashlab env create tfra`); what every peer must do is in
tests/peer/test_peer_tables.py."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.tfra.engine import TfraEngine

try:
    TfraEngine.probe()
except engines.EngineUnavailable as exc:
    pytest.skip(f"tfra unavailable: {exc.reason}", allow_module_level=True)


@pytest.fixture(scope="module")
def tfra():
    return engines.get("tfra")


def both(tfra, **cfg):
    config = engines.table_config(**cfg)
    lr = (0.1,)
    return tfra.create_table(config, learning_rates=lr), \
        engines.get("numpy").create_table(config, learning_rates=lr)


def test_handshake_versions(tfra):
    assert tfra.versions["tf"] == "2.16.2" and tfra.versions["tfra"] == "0.8.1"


def test_lookup_assign_size(tfra):
    t, ref = both(tfra, dim=3, initializer="ones")
    ids = np.array([5, -7, 5, 2 ** 62], np.int64)
    vals = np.arange(12, dtype=np.float32).reshape(4, 3)
    for table in (t, ref):
        assert table.size() == 0
        table.assign(ids, vals)
        table.assign_add(np.array([8, 8], np.int64), np.ones((2, 3), np.float32))
    probe = np.array([5, -7, 2 ** 62, 8, 99], np.int64)
    np.testing.assert_array_equal(t.lookup(probe), ref.lookup(probe))   # missing id -> zeros
    assert t.size() == ref.size() == 4


@pytest.mark.parametrize("dedup", [False, True])
def test_sgd_matches_reference_exactly(tfra, dedup):
    t, ref = both(tfra, dim=4, optimizer="sgd")
    rng = np.random.default_rng(0)
    for _ in range(3):
        ids = rng.integers(0, 20, 60).astype(np.int64)
        g = rng.standard_normal((60, 4)).astype(np.float32)
        t.apply_gradients(ids, g, enable_dedup=dedup)
        ref.apply_gradients(ids, g, enable_dedup=dedup)
    probe = np.arange(20, dtype=np.int64)
    np.testing.assert_array_equal(t.lookup(probe), ref.lookup(probe))
    assert t.last_worker_seconds > 0 and t.last_ipc_seconds >= 0


@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adagrad_matches_within_its_declared_divergence(tfra, dedup, wd):
    t, ref = both(tfra, dim=4, optimizer="adagrad", initial_accumulator_value=0.5,
                  weight_decay_factor=wd, initializer="ones")
    rng = np.random.default_rng(1)
    for _ in range(3):
        ids = rng.integers(0, 20, 60).astype(np.int64)
        g = rng.standard_normal((60, 4)).astype(np.float32)
        t.apply_gradients(ids, g, enable_dedup=dedup)
        ref.apply_gradients(ids, g, enable_dedup=dedup)
    probe = np.arange(20, dtype=np.int64)
    np.testing.assert_allclose(t.lookup(probe), ref.lookup(probe), rtol=1e-5, atol=1e-7)
    assert "adagrad" in tfra.known_divergences
