"""Hash filters: the filter hash, FilterSpec, and the numpy reference filters against every test of
fsf §A.10 plus the byte layouts of §A.9 (semantics §1, §6)."""
from __future__ import annotations

import copy
import os
import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.api import CheckpointError
from engines.filters import (
    MAX_SLOTS, FilterSpec, filter_hash, filter_hash_int, signature, slot_v2,
)
from engines.formats import write_shards
from engines.protos import embedding_hash_table_pb2 as pb
from engines.reference.filters import (
    DummyHashFilter, ProbabilisticFilter, SlidingHashFilter, SplitArray, XorShift,
    equal_probability_p, make_reference_filter,
)


def sliding(capacity=100, split_num=7, threshold=3, **kw) -> SlidingHashFilter:
    return make_reference_filter(FilterSpec.build("sliding", capacity, split_num, threshold, **kw))


def ids(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def ones(n: int) -> np.ndarray:
    return np.ones((n, 2), dtype=np.float32)


def config_bytes(default=None, slots=()) -> bytes:
    msg = pb.SlotOccurrenceThresholdConfig()
    if default is not None:
        msg.default_occurrence_threshold = default
    for slot, thr in slots:
        msg.slot_occurrence_thresholds.add(slot=slot, occurrence_threshold=thr)
    return msg.SerializeToString()


# ---- an independent TFRecord reader (bitwise CRC32C, no engine code) -------------------------

def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(c: int) -> int:
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecords(path) -> list[bytes]:
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        assert struct.unpack_from("<I", data, pos + 8)[0] == masked(crc32c(data[pos:pos + 8]))
        payload = data[pos + 12:pos + 12 + length]
        assert len(payload) == length
        assert struct.unpack_from("<I", data, pos + 12 + length)[0] == masked(crc32c(payload))
        out.append(payload)
        pos += 16 + length
    return out


def read_filter_files(basename, n):
    """[(meta, [cells...])] of every split file, parsed from the raw files."""
    out = []
    for i in range(n):
        records = read_tfrecords(f"{basename}-{i:05d}-of-{n:05d}")
        meta = pb.HashFilterSplitMetaDump.FromString(records[0])
        cells = []
        for payload in records[1:]:
            data = pb.HashFilterSplitDataDump.FromString(payload)
            assert data.offset == len(cells)
            cells.extend(data.data)
        out.append((meta, cells))
    return out


# ---- the filter hash (semantics §1) -----------------------------------------------------------

def test_filter_hash_vectors():
    assert filter_hash_int(1) == 0x6B84C9315B43B64F
    assert filter_hash_int(3 << 17) == 0x49DA6EE976BAAE65
    np.testing.assert_array_equal(filter_hash(ids(1, 3 << 17)),
                                  np.array([0x6B84C9315B43B64F, 0x49DA6EE976BAAE65], np.uint64))


def test_filter_hash_array_matches_scalar_over_the_int64_range():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.integers(-2**63, 2**63 - 1, 2000, dtype=np.int64, endpoint=True),
                        ids(0, -1, 2**63 - 1, -2**63, -0x00007F1234567000)])
    got = filter_hash(x)
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == [filter_hash_int(int(v)) for v in x]
    # uint64 input is the same bits as int64 input
    np.testing.assert_array_equal(filter_hash(x.view(np.uint64)), got)
    # (S + fid) wrapping to 0 gives 0: lo ^ hi of 0
    assert filter_hash_int(-0x00007F1234567000) == 0


def test_signature_and_slot():
    assert [signature(v) for v in (1, 1 << 17, 2 << 17, 3 << 17)] == [0, 1, 2, 3]
    assert signature(0xFFF << 17 | 1 << 29) == 0xFFF
    assert signature(-1) == 0xFFF
    assert slot_v2((5 << 48) | 123) == 5
    assert slot_v2(-1) == 0x7FFF
    arr = ids(1, 3 << 17, -1, (5 << 48) | (7 << 17))
    np.testing.assert_array_equal(signature(arr), np.array([0, 3, 0xFFF, 7], np.uint64))
    np.testing.assert_array_equal(slot_v2(arr), np.array([0, 0, 0x7FFF, 5], np.uint64))


