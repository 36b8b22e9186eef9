"""Checkpoint format: TFRecord framing, crash-safe writes, shard sets (fsf §A.9, §B.4; semantics §1, §3)."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.api import CheckpointError
from engines.errors import CheckpointWarning
from engines.formats import (
    decode_records, encode_records, find_shards, frame, load_entry_dumps, masked_crc, mix64,
    parse_entry_dump, read_records, read_shards, shard_name, shard_of, write_file_atomic,
    write_shards,
)
from engines.formats import atomic as atomic_mod


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# ---------------------------------------------------------------------------------------------
# CRC32C, checked against an independent bitwise implementation

def crc32c_bitwise(data: bytes) -> int:
    """Castagnoli CRC, reflected polynomial 0x82F63B78, init/final xor 0xFFFFFFFF; no table."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def mask_by_hand(c: int) -> int:
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_crc32c_check_value():
    assert crc32c_bitwise(b"123456789") == 0xE3069283
    assert masked_crc(b"123456789") == mask_by_hand(0xE3069283)


@given(st.binary(max_size=300))
def test_masked_crc_matches_independent_crc(data):
    assert masked_crc(data) == mask_by_hand(crc32c_bitwise(data))


ENTRY_ID5 = h("09 05 00 00 00 00 00 00 00 15 00 00 20 40 1a 04 0a 02 12 00 20 00")  # fsf §B.2
FILTER_META = h("08 00 10 03 18 00 21 33 33 33 33 33 33 f3 3f 2a 0e 08 64 10 02 18 62 20 10 28"
                " 00 30 00 38 00")  # fsf §A.9


def test_frame_of_id5_entry():  # fsf §B.4
    assert frame(ENTRY_ID5) == h("16 00 00 00 00 00 00 00 4f 61 be 28") + ENTRY_ID5 + h("f1 0a f2 b5")


def test_frame_of_empty_payload():
    assert frame(b"") == h("00 00 00 00 00 00 00 00 29 03 98 07 d8 ea 82 a2")


def test_frame_of_filter_meta():  # fsf §A.9
    assert frame(FILTER_META) == h("1f 00 00 00 00 00 00 00 51 4b 44 18") + FILTER_META + h("df cf ad 06")


def test_frame_matches_independent_layout():
    payload = b"hashtable-lab"
    length = struct.pack("<Q", len(payload))
    expected = (length + struct.pack("<I", mask_by_hand(crc32c_bitwise(length))) + payload
                + struct.pack("<I", mask_by_hand(crc32c_bitwise(payload))))
    assert frame(payload) == expected


# ---------------------------------------------------------------------------------------------
# encode / decode

def test_round_trip_and_empty_stream():
    records = [ENTRY_ID5, b"", FILTER_META, bytes(range(256)) * 40]
    data = encode_records(records)
    assert data == b"".join(frame(r) for r in records)
    assert decode_records(data, "x") == records
    assert decode_records(b"", "x") == []
    assert encode_records([]) == b""


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_decode_inverts_encode(records):
    assert decode_records(encode_records(records), "x") == records


