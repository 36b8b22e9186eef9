"""The "torchrec" peer engine against the numpy reference: storage ops bit for bit (fixed
vectors and hypothesis op sequences, across the table's rebuilds), SGD and Adagrad within their
declared divergences, its threads and its growth. Runs when the TorchRec venv exists
(`hashlab env create torchrec`); what every peer must do is in tests/peer/test_peer_tables.py."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engines
from engines.torchrec.engine import TorchrecEngine

try:
    TorchrecEngine.probe()
except engines.EngineUnavailable as exc:
    pytest.skip(f"torchrec unavailable: {exc.reason}", allow_module_level=True)

EXTREMES = [-2 ** 63, -1, 0, 2 ** 63 - 1]      # 2**63 - 1 is TorchRec's empty-slot marker


@pytest.fixture(scope="module")
def torchrec():
    return engines.get("torchrec", capacity=4)      # tiny: every test makes the table grow


def both(eng, lr=0.1, **cfg):
    config = engines.table_config(**cfg)
    return eng.create_table(config, learning_rates=(lr,)), \
        engines.get("numpy").create_table(config, learning_rates=(lr,))


def test_handshake_versions(torchrec):
    assert torchrec.versions["torch"].startswith("2.13.0")
    assert torchrec.versions["fbgemm_gpu"] == "1.8.0"
    assert torchrec.versions["torchrec"] == "1.8.0"


@pytest.mark.parametrize("dim", [1, 3, 4, 32])       # FBGEMM needs dim % 4 == 0: rows padded
def test_lookup_assign_size_exact(torchrec, dim):
    t, ref = both(torchrec, dim=dim, initializer="ones")
    ids = np.array([5, -7, 5, 2 ** 62] + EXTREMES, np.int64)
    vals = np.arange(len(ids) * dim, dtype=np.float32).reshape(len(ids), dim) / 7
    for table in (t, ref):
        assert table.size() == 0
        table.assign(ids, vals)
        table.assign_add(np.array([8, 8, 2 ** 63 - 1], np.int64),
                         np.ones((3, dim), np.float32))
    probe = np.array([5, -7, 2 ** 62, 8, 99, 12345] + EXTREMES, np.int64)
    np.testing.assert_array_equal(t.lookup(probe), ref.lookup(probe))   # missing id -> zeros
    assert t.size() == ref.size() == 8
    assert t.stats()["rebuilds"] >= 1                                  # capacity 4 -> grew


def test_missing_extreme_ids_read_zeros_and_insert_nothing(torchrec):
    t = torchrec.create_table(engines.table_config(dim=4, initializer="ones"))
    t.assign(np.array([1], np.int64), np.full((1, 4), 3, np.float32))
    out = t.lookup(np.array(EXTREMES + [1], np.int64))
    np.testing.assert_array_equal(out[:-1], 0)
    np.testing.assert_array_equal(out[-1], 3)
    assert t.size() == 1


def test_growth_keeps_every_row(torchrec):
    """Thousands of ids through a table that starts with room for 4: it rebuilds itself
    (TorchRec's module would evict instead), and no row moves or mixes."""
    t, ref = both(torchrec, dim=8)
    rng = np.random.default_rng(3)
    for _ in range(6):
        ids = rng.integers(-10 ** 6, 10 ** 6, 3000).astype(np.int64)
        vals = rng.standard_normal((3000, 8)).astype(np.float32)
        t.assign(ids, vals)
        ref.assign(ids, vals)
    probe = rng.integers(-10 ** 6, 10 ** 6, 5000).astype(np.int64)
    probe[:3000] = ids
    np.testing.assert_array_equal(t.lookup(probe), ref.lookup(probe))
    stats = t.stats()
    assert t.size() == ref.size() and stats["capacity"] >= t.size()
    assert stats["rebuilds"] >= 2                 # 4 -> 3,000 ids -> 18,000 ids


def test_threads_option_reaches_torch_in_a_worker_per_thread_count():
    one, two = engines.get("torchrec", threads=1), engines.get("torchrec", threads=2)
    again = engines.get("torchrec", threads=1)
    assert one.client is again.client and one.client is not two.client
    for eng, n in ((one, 1), (two, 2)):
        t = eng.create_table(engines.table_config(dim=4))
        t.lookup(np.arange(3, dtype=np.int64))
        assert t.stats()["threads"] == n
        assert t.stats()["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    with pytest.raises(ValueError, match="threads"):
        engines.get("torchrec", threads=0)
    with pytest.raises(ValueError, match="capacity"):
        engines.get("torchrec", capacity=0)


@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("opt,extra", [("sgd", {}),
                                       ("adagrad", {"initial_accumulator_value": 0.5}),
                                       ("adagrad", {"initial_accumulator_value": 0.5,
                                                    "weight_decay_factor": 0.1})],
                         ids=["sgd", "adagrad", "adagrad-wd"])
def test_optimizers_within_their_declared_divergence(torchrec, opt, extra, dedup):
    """After 20 steps of 2,000 gradients over 300 ids (about 130 updates per id): every value
    within the declared bound and the same ids in the table."""
    t, ref = both(torchrec, dim=6, optimizer=opt, initializer="ones", **extra)
    rng = np.random.default_rng(1)
    for step in range(20):
        ids = rng.integers(0, 300, 2000).astype(np.int64)
        g = rng.standard_normal((2000, 6)).astype(np.float32)
        t.apply_gradients(ids, g, enable_dedup=dedup)
        ref.apply_gradients(ids, g, enable_dedup=dedup)
    probe = np.arange(-5, 305, dtype=np.int64)
    a, b = t.lookup(probe), ref.lookup(probe)
    assert t.size() == ref.size() == 300
    np.testing.assert_array_equal(a == 0, b == 0)
    assert opt in torchrec.known_divergences
    bound = torchrec.divergence_bound
    declared = torchrec.known_divergences[opt]
    assert f"{bound:.0e}".replace("e-0", "e-") in declared.why
    assert (declared.max_rel, declared.abs_floor, declared.per_step) == (bound, bound, False)
    worst = float(np.max(np.abs(a - b) / np.maximum(1, np.abs(b))))
    assert worst <= bound, f"{opt}: {worst:.3g} beyond the declared {bound}"


def test_one_step_from_the_same_state_is_within_one_rounding(torchrec):
    """Where both start from the same bits, one step differs by at most the FMA's rounding:
    SGD at most 1 ulp of the result away (lr*g rounded or not)."""
    from engines.ulp import ulp_distance
    t, ref = both(torchrec, dim=32, optimizer="sgd", initializer="ones")
    rng = np.random.default_rng(7)
    ids = np.arange(4096, dtype=np.int64)
    g = rng.standard_normal((4096, 32)).astype(np.float32)
    t.apply_gradients(ids, g)
    ref.apply_gradients(ids, g)
    assert ulp_distance(t.lookup(ids), ref.lookup(ids)).max() <= 1


OPS = st.lists(st.tuples(st.sampled_from(["assign", "assign_add", "lookup", "size"]),
                         st.lists(st.integers(-6, 6) | st.sampled_from(EXTREMES),
                                  min_size=0, max_size=12)),
               min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, seed=st.integers(0, 2 ** 16))
def test_random_storage_sequences_match_numpy_exactly(torchrec, ops, seed):
    rng = np.random.default_rng(seed)
    t, ref = both(torchrec, dim=3, initializer="constants", constant=0.25)
    for op, id_list in ops:
        ids = np.array(id_list, np.int64)
        if op in ("assign", "assign_add"):
            vals = rng.standard_normal((len(ids), 3)).astype(np.float32)
            getattr(t, op)(ids, vals)
            getattr(ref, op)(ids, vals)
        elif op == "lookup":
            np.testing.assert_array_equal(t.lookup(ids), ref.lookup(ids))
        else:
            assert t.size() == ref.size()
    probe = np.array(list(range(-6, 7)) + EXTREMES, np.int64)
    np.testing.assert_array_equal(t.lookup(probe), ref.lookup(probe))
    assert t.size() == ref.size()


def test_a_worker_killed_mid_request_is_reported_and_replaced():
    eng = engines.get("torchrec", shared=False)
    t = eng.create_table(engines.table_config(dim=4))
    from engines.peer.protocol import WorkerDied
    with pytest.raises(WorkerDied, match="exit code 9"):
        t._call("crash", {"code": 9})
    with pytest.raises(WorkerDied, match="not running"):
        t.lookup(np.arange(2, dtype=np.int64))
    eng.close()
