"""The shard-set protocol of docs/checkpoints.md in engines/formats: the manifest's exact text,
its strict parser, what a save leaves on disk, leftovers of killed saves, and the reader's
refusal of special files (issue 11, defects 1, 2, 9 and 11)."""
from __future__ import annotations

import os

import crc32c
import pytest

from engines.errors import CheckpointError
from engines.formats import find_shard_set, read_shards, shard_name, write_shards
from engines.formats.manifest import Manifest, ManifestShard, manifest_bytes, parse_manifest
from engines.formats.safe_read import read_regular_file
from engines.formats.tfrecord import encode_records
from engines.testing.helpers import manifest_by_hand


def test_manifest_text_is_the_documented_one(tmp_path):
    shards = [[b"a", b"bc"], [], [b"d" * 300]]
    write_shards(str(tmp_path / "t"), shards)
    files = [encode_records(r) for r in shards]
    expected = manifest_by_hand("t", files)
    assert (tmp_path / "t.manifest").read_bytes() == expected
    assert expected.decode("ascii").splitlines()[:5] == [
        "hashlab-checkpoint-manifest 2", "state committed", "generation 1", "shards 3",
        f"shard 0 t-00000-of-00003 {len(files[0])} {crc32c.crc32c(files[0]):08x}"]
    assert "shard 1 t-00001-of-00003 0 00000000" in expected.decode()


def test_each_save_has_the_next_generation(tmp_path):
    """The same content saved again gives another manifest: a reader can tell that the files
    it read may have been replaced in between (docs/checkpoints.md, "Readers during a
    save")."""
    base = str(tmp_path / "t")
    texts = []
    for _ in range(3):
        write_shards(base, [[b"same"]])
        texts.append((tmp_path / "t.manifest").read_bytes())
    assert [t.split(b"\n")[2] for t in texts] == [b"generation 1", b"generation 2",
                                                  b"generation 3"]
    (tmp_path / "t.manifest").write_bytes(manifest_by_hand(
        "t", [encode_records([b"same"])], generation=None))          # version 1: generation 0
    assert parse_manifest((tmp_path / "t.manifest").read_bytes(), "t", "m").generation == 0
    write_shards(base, [[b"same"]])
    assert (tmp_path / "t.manifest").read_bytes().split(b"\n")[2] == b"generation 1"


def test_pending_manifest_has_the_temporary_names():
    m = Manifest(True, (ManifestShard("t-00000-of-00001", 12, 0xABC, ".t-00000-of-00001.tmp-"
                                      "0123456789abcdef"),), 5)
    text = manifest_bytes(m).decode()
    assert text == ("hashlab-checkpoint-manifest 2\nstate pending\ngeneration 5\nshards 1\n"
                    "shard 0 t-00000-of-00001 12 00000abc .t-00000-of-00001.tmp-"
                    "0123456789abcdef\n")
    assert parse_manifest(text.encode(), "t", "t.manifest") == m


V1 = "hashlab-checkpoint-manifest 1\nstate committed\n"
V2 = "hashlab-checkpoint-manifest 2\nstate committed\ngeneration 1\n"


@pytest.mark.parametrize("text,what", [
    ("", "end with a newline"),
    (V1, "ends after line 2"),
    (V2, "ends after line 3"),
    ("hashlab-checkpoint-manifest 3\nstate committed\ngeneration 1\nshards 1\n", "first line"),
    ("hashlab-checkpoint-manifest 1\nstate maybe\nshards 1\n", "line 2"),
    (V1 + "shards 01\n", "line 3"),
    (V1 + "shards 100000\n", "line 3"),
    (V1 + "generation 1\nshards 1\n", "line 3 must be 'shards"),
    ("hashlab-checkpoint-manifest 2\nstate committed\nshards 1\n"
     "shard 0 t-00000-of-00001 1 00000000\n", "line 3 must be 'generation"),
    ("hashlab-checkpoint-manifest 2\nstate committed\ngeneration 0\nshards 1\n"
     "shard 0 t-00000-of-00001 1 00000000\n", "line 3 must be 'generation"),
    ("hashlab-checkpoint-manifest 2\nstate committed\ngeneration 07\nshards 1\n"
     "shard 0 t-00000-of-00001 1 00000000\n", "line 3 must be 'generation"),
    ("hashlab-checkpoint-manifest 2\nstate committed\ngeneration 18446744073709551616\n"
     "shards 1\nshard 0 t-00000-of-00001 1 00000000\n", "line 3 must be 'generation"),
    (V2 + "shards 1\n", "0 shard lines for 1"),
    (V1 + "shards 2\nshard 0 t-00000-of-00002 1 00000000\n", "1 shard lines for 2"),
    (V2 + "shards 1\nshard 0 t-00000-of-00001 1 0000000g\n", "bad crc32c"),
    (V2 + "shards 1\nshard 0 t-00000-of-00001 \u0661 00000000\n", "bad size"),
    (V2 + "shards 1\nshard 0 ../t-00000-of-00001 1 00000000\n", "is not shard 0 of 1 of t"),
    (V2 + "shards 1\nshard 1 t-00000-of-00001 1 00000000\n", "out of order"),
    ("hashlab-checkpoint-manifest 2\nstate pending\ngeneration 1\nshards 1\n"
     "shard 0 t-00000-of-00001 1 00000000 .t-00000-of-00001.tmp-XYZ\n", "temporary name"),
    ("hashlab-checkpoint-manifest 1\nstate pending\nshards 1\n"
     "shard 0 t-00000-of-00001 1 00000000 .u-00000-of-00001.tmp-0123456789abcdef\n",
     "temporary name"),
])
def test_malformed_manifests_are_rejected(text, what):
    with pytest.raises(CheckpointError, match=f"m: not a valid checkpoint manifest: .*{what}"):
        parse_manifest(text.encode(), "t", "m")


