"""Native-engine specifics: registration, checksums and hashes, filters against the reference,
and checkpoint files byte-identical to the numpy engine's."""
from __future__ import annotations

import os

import numpy as np
import pytest

import engines
from engines.native.cpu import native_module
from engines.native.cpu import NativeCpuEngine

# The compiled engine is part of every install: its absence is an error, never a skip
# (a CI run must fail when the native build silently failed; tests/native/test_build.py).
native = native_module()


def test_crc32c_check_value():
    assert native.crc32c(b"123456789") == 0xE3069283
    assert native.crc32c_portable(b"123456789") == 0xE3069283
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 8, 9, 63, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert native.crc32c(data) == native.crc32c_portable(data)


def test_fixed_hashes():
    assert native.filter_hash(1) == 0x6B84C9315B43B64F
    assert native.filter_hash(3 << 17) == 0x49DA6EE976BAAE65
    from engines.formats.shards import mix64
    for x in (0, 1, -1, 1 << 62, -(1 << 63)):
        assert native.mix64(x) == int(mix64(np.array([x], np.int64))[0])


def test_registry_and_threads_argument():
    info = {i.name: i for i in engines.available()}["native-cpu"]
    assert info.available and info.capabilities.threads
    assert engines.get("native-cpu").threads == (os.cpu_count() or 1)
    assert engines.get("native-cpu", threads=3).threads == 3
    for bad in (0, -2):
        with pytest.raises(ValueError, match="threads"):
            engines.get("native-cpu", threads=bad)
    with pytest.raises(TypeError, match="threads"):
        engines.get("native-cpu", threads=1.5)
    NativeCpuEngine.probe()


def test_filter_from_another_engine_is_rejected():
    f = engines.get("numpy").create_hash_filter("sliding", capacity=300)
    with pytest.raises(TypeError, match="hash_filter.*another engine"):
        engines.get("native-cpu").create_table(engines.table_config(dim=2), hash_filter=f)


def _filter_pair(**kw):
    return (engines.get("numpy").create_hash_filter(**kw),
            engines.get("native-cpu", threads=1).create_hash_filter(**kw))


@pytest.mark.parametrize("kw", [
    dict(kind="sliding", capacity=300, split_num=5, occurrence_threshold=3),
    dict(kind="sliding", capacity=600, split_num=7, occurrence_threshold=2,
         slot_occurrence_thresholds={1: 0, 2: 9}),
    dict(kind="probabilistic", occurrence_threshold=3, seed=7),
    dict(kind="probabilistic", occurrence_threshold=4, equal_probability=True, seed=0),
    dict(kind="dummy"),
])
def test_filters_match_reference(kw, tmp_path):
    ref, nat = _filter_pair(**kw)
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 3000, 4000) | (rng.integers(0, 3, 4000) << 48)
    for fid, count, in_table in zip(ids.tolist(), rng.integers(1, 4, 4000).tolist(),
                                    rng.choice([None, False, True], 4000).tolist()):
        assert ref.should_be_filtered(fid, count, in_table) == \
            nat.should_be_filtered(fid, count, in_table)
    assert ref.estimated_total_element() == nat.estimated_total_element()
    assert ref.failure_count() == nat.failure_count()
    probe = ids[:200].tolist()
    assert [ref.get(i) for i in probe] == [nat.get(i) for i in probe]
    grads = rng.standard_normal((50, 3)).astype(np.float32)
    np.testing.assert_array_equal(ref.intercept_gradient(ids[:50], grads),
                                  nat.intercept_gradient(ids[:50], grads))
    if kw["kind"] == "sliding":
        ra = ref.save(str(tmp_path / "ref"))
        na = nat.save(str(tmp_path / "nat"))
        assert [open(p, "rb").read() for p in ra] == [open(p, "rb").read() for p in na]
        # Cross-restore: each engine reads the other's files and ends in the same state.
        ref2, nat2 = _filter_pair(**kw)
        ref2.restore(str(tmp_path / "nat"))
        nat2.restore(str(tmp_path / "ref"))
        assert [ref2.get(i) for i in probe] == [nat2.get(i) for i in probe] == \
            [ref.get(i) for i in probe]