# ---- FilterSpec ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kind", [("sliding", "sliding"), ("sliding_hash_filter", "sliding"),
                                       ("probabilistic", "probabilistic"),
                                       ("probabilistic_filter", "probabilistic"),
                                       ("dummy", "dummy"), ("no_filter", "dummy")])
def test_spec_kind_names(name, kind):
    spec = FilterSpec.build(name, capacity=100)
    assert spec.kind == kind
    assert type(make_reference_filter(spec)).kind == kind


def test_spec_thresholds_from_dict_config_and_bytes():
    a = FilterSpec.build("sliding", 100, 7, 3, {5: 2, 32767: 0})
    assert a.thresholds.dtype == np.int32 and a.thresholds.shape == (MAX_SLOTS,)
    assert a.thresholds[0] == 3 and a.thresholds[5] == 2 and a.thresholds[32767] == 0
    assert a.threshold_of((5 << 48) | 9) == 2
    with pytest.raises(ValueError):
        a.thresholds[0] = 1                       # read-only
    raw = config_bytes(default=3, slots=[(5, 9), (32767, 0), (5, 2)])   # last entry wins
    b = FilterSpec.build("sliding", 100, 7, 0, raw)
    c = FilterSpec.build("sliding", 100, 7, 3, pb.SlotOccurrenceThresholdConfig.FromString(raw))
    assert a == b == c and hash(a) == hash(b)
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    # a config without an explicit default keeps occurrence_threshold
    d = FilterSpec.build("sliding", 100, 7, 4, config_bytes(slots=[(1, 1)]))
    assert d.thresholds[0] == 4 and d.thresholds[1] == 1
    assert FilterSpec.build("sliding", 100, 7, 0, b"").thresholds.max() == 0


@pytest.mark.parametrize("kwargs,exc,word", [
    (dict(kind="bloom"), ValueError, "kind"),
    (dict(kind=3), TypeError, "kind"),
    (dict(capacity=0), ValueError, "capacity"),
    (dict(capacity=1.5), TypeError, "capacity"),
    (dict(split_num=0), ValueError, "split_num"),
    (dict(split_num=True), TypeError, "split_num"),
    # max(1, 300) // (400 - 1) == 0 elements per split: Monolith divides by zero there
    (dict(capacity=1, split_num=400), ValueError, "capacity"),
    (dict(split_num=100_000, capacity=10**9), ValueError, "split_num"),
    (dict(occurrence_threshold=-1), ValueError, "occurrence_threshold"),
    (dict(occurrence_threshold=2**31), ValueError, "occurrence_threshold"),
    (dict(slot_occurrence_thresholds={32768: 1}), ValueError, "slot_occurrence_thresholds"),
    (dict(slot_occurrence_thresholds={-1: 1}), ValueError, "slot_occurrence_thresholds"),
    (dict(slot_occurrence_thresholds={1: -2}), ValueError, "slot_occurrence_thresholds"),
    (dict(slot_occurrence_thresholds={"a": 1}), TypeError, "slot_occurrence_thresholds"),
    (dict(slot_occurrence_thresholds=config_bytes(slots=[(40000, 1)])), ValueError,
     "slot_occurrence_thresholds"),
    (dict(slot_occurrence_thresholds=b"\xff\xff"), ValueError, "Unable to parse config"),
    (dict(slot_occurrence_thresholds=[1, 2]), TypeError, "slot_occurrence_thresholds"),
    (dict(occurrence_threshold=2, slot_occurrence_thresholds=config_bytes(default=3)),
     ValueError, "occurrence_threshold"),
    (dict(equal_probability=1), TypeError, "equal_probability"),
    (dict(seed=1.0), TypeError, "seed"),
])
def test_spec_validation(kwargs, exc, word):
    args = dict(kind="sliding", capacity=100, split_num=7)
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        FilterSpec.build(**args)