def _corrupt(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


TWO = [ENTRY_ID5, FILTER_META]
FRAME0 = len(frame(ENTRY_ID5))  # byte offset where record 1 starts


@pytest.mark.parametrize("offset,what", [
    (FRAME0 + 0, "length CRC mismatch"),           # length
    (FRAME0 + 9, "length CRC mismatch"),           # length's CRC
    (FRAME0 + 12 + 5, "payload CRC mismatch"),     # payload
    (FRAME0 + 12 + 31 + 2, "payload CRC mismatch"),  # footer
])
def test_corrupt_byte_names_file_and_record(offset, what):
    data = _corrupt(encode_records(TWO), offset)
    with pytest.raises(CheckpointError, match=rf"^/ckpt/t-00000-of-00001: record 1: {what}"):
        decode_records(data, "/ckpt/t-00000-of-00001")


def test_corrupt_first_record():
    data = _corrupt(encode_records(TWO), 14)
    with pytest.raises(CheckpointError, match=r"f: record 0: payload CRC mismatch"):
        decode_records(data, "f")


def test_truncation_at_every_offset_is_an_error():
    data = encode_records(TWO)
    for cut in range(1, len(data)):
        if cut == FRAME0:
            assert decode_records(data[:cut], "f") == [ENTRY_ID5]  # a clean record boundary
            continue
        record = 0 if cut < FRAME0 else 1
        with pytest.raises(CheckpointError, match=rf"^f: record {record}: truncated (header|payload|footer)"):
            decode_records(data[:cut], "f")


def test_truncation_messages_say_which_part():
    data = frame(ENTRY_ID5)
    for cut, part in [(5, "header"), (12 + 3, "payload"), (12 + 22 + 1, "footer")]:
        with pytest.raises(CheckpointError, match=f"truncated {part}"):
            decode_records(data[:cut], "f")


def test_huge_length_with_valid_crc_is_truncation_not_memory_error():
    length = struct.pack("<Q", 1 << 60)
    data = length + struct.pack("<I", masked_crc(length)) + b"abc"
    with pytest.raises(CheckpointError, match="truncated payload"):
        decode_records(data, "f")


def test_read_records(tmp_path):
    path = tmp_path / "t-00000-of-00001"
    path.write_bytes(encode_records(TWO))
    assert read_records(str(path)) == TWO
    with pytest.raises(CheckpointError, match="missing-file"):
        read_records(str(tmp_path / "missing-file"))


# ---------------------------------------------------------------------------------------------
# EntryDump parsing

def test_parse_entry_dump():
    d = parse_entry_dump(ENTRY_ID5, "f", 0)
    assert (d.id, list(d.num), d.last_update_ts_sec, d.opt.dump[0].WhichOneof("type")) == (5, [2.5], 0, "sgd")
    with pytest.raises(CheckpointError, match=r"^f: record 7: not a valid EntryDump"):
        parse_entry_dump(b"\x0a\xff", "f", 7)  # length-delimited field running past the end


def test_load_entry_dumps(tmp_path):
    base = str(tmp_path / "table")
    write_shards(base, [[ENTRY_ID5], [], [ENTRY_ID5[:-2] + h("20 07")]])
    dumps = load_entry_dumps(base)
    assert [(d.id, d.last_update_ts_sec) for d in dumps] == [(5, 0), (5, 7)]
    write_shards(base, [[ENTRY_ID5], [], [ENTRY_ID5, b"\x12\x05ab"]])
    with pytest.raises(CheckpointError, match=r"table-00002-of-00003: record 1: not a valid EntryDump"):
        load_entry_dumps(base)


# ---------------------------------------------------------------------------------------------
# id -> shard

def mix64_int(x: int) -> int:
    m = (1 << 64) - 1
    z = x & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


IDS = [0, 1, -1, 5, -3, (1 << 48) | 7, 2**63 - 1, -2**63, 123456789012345]


def test_mix64_vector():
    got = mix64(np.array(IDS, dtype=np.int64))
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == [mix64_int(x) for x in IDS]


def test_mix64_is_splitmix64():
    # SplitMix64 seeded with 0 outputs mix64(k * 0x9E3779B97F4A7C15) for k = 1, 2, 3 (published values).
    golden = np.array([0x9E3779B97F4A7C15 * k % 2**64 for k in (1, 2, 3)], dtype=np.uint64)
    assert [int(v) for v in mix64(golden)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 100])
def test_shard_of_matches_plain_ints(n):
    got = shard_of(np.array(IDS, dtype=np.int64), n)
    assert got.dtype == np.int64
    assert got.tolist() == [mix64_int(x) % n for x in IDS]


def test_shard_of_is_balanced_on_sequential_ids():
    counts = np.bincount(shard_of(np.arange(40_000, dtype=np.int64), 4), minlength=4)
    assert counts.min() > 9_500  # a fixed hash, but it must still spread sequential ids


def test_shard_of_rejects_bad_count():
    with pytest.raises(ValueError):
        shard_of(np.array([1], dtype=np.int64), 0)


def test_shard_name():
    assert shard_name("/d/hash_filter_0", 3, 7) == "/d/hash_filter_0-00003-of-00007"


