"""Checkpoint byte layout (fsf §B.2, §B.4) checked against an independent encoder (the
protobuf library + a CRC32C written here), corrupt/truncated/stray files, and cross-engine
byte identity."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import engines
from engines.protos import embedding_hash_table_pb2 as pb
from engines.testing.helpers import declared_optimizer, ids, require, rows, tfrecord_spans
from engines.tolerance import FLOAT, message_fields

pytestmark = pytest.mark.conformance_area("checkpoints")


def _crc32c(data: bytes) -> int:
    """Bitwise Castagnoli CRC, independent of the library the engines use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = _crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", _masked(header)) + payload + \
        struct.pack("<I", _masked(payload))


def test_independent_crc_check_value():
    assert _crc32c(b"123456789") == 0xE3069283


ID5 = bytes.fromhex("09 05 00 00 00 00 00 00 00 15 00 00 20 40 1a 04 0a 02 12 00 20 00")
IDM3 = bytes.fromhex("09 fd ff ff ff ff ff ff ff 15 00 00 00 bf 1a 04 0a 02 12 00 20 00")
ADAGRAD = bytes.fromhex("09 07 00 00 00 00 00 01 00 15 00 00 80 3f 15 00 00 00 c0 1a 0e 0a 0c"
                        " 0a 0a 0d cd cc cc 3d 0d 33 33 83 40 20 80 e2 cf aa 06")
TWO_SEG = bytes.fromhex("09 01 00 00 00 00 00 00 00 15 00 00 00 3f 15 00 00 80 3e 1a 0d 0a 02"
                        " 12 00 0a 07 0a 05 0d cd cc cc 3d 20 64")


def test_framing_vector():
    assert frame(ID5)[:12] == bytes.fromhex("16 00 00 00 00 00 00 00 4f 61 be 28")
    assert frame(ID5)[-4:] == bytes.fromhex("f1 0a f2 b5")
    assert frame(b"") == bytes.fromhex("00 00 00 00 00 00 00 00 29 03 98 07 d8 ea 82 a2")


def test_sgd_file_bytes(engine, tmp_path):                       # fsf §B.2 vectors 1-2
    require(engine, op="save")
    t = engine.create_table(engines.table_config(dim=1), learning_rates=(0.01,))
    t.assign_add(ids(5, -3), rows(2.5, -0.5))
    [path] = t.save(str(tmp_path / "t"))
    # records sorted by signed id: -3 before 5
    assert open(path, "rb").read() == frame(IDM3) + frame(ID5)


def test_two_segment_file_bytes(engine, tmp_path):               # fsf §B.2 vector 4
    require(engine, op="save", multi_segment=True, optimizer="adagrad")
    cfg = engines.table_config(segments=[dict(dim=1), dict(dim=1, optimizer="adagrad")])
    t = engine.create_table(cfg, learning_rates=(0.1, 0.1))
    t.assign(ids(1), rows([0.5, 0.25]), req_time=100)
    [path] = t.save(str(tmp_path / "t"))
    assert open(path, "rb").read() == frame(TWO_SEG)


def test_restore_independent_file_and_save_same_bytes(engine, tmp_path):   # §B.2 vector 3
    require(engine, op=("save", "restore"), optimizer="adagrad")
    src = tmp_path / "ext-00000-of-00001"
    src.write_bytes(frame(ADAGRAD))
    t = engine.create_table(engines.table_config(dim=2, optimizer="adagrad"))
    t.restore(str(tmp_path / "ext"))
    np.testing.assert_array_equal(t.lookup(ids((1 << 48) | 7)), rows([1, -2]))
    assert t.max_update_ts == 1700000000
    [path] = t.save(str(tmp_path / "again"))
    assert open(path, "rb").read() == frame(ADAGRAD)


def _config(engine):
    """adagrad (state words to parse besides the embedding) where the engine declares it."""
    return engines.table_config(dim=2, optimizer=declared_optimizer(engine))


def _sample_table(engine, tmp_path):
    t = engine.create_table(_config(engine))
    t.assign(np.arange(50, dtype=np.int64), np.ones((50, 2), np.float32), req_time=3)
    t.save(str(tmp_path / "good"), nshards=2)
    return t


def _state(t, probe=np.arange(-5, 60, dtype=np.int64)):
    return t.size(), t.lookup_entry(probe), t.max_update_ts


def _victim(engine):
    v = engine.create_table(_config(engine))
    v.assign(ids(1000, 1001), rows([7, 7], [8, 8]), req_time=9)
    return v


_DAMAGES = [(damage, manifest) for damage in ("flip_payload", "flip_length", "truncate",
                                                "garbage_record", "missing_shard")
            for manifest in (True, False)] + [("mixed_counts", False)]


@pytest.mark.parametrize("damage,manifest", _DAMAGES,
                         ids=[f"{d}-{'manifest' if m else 'no_manifest'}" for d, m in _DAMAGES])