def test_spec_size_limits_are_monolith_s():
    # capacity is clamped up to 300, so small capacities are fine as long as each split gets one
    assert FilterSpec.build("sliding", 1, 10).capacity == 1
    assert FilterSpec.build("sliding", 1, 301).split_num == 301    # 300 // 300 == 1
    # probabilistic and dummy filters have no splits to size
    assert FilterSpec.build("dummy", 1, 400).kind == "dummy"
    assert FilterSpec.build("sliding", 100, 7, seed=-1).seed == 2**64 - 1


def test_engine_create_hash_filter_builds_reference_filters():
    import engines
    eng = engines.get("numpy")
    f = eng.create_hash_filter("sliding_hash_filter", capacity=100, split_num=7,
                               occurrence_threshold=3)
    assert isinstance(f, SlidingHashFilter) and f.spec.thresholds[0] == 3
    with pytest.raises(ValueError, match="kind"):
        eng.create_hash_filter("nope")


# ---- SplitArray = HashFilter<uint16_t> (hash_filter_test.cc) ------------------------------------

@pytest.mark.parametrize("capacity", [1, 3, 100])
def test_split_array_simple(capacity):
    counter = SplitArray(capacity)
    assert counter.total_size == int(capacity * 1.5)
    assert len(counter.cells) == counter.total_size + 64
    for i in range(16):
        assert counter.add(1, 1) == i
        assert counter.get(1) == min(i + 1, 15)
    assert counter.add(1, 1) == 15
    assert counter.get(1) == 15


def test_split_array_count():
    gen = random.Random(1234)
    f = SplitArray(1_000_000)
    f.add(gen.randrange(2**31), 2)
    assert f.estimated_total_element() == 1
    for _ in range(10):
        f.add(gen.randrange(2**31), 2)
    assert f.estimated_total_element() == 11

    f2 = SplitArray(1_000_000)
    big = 10000002961562801052                     # above INT64_MAX: taken as uint64
    assert [f2.add(big, 1), f2.add(big, 20), f2.add(big, 1)] == [0, 1, 15]
    assert f2.estimated_total_element() == 1 and f2.get(big) == 15
    f3 = copy.deepcopy(f2)
    assert f2 == f3
    f3.add(big + 1, 1)
    assert f2 != f3


def test_split_array_cell_layout_and_full():
    f = SplitArray(3, 1.2)                         # total_size trunc(3.5999...) = 3
    assert f.total_size == 3 and len(f.cells) == 67
    fid = (0xABC << 17) | 5
    f.add(fid, 4)
    assert sorted(int(c) for c in f.cells if c) == [0xABC4]
    f.add(fid, 100)                                # saturates
    assert sorted(int(c) for c in f.cells if c) == [0xABCF]
    assert not f.full()
    f.add(1, 1)
    assert f.full() and not f.exceed_limit()       # full at capacity - 1 = 2 elements
    f.add(2 << 17, 1)
    f.add(3 << 17, 1)                              # num_elements is capped at capacity
    assert f.num_elements == 3 and f.exceed_limit()
    f.clear()
    assert f.num_elements == 0 and not f.cells.any()


def test_split_array_probe_failure():
    f = SplitArray(100)
    f.cells[:] = 0xFFF1                            # every cell taken by signature 0xFFF
    assert f.add(1, 1) == 15 and f.failure_count == 1
    assert f.get(1) == 15
    assert f.add((0xFFF << 17), 1) == 1            # same signature: shares the cell


def test_skip_zero_threshold_features_split_array():
    f = SplitArray(1_000_000, 10)
    for i in range(5):
        assert not f.filter_with_threshold(i, 1, 0)
        assert f.filter_with_threshold(2 * i, 1, 1)
    assert f.estimated_total_element() == 5


def test_skip_zero_threshold_features_sliding():
    f = sliding(1_000_000, 10, threshold=0)
    for i in range(5):
        assert not f.filter_with_threshold(i, 1, 0)
        assert f.filter_with_threshold(2 * i, 1, 1)
    assert f.estimated_total_element() == 5


# ---- SlidingHashFilter ----------------------------------------------------------------------------