def test_save_leaves_only_the_set_and_its_manifest(tmp_path):
    base = str(tmp_path / "t")
    write_shards(base, [[b"x"]] * 3)
    write_shards(base, [[b"y"]] * 2)
    assert sorted(os.listdir(tmp_path)) == ["t-00000-of-00002", "t-00001-of-00002", "t.manifest"]


def test_leftovers_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    """Defect 11: hidden .tmp files left by a killed save were never cleaned up. Those of
    other tables (`t2`, `t-v2`) and unrelated hidden files stay."""
    base = str(tmp_path / "t")
    write_shards(base, [[b"x"]])
    leftovers = [".t-00000-of-00001.tmp-0123456789abcdef", ".t-00003-of-00004.tmp-aaaaaaaaaaaaaaaa",
                 ".t.manifest.tmp-bbbbbbbbbbbbbbbb"]
    others = [".t2-00000-of-00001.tmp-0123456789abcdef",
              ".t-v2-00000-of-00001.tmp-0123456789abcdef", ".t-00000-of-00001.tmp-short",
              ".tea"]
    for name in leftovers + others:
        (tmp_path / name).write_bytes(b"junk")
    write_shards(base, [[b"y"]])
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["t-00000-of-00001", "t.manifest"])


def test_a_pending_manifests_temporaries_survive_until_replaced(tmp_path, monkeypatch):
    """A save killed after its commit point left the only copy of the new set in hidden
    temporaries: the next save must not remove them before its own commit point, and removes
    them after it."""
    base = str(tmp_path / "t")
    new = [encode_records([b"new0"]), encode_records([b"new1"])]
    temps = [f".t-0000{i}-of-00002.tmp-{i:016x}" for i in range(2)]
    for i in range(2):
        (tmp_path / temps[i]).write_bytes(new[i])
        (tmp_path / shard_name("t", i, 2)).write_bytes(encode_records([b"old"]))
    (tmp_path / "t.manifest").write_bytes(manifest_by_hand("t", new, "pending", temps))
    assert read_shards(base) == [[b"new0"], [b"new1"]]
    assert find_shard_set(base).files[0].path.endswith(temps[0])

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)               # the next save fails early...
    with pytest.raises(OSError):
        write_shards(base, [[b"newer"]])
    monkeypatch.undo()
    assert read_shards(base) == [[b"new0"], [b"new1"]]   # ...and the pending set is intact
    write_shards(base, [[b"newer"]])
    assert read_shards(base) == [[b"newer"]]
    assert sorted(os.listdir(tmp_path)) == ["t-00000-of-00001", "t.manifest"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev_zero", "socket_missing"])
def test_only_regular_files_are_read(tmp_path, kind):
    path = tmp_path / "f"
    if kind == "fifo":
        os.mkfifo(path)            # O_NONBLOCK: the open does not wait for a writer
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not a regular file" if kind != "socket_missing"
                       else "not found"):
        read_regular_file(str(path))


def test_expected_size_is_checked_before_reading(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    assert read_regular_file(str(path), expected_size=5) == b"12345"
    with pytest.raises(CheckpointError, match="5 bytes, the checkpoint manifest says 4"):
        read_regular_file(str(path), expected_size=4)


def test_a_failed_shard_write_leaves_no_temporary(tmp_path, monkeypatch):
    base = str(tmp_path / "t")
    write_shards(base, [[b"a"], [b"b"]])
    calls = []
    real = os.fsync

    def fail_second(fd):
        calls.append(fd)
        if len(calls) == 2:                     # the second shard's fsync
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fail_second)
    with pytest.raises(OSError, match="No space"):
        write_shards(base, [[b"c"], [b"d"]])
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["t-00000-of-00002", "t-00001-of-00002", "t.manifest"]
    assert read_shards(base) == [[b"a"], [b"b"]]