def _random_table_pair(tmp_path, optimizer, n, seed, **cfg):
    config = engines.table_config(dim=4, optimizer=optimizer, initializer="random_uniform",
                                  **cfg)
    tables = [engines.get("numpy").create_table(config, seed=seed),
              engines.get("native-cpu", threads=2).create_table(config, seed=seed)]
    rng = np.random.default_rng(seed)
    ids = rng.integers(-(1 << 62), 1 << 62, n)
    ids = np.concatenate([ids, ids[: n // 3]])
    grads = rng.standard_normal((len(ids), 4)).astype(np.float32)
    for t in tables:
        t.assign_add(ids[: n // 2], grads[: n // 2], req_time=86400 * 3)
        t.apply_gradients(ids, grads, global_step=5, enable_dedup=True, req_time=86400 * 5)
    return tables


@pytest.mark.parametrize("optimizer", sorted(engines.api.OPTIMIZERS))
def test_save_files_byte_identical_to_numpy(optimizer, tmp_path):
    tables = _random_table_pair(tmp_path, optimizer, 300, 11, expire_days=1)
    for nshards in (-1, 3):
        out = [t.save(str(tmp_path / f"{name}-{nshards}"), nshards)
               for t, name in zip(tables, ("np", "nat"))]
        assert len(out[0]) == len(out[1])
        for a, b in zip(*out):
            assert open(a, "rb").read() == open(b, "rb").read(), (optimizer, a)
    sat = [t.save_as_tensor(1, 3, 1000, 0) for t in tables]
    assert sat[0] == sat[1]


def test_save_removes_stale_shards_and_temp_files(tmp_path):
    t = engines.get("native-cpu", threads=2).create_table(engines.table_config(dim=2))
    t.assign(np.arange(10, dtype=np.int64), np.ones((10, 2), np.float32))
    base = str(tmp_path / "t")
    t.save(base, 3)
    paths = t.save(base, 2)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(p) for p in paths] + ["t.manifest"])
    u = engines.get("native-cpu", threads=1).create_table(engines.table_config(dim=2))
    u.restore(base)
    assert u.lookup_entry(np.arange(12, dtype=np.int64)) == \
        t.lookup_entry(np.arange(12, dtype=np.int64))


def test_corrupt_checkpoint_names_file_and_record_and_keeps_table(tmp_path):
    eng = engines.get("native-cpu", threads=2)
    t = eng.create_table(engines.table_config(dim=3, optimizer="adagrad"))
    t.assign(np.arange(50, dtype=np.int64), np.ones((50, 3), np.float32))
    base = str(tmp_path / "c")
    (path,) = t.save(base, 1)
    data = bytearray(open(path, "rb").read())
    u = eng.create_table(engines.table_config(dim=3, optimizer="adagrad"))
    u.assign(np.array([7], np.int64), np.full((1, 3), 2, np.float32), req_time=9)
    before = (u.size(), u.lookup_entry(np.arange(60, dtype=np.int64)), u.max_update_ts)
    rec = len(data) // 50
    for mutate, pattern in ((lambda d: d.__setitem__(rec * 3 + 20, d[rec * 3 + 20] ^ 1),
                             r"record 3: payload CRC"),
                            # the manifest's size catches a cut before any record is read
                            (lambda d: d.__delitem__(slice(len(d) - 2, None)),
                             r"bytes, the checkpoint manifest says")):
        bad = bytearray(data)
        mutate(bad)
        open(path, "wb").write(bytes(bad))
        with pytest.raises(engines.CheckpointError, match=f"{os.path.basename(path)}.*{pattern}"):
            u.restore(base)
        assert (u.size(), u.lookup_entry(np.arange(60, dtype=np.int64)),
                u.max_update_ts) == before
    # A checkpoint of another optimizer does not fit.
    open(path, "wb").write(bytes(data))
    v = eng.create_table(engines.table_config(dim=3, optimizer="ftrl"))
    with pytest.raises(engines.CheckpointError, match="record 0.*dump is 'adagrad'"):
        v.restore(base)
    w = eng.create_table(engines.table_config(dim=2, optimizer="adagrad"))
    with pytest.raises(engines.CheckpointError, match="3 embedding values, table dim is 2"):
        w.restore(base)


def test_parser_accepts_packed_floats_and_unknown_fields(tmp_path):
    from engines.formats.shards import write_shards
    from engines.protos import embedding_hash_table_pb2 as pb
    d = pb.EntryDump(id=5, num=[1.0, 2.0], last_update_ts_sec=77)
    d.opt.dump.add().adagrad.norm.extend([0.5, 0.25])
    raw = d.SerializeToString()
    # num as one packed field (tag 0x12) + an unknown varint field 9.
    packed = (b"\x09" + (5).to_bytes(8, "little") + b"\x12\x08" +
              np.array([1.0, 2.0], np.float32).tobytes() + raw[raw.index(b"\x1a"):] +
              b"\x48\x01")
    write_shards(str(tmp_path / "p"), [[packed]])
    t = engines.get("native-cpu", threads=1).create_table(
        engines.table_config(dim=2, optimizer="adagrad"))
    t.restore(str(tmp_path / "p"))
    assert t.lookup_entry(np.array([5], np.int64)) == [raw[9:]]