@pytest.mark.parametrize("capacity,split_num,n,split_capacity,total_size", [
    (100, 7, 7, 50, 60), (300, 7, 7, 50, 60), (300, 100, 100, 3, 3), (1, 10, 10, 33, 39),
    (1_000_000, 10, 10, 111111, 133333), (300, 3, 5, 75, 90),
])
def test_sliding_sizes(capacity, split_num, n, split_capacity, total_size):
    f = sliding(capacity, split_num)
    assert len(f.splits) == n and f.split_num == split_num
    assert f.max_backward_step == n - 2
    assert {(s.capacity, s.total_size, len(s.cells)) for s in f.splits} == {
        (split_capacity, total_size, total_size + 64)}


def test_hash_filter_basic():
    """hash_filter_ops_test.test_hash_filter_basic: thr 3, ids [1, 3<<17, 1], four runs."""
    f = sliding(100, 7, threshold=3)
    x, grads = ids(1, 3 << 17, 1), ones(3)
    expected = [[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1]]
    for run, keep in enumerate(expected):
        out = f.intercept_gradient(x, grads)
        assert out.dtype == np.float32 and out is not grads
        np.testing.assert_array_equal(out, np.repeat(np.array(keep, np.float32)[:, None], 2, 1),
                                      err_msg=f"run {run + 1}")
    np.testing.assert_array_equal(grads, ones(3))  # the caller's array is untouched
    assert f.get(1) == 8 and f.get(3 << 17) == 4 and f.head == 0


def test_intercept_gradient_shapes():
    f = sliding(100, 7, threshold=1)
    flat = np.arange(6, dtype=np.float32)
    out = f.intercept_gradient(ids(1, 3 << 17, 1), flat)
    np.testing.assert_array_equal(out, [[0, 0], [0, 0], [4, 5]])
    assert f.intercept_gradient(ids(), np.zeros((0, 2), np.float32)).shape == (0, 2)
    with pytest.raises(TypeError, match="ids"):
        f.intercept_gradient(np.array([1, 2], np.int32), ones(2))


def test_hash_filter_save_restore(tmp_path):
    """hash_filter_ops_test.test_hash_filter_save_restore, plus a restore into a fresh filter."""
    base = str(tmp_path / "hash_filter_test_0")
    f = sliding(100, 7, threshold=3)
    x, grads = ids(1, 3 << 17, 1), ones(3)
    paths = f.save(base)
    assert [os.path.basename(p) for p in paths] == [
        f"hash_filter_test_0-{i:05d}-of-00007" for i in range(7)]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(p) for p in paths] + ["hash_filter_test_0.manifest"])
    f.restore(base)
    assert f.estimated_total_element() == 0
    for keep in ([0, 0, 0], [0, 0, 1]):
        np.testing.assert_array_equal(f.intercept_gradient(x, grads)[:, 0], keep)
    assert len(f.save(base)) == 7
    f.restore(base)
    fresh = sliding(100, 7, threshold=3)           # another object: the hash is fixed
    fresh.restore(base)
    for g in (f, fresh):
        assert g.get(1) == 4 and g.get(3 << 17) == 2
        np.testing.assert_array_equal(g.intercept_gradient(x, grads)[:, 0], [1, 0, 1])
        np.testing.assert_array_equal(g.intercept_gradient(x, grads)[:, 0], [1, 1, 1])
    assert [s == t for s, t in zip(f.splits, fresh.splits)] == [True] * 7