def test_bad_checkpoint_raises_and_table_unchanged(engine, tmp_path, damage, manifest):
    """Without a manifest (Monolith's checkpoints) each damage is reported where it is; with
    one, the manifest's size or CRC32C catches it first when the record framing does not.
    (Files of another shard count are a damage only without a manifest, which names its set:
    test_a_manifest_ignores_files_of_another_count.)"""
    require(engine, op=("save", "restore", "lookup_entry"))
    _sample_table(engine, tmp_path)
    if not manifest:
        (tmp_path / "good.manifest").unlink()
    shard1 = tmp_path / "good-00001-of-00002"
    data = bytearray(shard1.read_bytes())
    if damage == "flip_payload":
        data[20] ^= 0x40
        shard1.write_bytes(bytes(data))
        match = "good-00001-of-00002.*record 0"
    elif damage == "flip_length":
        data[0] ^= 0x01
        shard1.write_bytes(bytes(data))
        match = "good-00001-of-00002.*record 0"
    elif damage == "truncate":
        shard1.write_bytes(bytes(data[:-3]))
        match = "good-00001-of-00002.*record" if not manifest else \
            "good-00001-of-00002: .*bytes, the checkpoint manifest says"
    elif damage == "garbage_record":
        shard1.write_bytes(bytes(data) + frame(b"\xff\xff\xff"))
        match = "good-00001-of-00002.*record" if not manifest else \
            "good-00001-of-00002: .*bytes, the checkpoint manifest says"
    elif damage == "missing_shard":
        shard1.unlink()
        match = "shard 1 of 2 is missing" if not manifest else \
            "good-00001-of-00002: checkpoint file not found"
    else:
        (tmp_path / "good-00000-of-00003").write_bytes(b"")
        match = "of-0000"
    victim = _victim(engine)
    before = _state(victim)
    with pytest.raises(engines.CheckpointError, match=match):
        victim.restore(str(tmp_path / "good"))
    assert _state(victim) == before


def test_a_manifest_ignores_files_of_another_count(engine, tmp_path):
    require(engine, op=("save", "restore", "lookup_entry"))
    source = _sample_table(engine, tmp_path)
    (tmp_path / "good-00000-of-00003").write_bytes(b"")      # an older save's, say
    victim = _victim(engine)
    victim.restore(str(tmp_path / "good"))
    assert _state(victim)[:2] == _state(source)[:2]


@pytest.mark.parametrize("other", [dict(dim=3, optimizer="adagrad"), dict(dim=2, optimizer="sgd"),
                                   dict(dim=2, optimizer="ftrl")])
def test_checkpoint_of_another_layout_is_rejected(engine, tmp_path, other):
    require(engine, op=("save", "restore", "lookup_entry"),
            optimizer={"adagrad", other["optimizer"]})
    t = engine.create_table(engines.table_config(dim=2, optimizer="adagrad"))
    t.assign(np.arange(50, dtype=np.int64), np.ones((50, 2), np.float32), req_time=3)
    t.save(str(tmp_path / "good"), nshards=2)
    t = engine.create_table(engines.table_config(**other))
    t.assign(ids(1), rows([5] * other["dim"]))
    before = _state(t)
    with pytest.raises(engines.CheckpointError, match="record 0"):
        t.restore(str(tmp_path / "good"))
    assert _state(t) == before


def test_shorter_num_keeps_initializer_tail(engine, tmp_path):     # core §1.5
    require(engine, op=("save", "restore"), initializer="ones")
    small = engine.create_table(engines.table_config(dim=2))
    small.assign(ids(3), rows([2, 2]))
    small.save(str(tmp_path / "small"))
    t = engine.create_table(engines.table_config(dim=3, initializer="ones"))
    t.restore(str(tmp_path / "small"))
    np.testing.assert_array_equal(t.lookup(ids(3))[0], [2, 2, 1])


def test_longer_num_than_dim_is_rejected(engine, tmp_path):
    require(engine, op=("save", "restore"))
    big = engine.create_table(engines.table_config(dim=3))
    big.assign(ids(1), rows([1, 2, 3]))
    big.save(str(tmp_path / "big"))
    small = engine.create_table(engines.table_config(dim=2))
    with pytest.raises(engines.CheckpointError, match="3 embedding values"):
        small.restore(str(tmp_path / "big"))
    assert small.size() == 0


def test_save_into_unwritable_place_leaves_nothing(engine, tmp_path):
    require(engine, op="save")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    t = engine.create_table(engines.table_config(dim=1))
    t.assign(ids(1), rows(1))
    with pytest.raises(OSError):
        t.save(str(blocker / "t"))
    assert t.size() == 1 and os.listdir(tmp_path) == ["file"]


