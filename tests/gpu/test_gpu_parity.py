"""native-gpu against the numpy reference (and bit-for-bit against native-cpu, which runs the
same opt_math/init_math headers): every optimizer, multi-segment entries, duplicates with and
without dedup, growth, filters, TTL and checkpoint bytes."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.protos import embedding_hash_table_pb2 as pb

OPTIMIZERS = sorted(engines.api.OPTIMIZERS)


def assert_ulp_close(got, want, ulps=4):
    """semantics §4: within 4 ulp, with an absolute floor of 1e-12 near zero."""
    got = np.asarray(got, np.float32)
    want = np.asarray(want, np.float32)
    assert got.shape == want.shape
    spacing = np.spacing(np.abs(want).astype(np.float32))
    bad = np.abs(got.astype(np.float64) - want) > np.maximum(ulps * spacing, 1e-12)
    bad &= ~(np.isnan(got) & np.isnan(want))
    assert not bad.any(), (np.argwhere(bad)[:5], got[bad][:5], want[bad][:5])


def cpu_engine():
    try:
        return engines.get("native-cpu", threads=2)
    except engines.EngineUnavailable:
        return None


def batches(rng, n_batches=3, n=300, id_range=60, dim=4):
    for _ in range(n_batches):
        ids = rng.integers(-id_range, id_range, n).astype(np.int64)
        ids[:5] = [-2**63, 2**63 - 1, 1 << 48, 0, 0]
        yield ids, rng.standard_normal((n, dim)).astype(np.float32)


def run(engine, cfg, ops, **kw):
    t = engine.create_table(cfg, **kw)
    for op, ids, rows, extra in ops:
        getattr(t, op)(ids, rows, **extra)
    return t


def build_ops(rng, dim, dedup):
    ops = []
    for k, (ids, grads) in enumerate(batches(rng, dim=dim)):
        ops.append(("apply_gradients", ids, grads,
                    dict(enable_dedup=dedup, global_step=k + 1, req_time=100 + k)))
    return ops


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dim", [1, 8, 13])
@pytest.mark.parametrize("dedup", [False, True])
def test_optimizer_matches_reference(gpu, ref, optimizer, dim, dedup):
    rng = np.random.default_rng(dim * 31 + dedup)
    if optimizer == "batch_softmax":
        dim = 1
    cfg = engines.table_config(dim=dim, optimizer=optimizer, initializer="random_uniform",
                               minval=-0.5, maxval=0.5)
    ops = build_ops(rng, dim, dedup)
    g = run(gpu, cfg, ops, learning_rates=(0.05,), seed=7)
    r = run(ref, cfg, ops, learning_rates=(0.05,), seed=7)
    probe = np.unique(np.concatenate([o[1] for o in ops]))
    assert g.size() == r.size()
    assert_ulp_close(g.lookup(probe), r.lookup(probe))
    cpu = cpu_engine()
    if cpu is not None:
        c = run(cpu, cfg, ops, learning_rates=(0.05,), seed=7)
        assert g.lookup_entry(probe) == c.lookup_entry(probe)


@pytest.mark.parametrize("quirks", [False, True])
def test_multi_segment_with_compressors(gpu, ref, quirks):
    segments = [dict(dim=1, optimizer="ftrl"),
                dict(dim=9, optimizer="adagrad", weight_decay_factor=0.1,
                     initializer="random_uniform", minval=-1, maxval=1),
                dict(dim=5, optimizer="adam", compressor="fixed_r8", r=2.0),
                dict(dim=4, optimizer="group_adagrad", l2_regularization_strength=0.01),
                dict(dim=3, optimizer="amsgrad", compressor="one_bit", step_size=2),
                dict(dim=1, optimizer="batch_softmax")]
    cfg = engines.table_config(segments=segments)
    lrs = (0.1, 0.2, 0.01, 0.3, 0.05, 0.5)
    rng = np.random.default_rng(3)
    ops = []
    for k, (ids, grads) in enumerate(batches(rng, n_batches=4, dim=23)):
        ops.append(("apply_gradients", ids, grads,
                    dict(enable_dedup=bool(k % 2), global_step=k, req_time=k)))
    g = run(gpu, cfg, ops, learning_rates=lrs, seed=11, monolith_quirks=quirks)
    r = run(ref, cfg, ops, learning_rates=lrs, seed=11, monolith_quirks=quirks)
    probe = np.unique(np.concatenate([o[1] for o in ops]))
    assert_ulp_close(g.lookup(probe), r.lookup(probe), ulps=16)


@pytest.mark.parametrize("op", ["assign", "assign_add"])
def test_storage_ops_bit_exact(gpu, ref, op):
    rng = np.random.default_rng(5)
    cfg = engines.table_config(dim=6, initializer="random_uniform", minval=-3, maxval=3)
    ops = [(op, ids, vals, dict(req_time=k)) for k, (ids, vals) in
           enumerate(batches(rng, dim=6))]
    g, r = run(gpu, cfg, ops, seed=123), run(ref, cfg, ops, seed=123)
    probe = np.unique(np.concatenate([o[1] for o in ops]))
    np.testing.assert_array_equal(g.lookup(probe), r.lookup(probe))
    assert g.lookup_entry(probe) == r.lookup_entry(probe)
    assert g.max_update_ts == r.max_update_ts


def test_lookup_missing_zero_and_no_insert(gpu):
    t = gpu.create_table(engines.table_config(dim=5, initializer="ones"))
    out = t.lookup(np.array([1, 2, 2], np.int64))
    np.testing.assert_array_equal(out, np.zeros((3, 5), np.float32))
    assert t.size() == 0


def test_growth_past_many_rehashes(gpu):
    t = gpu.create_table(engines.table_config(dim=3))
    ids = np.random.default_rng(0).permutation(200_000).astype(np.int64) * 7919 - 10**6
    for part in np.array_split(ids, 13):
        t.assign(part, np.repeat(part.astype(np.float32)[:, None], 3, axis=1))
    assert t.size() == len(ids)
    got = t.lookup(ids)
    np.testing.assert_array_equal(got[:, 0], ids.astype(np.float32))
    assert t.memory_bytes() > 0


def test_large_duplicate_batch_matches_cpu(gpu, ref):
    rng = np.random.default_rng(9)
    ids = (rng.zipf(1.3, 200_000) % 5000).astype(np.int64)
    grads = rng.standard_normal((len(ids), 32)).astype(np.float32)
    cfg = engines.table_config(dim=32, optimizer="adagrad")
    for dedup in (False, True):
        g = gpu.create_table(cfg)
        g.apply_gradients(ids, grads, enable_dedup=dedup)
        cpu = cpu_engine() or ref
        c = cpu.create_table(cfg)
        c.apply_gradients(ids, grads, enable_dedup=dedup)
        probe = np.unique(ids)
        if cpu is ref:
            assert_ulp_close(g.lookup(probe), c.lookup(probe))
        else:
            np.testing.assert_array_equal(g.lookup(probe), c.lookup(probe))


@pytest.mark.parametrize("kind", ["sliding", "probabilistic"])
@pytest.mark.parametrize("dedup", [False, True])
def test_filters_admit_like_reference(gpu, ref, kind, dedup):
    rng = np.random.default_rng(1)
    cfg = engines.table_config(dim=2)
    opts = dict(kind=kind, capacity=1000, split_num=7, occurrence_threshold=2, seed=5)
    try:
        fg = gpu.create_hash_filter(**opts)
    except engines.EngineUnavailable as exc:
        pytest.skip(f"filters need the CPU module: {exc.reason}")
    fr = ref.create_hash_filter(**opts)
    g = gpu.create_table(cfg, hash_filter=fg)
    r = ref.create_table(cfg, hash_filter=fr)
    for k in range(4):
        ids = rng.integers(0, 40, 50).astype(np.int64)
        grads = rng.integers(-4, 4, (50, 2)).astype(np.float32)
        g.apply_gradients(ids, grads, enable_dedup=dedup, req_time=k)
        r.apply_gradients(ids, grads, enable_dedup=dedup, req_time=k)
        g.assign_add(ids[:10], grads[:10])
        r.assign_add(ids[:10], grads[:10])
    probe = np.arange(40, dtype=np.int64)
    assert g.size() == r.size()
    np.testing.assert_array_equal(g.lookup(probe), r.lookup(probe))


def test_checkpoint_bytes_ttl_and_restore(gpu, ref, tmp_path):
    cfg = engines.table_config(dim=3, optimizer="adam", expire_days=1,
                               slot_expire_days={1: 100})
    ids = np.array([5, (1 << 48) | 5, 9, (1 << 48) | 9, -4], np.int64)
    vals = np.arange(15, dtype=np.float32).reshape(5, 3)
    tables = []
    for eng in (gpu, ref):
        t = eng.create_table(cfg, learning_rates=(0.01,))
        t.assign(ids, vals, req_time=0)
        t.apply_gradients(ids[:2], vals[:2] / 7, req_time=2 * 86400)
        tables.append(t)
    paths_g = tables[0].save(str(tmp_path / "g"), nshards=3)
    paths_r = tables[1].save(str(tmp_path / "r"), nshards=3)
    for pg, pr in zip(paths_g, paths_r):
        assert open(pg, "rb").read() == open(pr, "rb").read()
    back = gpu.create_table(cfg, learning_rates=(0.01,))
    back.restore(str(tmp_path / "r"))
    # TTL (max_update_ts = 2 days): slot 1 lives 100 days, the others 1 day unless rewritten
    kept = np.array([5, (1 << 48) | 5, (1 << 48) | 9], np.int64)
    assert back.size() == 3
    assert back.lookup_entry(kept) == tables[0].lookup_entry(kept)
    dumps = tables[0].save_as_tensor(0, 1, 100, 0)[1]
    assert sorted(pb.EntryDump.FromString(d).id for d in dumps) == sorted(ids.tolist())
    assert tables[0].save_as_tensor(1, 2, 2, 0) == tables[1].save_as_tensor(1, 2, 2, 0)


def test_bad_checkpoint_leaves_table(gpu, tmp_path):
    t = gpu.create_table(engines.table_config(dim=2))
    t.assign(np.arange(4, dtype=np.int64), np.ones((4, 2), np.float32))
    t.save(str(tmp_path / "c"), nshards=1)
    path = tmp_path / "c-00000-of-00001"
    data = bytearray(path.read_bytes())
    data[-2] ^= 1
    path.write_bytes(bytes(data))
    v = gpu.create_table(engines.table_config(dim=2))
    v.assign(np.array([77], np.int64), np.full((1, 2), 3, np.float32))
    with pytest.raises(engines.CheckpointError, match="record 3"):
        v.restore(str(tmp_path / "c"))
    assert v.size() == 1