def test_hash_filter_save_restore_across_multiple_filters(tmp_path):
    """hash_filter_ops_test.test_hash_filter_save_restore_across_multiple_filters: 100 splits of
    3 elements (rotation after 2), thr 2, ids [1, 1<<17, 2<<17, 1]."""
    base = str(tmp_path / "hash_filter")
    f = sliding(300, 100, threshold=2)
    x, grads = ids(1, 1 << 17, 2 << 17, 1), ones(4)

    f.save(base)
    assert len(os.listdir(tmp_path)) == 100 + 1         # the splits and the manifest
    for meta, cells in read_filter_files(base, 100):
        assert (meta.total_size, meta.num_elements) == (3, 0)
        s = meta.sliding_hash_filter_meta
        assert (s.split_num, s.head, s.head_increment) == (100, 0, 0)
        assert cells == [0] * 67
    f.restore(base)

    np.testing.assert_array_equal(f.intercept_gradient(x, grads)[:, 0], [0, 0, 0, 0])
    assert (f.head, f.head_increment) == (2, 2)
    np.testing.assert_array_equal(f.intercept_gradient(x, grads)[:, 0], [1, 0, 0, 1])
    assert (f.head, f.head_increment) == (4, 4)

    f.save(base)
    files = read_filter_files(base, 100)
    assert [m.num_elements for m, _ in files] == [2] * 4 + [0] * 96
    for meta, _ in files:
        s = meta.sliding_hash_filter_meta
        assert (meta.total_size, s.split_num, s.head, s.head_increment) == (3, 100, 4, 4)
        assert (s.max_forward_step, s.max_backward_step, s.max_step) == (2, 98, 16)
    # the cells hold (signature << 4 | count), wherever the hash put them
    nonzero = [sorted(c for c in cells if c) for _, cells in files[:6]]
    assert nonzero == [[0x01, 0x11], [0x02, 0x21], [0x03, 0x12], [0x04, 0x22], [], []]

    restored = sliding(300, 100, threshold=2)
    restored.restore(base)
    for g in (f, restored):
        g.restore(base)
        np.testing.assert_array_equal(g.intercept_gradient(x, grads), ones(4))
        np.testing.assert_array_equal(g.intercept_gradient(x, grads), ones(4))


def test_dummy_hash_filter_basic(tmp_path):
    f = make_reference_filter(FilterSpec.build("no_filter", occurrence_threshold=3))
    assert isinstance(f, DummyHashFilter)
    for _ in range(3):
        np.testing.assert_array_equal(f.intercept_gradient(ids(1, 3 << 17, 1), ones(3)), ones(3))
    assert not f.should_be_filtered(1, 1, in_table=False)
    assert (f.add(1, 1), f.get(1), f.estimated_total_element(), f.failure_count()) == (15, 15, 0, 0)


def test_dummy_hash_filter_save_restore(tmp_path):
    f = make_reference_filter(FilterSpec.build("dummy", occurrence_threshold=3))
    base = str(tmp_path / "sub" / "hash_filter")
    assert f.save(base) == []
    f.restore(base)                                # no files: a no-op for dummy filters
    assert not os.listdir(tmp_path)
    np.testing.assert_array_equal(f.intercept_gradient(ids(1, 2), ones(2)), ones(2))


@pytest.mark.parametrize("kind", ["sliding", "probabilistic"])
def test_restore_not_found(tmp_path, kind):
    f = make_reference_filter(FilterSpec.build(kind, 100, 7, 3))
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        f.restore(str(tmp_path / "missing"))


def test_sliding_split_num_below_five_saves_split_num_files(tmp_path):
    f = sliding(300, 3, threshold=2)
    assert len(f.splits) == 5
    for fid in (1, 1 << 17, 2 << 17):
        f.should_be_filtered(fid)
    paths = f.save(str(tmp_path / "hf"))
    assert len(paths) == 3
    meta = read_filter_files(str(tmp_path / "hf"), 3)[0][0]
    assert (meta.sliding_hash_filter_meta.split_num, meta.sliding_hash_filter_meta.max_backward_step,
            meta.total_size) == (3, 3, 90)
    g = sliding(300, 3, threshold=2)
    g.restore(str(tmp_path / "hf"))
    assert [g.get(fid) for fid in (1, 1 << 17, 2 << 17)] == [1, 1, 1]


def snapshot(f: SlidingHashFilter):
    return ([s.cells.copy() for s in f.splits], [s.num_elements for s in f.splits],
            f.head, f.head_increment, f.failure_count())


def assert_same_state(f, snap):
    cells, nums, head, inc, failures = snap
    assert all(np.array_equal(a, s.cells) for a, s in zip(cells, f.splits))
    assert [s.num_elements for s in f.splits] == nums
    assert (f.head, f.head_increment, f.failure_count()) == (head, inc, failures)


def trained_filter():
    f = sliding(100, 7, threshold=3)
    for _ in range(2):
        f.intercept_gradient(ids(1, 3 << 17, 1), ones(3))
    return f