def test_resave_with_other_shard_count_replaces_old_set(engine, tmp_path):
    require(engine, op=("save", "restore"))
    t = engine.create_table(engines.table_config(dim=1))
    t.assign(np.arange(20, dtype=np.int64), np.ones((20, 1), np.float32))
    t.save(str(tmp_path / "t"), nshards=3)
    t.save(str(tmp_path / "t"), nshards=2)
    assert sorted(os.listdir(tmp_path)) == ["t-00000-of-00002", "t-00001-of-00002", "t.manifest"]
    fresh = engine.create_table(engines.table_config(dim=1))
    fresh.restore(str(tmp_path / "t"))
    assert fresh.size() == 20


def test_checkpoint_bytes_identical_to_numpy(engine, numpy_engine, tmp_path):
    """Same table content -> byte-identical shard files on every engine (DESIGN: determinism)."""
    require(engine, op="save", optimizer="adagrad", multi_segment=True)
    cfg = engines.table_config(segments=[dict(dim=3, optimizer="adagrad"),
                                         dict(dim=2, optimizer="sgd")])
    rng = np.random.default_rng(0)
    keys = rng.integers(-2**62, 2**62, size=300, dtype=np.int64)
    grads = rng.standard_normal((300, 5)).astype(np.float32)
    files = {}
    for name, eng in (("ref", numpy_engine), ("eng", engine)):
        t = eng.create_table(cfg, learning_rates=(0.5, 0.25))
        t.assign_add(keys, grads, req_time=11)
        t.apply_gradients(keys[::3], grads[::3], req_time=12)
        base = tmp_path / name / "t"
        files[name] = [open(p, "rb").read() for p in t.save(str(base), nshards=4)]
        files[name].append((tmp_path / name / "t.manifest").read_bytes())   # the manifest too
    if engine.name == "numpy":
        assert all(files["ref"])
    assert files["eng"] == files["ref"]


def _float_words(dump: bytes) -> list[int]:
    """The bit patterns of every float field of a serialized EntryDump, read off the wire
    (protobuf would turn them into Python floats first)."""
    out = []

    for _, kind, values in message_fields(pb.EntryDump.FromString(dump)):
        if kind == FLOAT:
            out.extend(struct.unpack("<I", struct.pack("<f", v))[0] for v in values)
    return out


def test_nan_has_one_encoding_in_checkpoints(engine, numpy_engine, tmp_path):
    """Optimizer math that overflows into NaN (group_adagrad, gradients of 3.4e38 applied
    twice) leaves NaNs whose sign and payload differ between engines in memory; in a
    checkpoint and a lookup_entry dump every NaN is 0x7fc00000, so the bytes are the same on
    every engine (issue 20, row 4; docs/checkpoints.md, "NaN")."""
    require(engine, op=("save", "lookup_entry"), optimizer="group_adagrad")
    cfg = engines.table_config(dim=4, optimizer="group_adagrad")
    keys = ids(1, 2, 3)
    grads = np.full((3, 4), 3.4e38, np.float32)
    grads[1] *= -1
    files, dumps = {}, {}
    for name, eng in (("ref", numpy_engine), ("eng", engine)):
        t = eng.create_table(cfg, learning_rates=(0.1,))
        with np.errstate(over="ignore", invalid="ignore"):
            t.apply_gradients(keys, grads, req_time=5)
            t.apply_gradients(keys, grads, req_time=6)
        files[name] = [open(p, "rb").read() for p in t.save(str(tmp_path / name / "t"),
                                                           nshards=2)]
        dumps[name] = t.lookup_entry(keys)
    words = [w for d in dumps["eng"] for w in _float_words(d)]
    nans = [w for w in words if (w & 0x7FFFFFFF) > 0x7F800000]
    assert nans and set(nans) == {0x7FC00000}, [hex(w) for w in words]
    assert dumps["eng"] == dumps["ref"]
    assert files["eng"] == files["ref"]
    for data in files["eng"]:
        for start, end in tfrecord_spans(data):
            assert all((w & 0x7FFFFFFF) <= 0x7F800000 or w == 0x7FC00000
                       for w in _float_words(data[start + 12:end - 4]))


def test_restore_across_engines(engine, numpy_engine, tmp_path):
    require(engine, op=("save", "restore", "lookup_entry"))
    src = numpy_engine.create_table(engines.table_config(dim=2))
    src.assign(ids(3, 4), rows([1, 2], [3, 4]), req_time=77)
    src.save(str(tmp_path / "x"))
    t = engine.create_table(engines.table_config(dim=2))
    t.restore(str(tmp_path / "x"))
    assert t.lookup_entry(ids(3, 4, 5)) == src.lookup_entry(ids(3, 4, 5))
    t.save(str(tmp_path / "y"))
    back = numpy_engine.create_table(engines.table_config(dim=2))
    back.restore(str(tmp_path / "y"))
    assert back.lookup_entry(ids(3, 4)) == src.lookup_entry(ids(3, 4))