# ---------------------------------------------------------------------------------------------
# shard sets

def _touch(path, data=b""):
    with open(path, "wb") as f:
        f.write(data)


def test_write_and_read_shards(tmp_path):
    base = str(tmp_path / "sub" / "table")  # parent directory is created
    paths = write_shards(base, [[ENTRY_ID5], [], [FILTER_META, b""]])
    assert paths == [shard_name(base, i, 3) for i in range(3)]
    assert os.path.getsize(paths[1]) == 0  # an empty shard is a 0-byte file
    assert find_shards(base) == paths
    assert read_shards(base) == [[ENTRY_ID5], [], [FILTER_META, b""]]
    assert sorted(os.listdir(tmp_path / "sub")) == sorted(
        [os.path.basename(p) for p in paths] + ["table.manifest"])


def test_find_shards_none(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint files for .*table"):
        find_shards(str(tmp_path / "table"))


def test_find_shards_missing_shard(tmp_path):
    base = str(tmp_path / "t")
    for i in (0, 2):                                  # a set without manifest (Monolith's)
        _touch(shard_name(base, i, 3))
    with pytest.raises(CheckpointError, match=r"shard 1 of 3 is missing: .*t-00001-of-00003"):
        find_shards(base)
    write_shards(base, [[], [], []])                  # with a manifest: reading finds it out
    os.remove(shard_name(base, 1, 3))
    with pytest.raises(CheckpointError, match=r"t-00001-of-00003: checkpoint file not found"):
        read_shards(base)


@pytest.mark.parametrize("manifest", [True, False])
def test_find_shards_ignores_names_that_are_not_shards(tmp_path, manifest):
    """Other `basename-*` names belong to other tables (`t-v2`, `t-x`) or are not ours: they
    are ignored, so prefix-sharing tables live side by side (issue 11, defect 3)."""
    base = str(tmp_path / "t")
    write_shards(base, [[b"a"]])
    if not manifest:
        os.remove(base + ".manifest")
    for stray in ("t-x", "t-00000-of-00001-tmp-123", "t-0-of-1", "t-v2-00000-of-00002"):
        _touch(tmp_path / stray)
    assert find_shards(base) == [shard_name(base, 0, 1)]
    assert read_shards(base) == [[b"a"]]


def test_find_shards_mixed_counts(tmp_path):
    base = str(tmp_path / "t")
    _touch(shard_name(base, 0, 2))
    _touch(shard_name(base, 1, 2))
    _touch(shard_name(base, 0, 3))
    with pytest.raises(CheckpointError, match=r"says -of-0000[23] but .* says -of-0000[23]"):
        find_shards(base)


def test_find_shards_index_out_of_range(tmp_path):
    base = str(tmp_path / "t")
    _touch(shard_name(base, 0, 1))
    _touch(shard_name(base, 1, 1))
    with pytest.raises(CheckpointError, match="out of range"):
        find_shards(base)


def test_prefix_safety_table1_vs_table10(tmp_path):
    write_shards(str(tmp_path / "table1"), [[ENTRY_ID5]])
    write_shards(str(tmp_path / "table10"), [[FILTER_META], []])
    assert find_shards(str(tmp_path / "table1")) == [str(tmp_path / "table1-00000-of-00001")]
    assert read_shards(str(tmp_path / "table10")) == [[FILTER_META], []]


def test_glob_metacharacters_in_basename(tmp_path):
    d = tmp_path / "run[1]*?"
    base = str(d / "t")
    write_shards(base, [[ENTRY_ID5]])
    _touch(tmp_path / "t-00000-of-00001")  # would match if the brackets were a glob class
    assert read_shards(base) == [[ENTRY_ID5]]


def test_write_shards_replaces_stale_sets(tmp_path):
    base = str(tmp_path / "t")
    write_shards(base, [[b"old"]] * 4)
    _touch(tmp_path / "t-notes")  # not a shard name: write_shards must leave it alone
    paths = write_shards(base, [[b"new0"], [b"new1"]])
    assert sorted(os.listdir(tmp_path)) == ["t-00000-of-00002", "t-00001-of-00002", "t-notes",
                                            "t.manifest"]
    os.remove(tmp_path / "t-notes")
    assert find_shards(base) == paths
    assert read_shards(base) == [[b"new0"], [b"new1"]]
    # same count again: files are replaced in place
    write_shards(base, [[b"a"], [b"b"]])
    assert read_shards(base) == [[b"a"], [b"b"]]


def test_write_shards_leaves_other_tables_alone(tmp_path):
    write_shards(str(tmp_path / "table10"), [[b"x"]] * 3)
    write_shards(str(tmp_path / "table1"), [[b"y"]])
    assert len(find_shards(str(tmp_path / "table10"))) == 3


def test_write_shards_rejects_zero_shards(tmp_path):
    with pytest.raises(ValueError):
        write_shards(str(tmp_path / "t"), [])


# ---------------------------------------------------------------------------------------------
# crash safety

def test_write_file_atomic(tmp_path):
    path = tmp_path / "a" / "f"
    write_file_atomic(str(path), b"one")
    write_file_atomic(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path / "a") == ["f"]


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
@pytest.mark.parametrize("existing", [None, b"previous"])
def test_write_file_atomic_failure_leaves_final_name_untouched(tmp_path, monkeypatch, failing, existing):
    path = tmp_path / "t-00000-of-00001"
    if existing is not None:
        path.write_bytes(existing)

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "write":
        real_open = open

        class FullDisk:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                boom()

        monkeypatch.setattr(atomic_mod, "open", lambda fd, mode: FullDisk(real_open(fd, mode)), raising=False)
    else:
        monkeypatch.setattr(atomic_mod.os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        write_file_atomic(str(path), b"new content")
    monkeypatch.undo()
    if existing is None:
        assert os.listdir(tmp_path) == []
    else:
        assert os.listdir(tmp_path) == [path.name]
        assert path.read_bytes() == existing


@pytest.mark.parametrize("failing_call,expect", [(1, "old"), (2, "new"), (3, "new")])
def test_failed_shard_set_write_leaves_old_or_new_set(tmp_path, monkeypatch, failing_call, expect):
    """os.replace #1 installs the pending manifest (the commit point), #2 and #3 rename the
    shards: a failure before the commit raises and keeps the old set and no temporaries; one
    after it is a warning (the save succeeded) and leaves the new set readable through the
    pending manifest, which the next save completes."""
    base = str(tmp_path / "t")
    write_shards(base, [[b"a"], [b"b"]])
    real_replace = os.replace
    calls = []

    def fail_once(src, dst):
        calls.append(dst)
        if len(calls) == failing_call:
            raise OSError(5, "I/O error")
        real_replace(src, dst)

    monkeypatch.setattr(atomic_mod.os, "replace", fail_once)
    if expect == "old":
        with pytest.raises(OSError, match="I/O error"):
            write_shards(base, [[b"c"], [b"d"]])
    else:
        with pytest.warns(CheckpointWarning, match="I/O error; the manifest stays pending"):
            write_shards(base, [[b"c"], [b"d"]])
    monkeypatch.undo()
    assert read_shards(base) == ([[b"a"], [b"b"]] if expect == "old" else [[b"c"], [b"d"]])
    if expect == "old":
        assert sorted(os.listdir(tmp_path)) == ["t-00000-of-00002", "t-00001-of-00002",
                                                "t.manifest"]
    else:
        assert (tmp_path / "t.manifest").read_text().split("\n")[1] == "state pending"
        write_shards(base, [[b"e"], [b"f"]])
        assert read_shards(base) == [[b"e"], [b"f"]]
        assert sorted(os.listdir(tmp_path)) == ["t-00000-of-00002", "t-00001-of-00002",
                                                "t.manifest"]


def test_hidden_temp_files_are_invisible_to_find_shards(tmp_path):
    base = str(tmp_path / "t")
    write_shards(base, [[b"a"]])
    _touch(tmp_path / ".t-00000-of-00002.tmp-0123abcd")  # a save in progress (or a crashed one)
    assert find_shards(base) == [shard_name(base, 0, 1)]