def test_restore_split_num_mismatch_leaves_filter_unchanged(tmp_path):
    base = str(tmp_path / "hf")
    sliding(300, 100, threshold=2).save(base)
    f = trained_filter()
    snap = snapshot(f)
    with pytest.raises(ValueError, match=r"split_num: 7 doesn't match with: 100"):
        f.restore(base)
    assert_same_state(f, snap)


@pytest.mark.parametrize("field,value", [("max_forward_step", 3), ("max_backward_step", 4),
                                         ("max_step", 64), ("split_num", 8)])
def test_restore_meta_mismatch(tmp_path, field, value):
    base = str(tmp_path / "hf")
    src = trained_filter()
    src.intercept_gradient(ids(1, 3 << 17, 1), ones(3))
    src.save(base)
    shards = [read_tfrecords(f"{base}-{i:05d}-of-00007") for i in range(7)]
    meta = pb.HashFilterSplitMetaDump.FromString(shards[6][0])
    setattr(meta.sliding_hash_filter_meta, field, value)
    shards[6][0] = meta.SerializeToString()        # only the last file is wrong
    write_shards(base, shards)
    f = trained_filter()
    snap = snapshot(f)
    with pytest.raises(ValueError, match=f"{field}: "):
        f.restore(base)
    assert_same_state(f, snap)


@pytest.mark.parametrize("damage", ["crc", "truncate", "empty", "bad_meta", "bad_data",
                                    "overflow", "disagree"])
def test_restore_rejects_damaged_files_without_change(tmp_path, damage):
    base = str(tmp_path / "hf")
    src = trained_filter()
    src.intercept_gradient(ids(1, 3 << 17, 1), ones(3))
    paths = src.save(base)
    shards = [read_tfrecords(p) for p in paths]
    if damage == "crc":
        raw = bytearray(open(paths[5], "rb").read())
        raw[20] ^= 0x40
        open(paths[5], "wb").write(bytes(raw))
    elif damage == "truncate":
        raw = open(paths[5], "rb").read()
        open(paths[5], "wb").write(raw[:-3])
    else:
        if damage == "empty":
            shards[5] = []
        elif damage == "bad_meta":
            shards[5][0] = b"\xff\xff\xff"
        elif damage == "bad_data":
            shards[5][1] = b"\x10"
        elif damage == "overflow":
            shards[5].append(pb.HashFilterSplitDataDump(offset=100, data=[0] * 30)
                             .SerializeToString())
        elif damage == "disagree":
            meta = pb.HashFilterSplitMetaDump.FromString(shards[5][0])
            meta.sliding_hash_filter_meta.head = 1
            shards[5][0] = meta.SerializeToString()
        write_shards(base, shards)
    f = trained_filter()
    snap = snapshot(f)
    with pytest.raises(CheckpointError, match="hf"):
        f.restore(base)
    assert_same_state(f, snap)


def test_sliding_rotation_wraps_and_wipes_the_split_after_the_new_head():
    f = sliding(300, 5, threshold=1)               # 5 splits of 75: full at 74 elements
    f.head, f.head_increment = 4, 9                # late in a wrapped ring
    for s in f.splits:
        s.cells[-1] = 0xABC1                       # a marker outside any probe window used below
        s.num_elements = 1
    f.splits[4].num_elements = 73
    assert f.add(1, 1) == 0                        # the 74th element fills split 4
    assert (f.head, f.head_increment) == (0, 10)
    assert not f.splits[1].cells.any() and f.splits[1].num_elements == 0   # (new head + 1) % 5
    assert [int(s.cells[-1]) for i, s in enumerate(f.splits) if i != 1] == [0xABC1] * 4
    assert f.get(1) == 1                           # found one generation back, in split 4
    assert f.add(1, 1) == 1 and f.get(1) == 2      # carried forward into the new head


def test_sliding_overflow_into_next_split_and_rotation_checks_head():
    f = sliding(300, 5, threshold=1)
    f.splits[0].cells[:] = 0xFFF1                  # head has no usable cell for signature 0
    f.splits[1].num_elements = 73
    assert f.add(1, 1) == 0                        # placed in split 1, which is now "full" ...
    assert f.splits[1].num_elements == 74 and f.get(1) == 1
    assert (f.head, f.head_increment) == (0, 0)    # ... but only the head split's fill rotates


def test_sliding_probe_failure_counts_and_passes():
    f = sliding(100, 7, threshold=3)
    for s in f.splits[:2]:                         # head and head+1: no usable cell for sig 0
        s.cells[:] = 0xFFF1
    assert f.should_be_filtered(1) is False        # add returned 15 >= 3
    assert f.failure_count() == 1 and f.get(1) == 15


@pytest.mark.parametrize("threshold", [16, 100])
def test_threshold_of_16_or_more_always_filters(threshold):
    f = sliding(100, 7, threshold=threshold)
    assert all(f.should_be_filtered(1) for _ in range(40))
    assert f.get(1) == 15


def test_threshold_zero_never_counts():
    f = sliding(100, 7, threshold=0, slot_occurrence_thresholds={5: 2})
    assert not any(f.should_be_filtered(1) for _ in range(5))
    assert f.get(1) == 0 and f.estimated_total_element() == 0
    slot5 = (5 << 48) | 1
    assert [f.should_be_filtered(slot5) for _ in range(3)] == [True, True, False]
    assert f.estimated_total_element() == 1


def test_dedup_count_jumps():
    # a new id seen c > thr times in its first batch is still filtered but counts min(15, c)
    f = sliding(100, 7, threshold=3)
    assert f.should_be_filtered(1, 5, in_table=False)
    assert f.get(1) == 5
    assert not f.should_be_filtered(1, 1, in_table=False)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_kth_occurrence_filtered_iff_k_le_threshold(data):
    t = data.draw(st.integers(0, 15), label="threshold")
    # distinct signatures -> distinct cells; < 16 ids can never fill a 16-cell probe window and
    # < 49 new ids never rotate a 50-element split, so the property is exact
    sigs = data.draw(st.lists(st.integers(0, 0xFFF), min_size=1, max_size=12, unique=True))
    pool = [(data.draw(st.integers(-2**34, 2**34 - 1)) << 29) | (sig << 17)
            | data.draw(st.integers(0, (1 << 17) - 1)) for sig in sigs]
    seq = data.draw(st.lists(st.sampled_from(pool), max_size=80), label="sequence")
    f = sliding(300, 7, threshold=t)
    seen: dict[int, int] = {}
    for fid in seq:
        seen[fid] = seen.get(fid, 0) + 1
        assert f.should_be_filtered(fid) == (seen[fid] <= t)
    for fid, k in seen.items():
        assert f.get(fid) == (min(k, 15) if t > 0 else 0)
    assert f.head == 0 and f.failure_count() == 0


# ---- probabilistic filter (probabilistic_filter_test.cc) ------------------------------------------

def prob(equal=False, seed=12345, threshold=7) -> ProbabilisticFilter:
    return make_reference_filter(FilterSpec.build("probabilistic_filter", 100, 7, threshold,
                                                  equal_probability=equal, seed=seed))


def admitted(f, count, trials=10000) -> int:
    return sum(not f.should_be_filtered(i, count, in_table=False) for i in range(trials))


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_probabilistic_unequal(seed):
    assert abs(admitted(prob(seed=seed), 1) - 1428) <= 100
    assert abs(admitted(prob(seed=seed), 2) - 2856) <= 100   # the ShouldBeFiltered bound


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_probabilistic_equal(seed):
    p = float(equal_probability_p(7))
    assert p == pytest.approx(0.348164, abs=1e-6)
    assert abs(admitted(prob(True, seed), 1) - 10000 * p) <= 500
    assert abs(admitted(prob(True, seed), 2) - 10000 * (1 - (1 - p) ** 2)) <= 1000


def test_probabilistic_without_table_never_filters_or_draws():
    f, ref = prob(), prob()
    out = f.intercept_gradient(ids(*range(1000)), ones(1000))
    np.testing.assert_array_equal(out, ones(1000))
    assert not any(f.should_be_filtered(i, 1, in_table=True) for i in range(100))
    assert f.rng.s == ref.rng.s                     # no randomness consumed
    assert [f.should_be_filtered(i, 1, in_table=False) for i in range(50)] == \
           [ref.should_be_filtered(i, 1, in_table=False) for i in range(50)]
    assert (f.add(1, 1), f.get(1), f.estimated_total_element()) == (15, 15, 0)


def test_probabilistic_threshold_zero_always_admits():
    assert admitted(prob(threshold=0), 1, 200) == 200
    assert admitted(prob(True, threshold=0), 1, 200) == 200


def test_probabilistic_save_writes_nothing_restore_needs_files(tmp_path):
    f = prob()
    assert f.save(str(tmp_path / "pf")) == [] and not os.listdir(tmp_path)
    sliding(100, 7).save(str(tmp_path / "pf"))     # any valid file set satisfies restore
    f.restore(str(tmp_path / "pf"))


def test_xorshift_stream():
    a, b, c = XorShift(42), XorShift(42), XorShift(43)
    xs = [a.rand32() for _ in range(100)]
    assert xs == [b.rand32() for _ in range(100)] != [c.rand32() for _ in range(100)]
    assert all(0 <= v < 2**32 for v in xs) and len(set(xs)) == 100
    # by hand: xorshift64* from x = 1, then one xorshift128+ step
    x, words = 1, []
    for _ in range(2):
        x ^= x >> 12
        x ^= (x << 25) & (2**64 - 1)
        x ^= x >> 27
        words.append(x * 2685821657736338717 % 2**64)
    s0, s1 = words
    s0 ^= (s0 << 23) % 2**64
    s0 ^= s0 >> 17
    s0 ^= s1 ^ (s1 >> 26)
    assert XorShift(1).rand32() == (s0 + s1) % 2**32
    zero = XorShift(0)                             # seed 0 is not a stuck all-zero stream
    assert len({zero.rand32() for _ in range(10)}) == 10


# ---- byte layout (fsf §A.9) -----------------------------------------------------------------------

META_CKPT0 = "08 00 10 03 18 00 21 33 33 33 33 33 33 f3 3f 2a 0e 08 64 10 02 18 62 20 10 28 00 30 00 38 00"
META_CKPT1 = "08 00 10 03 18 02 21 33 33 33 33 33 33 f3 3f 2a 0e 08 64 10 02 18 62 20 10 28 04 30 04 38 00"


def test_filter_file_bytes(tmp_path):
    base = str(tmp_path / "hf")
    f = sliding(300, 100, threshold=2)
    f.save(base)
    raw = open(f"{base}-00000-of-00100", "rb").read()
    payload = bytes.fromhex(META_CKPT0)
    assert raw[:12 + 31 + 4] == (bytes.fromhex("1f 00 00 00 00 00 00 00 51 4b 44 18") + payload
                                 + bytes.fromhex("df cf ad 06"))
    records = read_tfrecords(f"{base}-00099-of-00100")
    assert records[0] == payload
    assert len(records) == 2 and records[1] == bytes.fromhex("08 00" + " 10 00" * 67)
    assert len(records[1]) == 136
    for _ in range(2):
        f.intercept_gradient(ids(1, 1 << 17, 2 << 17, 1), ones(4))
    f.save(base)
    for i in range(4):
        assert read_tfrecords(f"{base}-{i:05d}-of-00100")[0] == bytes.fromhex(META_CKPT1)


def test_data_records_are_chunked_by_10000_cells(tmp_path):
    g = sliding(100_000, 5, threshold=1)           # 25000 -> 30000 + 64 cells: 4 records
    g.should_be_filtered(1)
    base = str(tmp_path / "big")
    g.save(base)
    records = read_tfrecords(f"{base}-00000-of-00005")
    data = [pb.HashFilterSplitDataDump.FromString(r) for r in records[1:]]
    assert [(d.offset, len(d.data)) for d in data] == [(0, 10000), (10000, 10000),
                                                        (20000, 10000), (30000, 64)]
    assert records[1][:2] == b"\x08\x00"           # offset 0 is written explicitly
    assert sum(1 for d in data for c in d.data if c) == 1
    assert bytes(pb.HashFilterSplitDataDump(offset=10000, data=[0x31, 0xFFF5])
                 .SerializeToString()) == bytes.fromhex("08 90 4e 10 31 10 f5 ff 03")
