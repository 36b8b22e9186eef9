"""The hostile-file corpus (issue 11, defects 2, 4 and 9; docs/checkpoints.md, "Restore"):
every case must give a CheckpointError within a time limit (no crash, no hang, no silent
restore) and leave the table exactly as it was, on every engine.

Each case damages a copy of a good 3-shard checkpoint (written by the engine under test):
truncations at every record boundary and inside records, a duplicated shard, another table's
shard, symlinks, a zero-length shard, a FIFO, /dev/zero, a directory, a length bomb, corrupt
manifests, a pending manifest whose temporaries are gone, misplaced and repeated ids. Cases
marked "no_manifest" remove the manifest first (a Monolith checkpoint); what cannot be told
apart without a manifest (a cut exactly at a record boundary, another table's shard with
valid placement) is only tested with one. Manifests are written here by hand from
docs/checkpoints.md, not with our writer. HASHLAB_CORPUS_REPORT=<file> appends one JSON line
per engine and case with the outcome.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import engines
from engines.protos import embedding_hash_table_pb2 as pb
from engines.testing.helpers import manifest_by_hand as _manifest
from engines.testing.helpers import masked_crc
from engines.testing.helpers import declared_optimizer, require, restore_with_time_limit
from engines.testing.helpers import tfrecord_frame as _frame
from engines.testing.helpers import tfrecord_payloads as _payloads
from engines.testing.helpers import tfrecord_spans as _records

pytestmark = pytest.mark.conformance_area("checkpoints")

N = 3
TIME_LIMIT_S = 60
_SOURCES: dict = {}


# ---- the sources: a good checkpoint and another table's --------------------------------

def _config(engine):
    """adagrad (state words to parse besides the embedding) where the engine declares it."""
    return engines.table_config(dim=2, optimizer=declared_optimizer(engine))


def _sources(engine, tmp_path_factory) -> dict:
    """{"good": [shard bytes], "other": [...], "earlier": [...]} written by this engine."""
    key = (engine.name, getattr(engine, "threads", None))
    if key not in _SOURCES:
        where = tmp_path_factory.mktemp("sources")
        out = {}
        for name, first, offset in (("good", 0, 0.0), ("earlier", 0, 9.0), ("other", 500, 0.5)):
            t = engine.create_table(_config(engine))
            keys = np.arange(first, first + 60, dtype=np.int64) * 1_000_003
            t.assign(keys, np.arange(120, dtype=np.float32).reshape(60, 2) + offset, req_time=5)
            paths = t.save(str(where / name), nshards=N)
            out[name] = [open(p, "rb").read() for p in paths]
        assert all(out["good"]) and out["good"][1] != out["earlier"][1]
        _SOURCES[key] = out
    return _SOURCES[key]


class Checkpoint:
    """A writable copy of the good checkpoint in its own folder."""

    def __init__(self, folder, src):
        self.folder = folder
        self.src = src
        self.base = str(folder / "good")
        for i, data in enumerate(src["good"]):
            self.shard(i).write_bytes(data)
        self.manifest().write_bytes(_manifest("good", src["good"]))

    def shard(self, i):
        return self.folder / f"good-{i:05d}-of-{N:05d}"

    def manifest(self):
        return self.folder / "good.manifest"

    def replace(self, i, data: bytes, rewrite_manifest: bool = False):
        self.shard(i).unlink()
        self.shard(i).write_bytes(data)
        if rewrite_manifest:
            files = [self.shard(k).read_bytes() for k in range(N)]
            self.manifest().write_bytes(_manifest("good", files))

    def make_special(self, i, kind: str):
        path = self.shard(i)
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "directory":
            path.mkdir()
        elif kind == "dev_zero":
            path.symlink_to("/dev/zero")


# ---- the corpus ----------------------------------------------------------------------------
# CASES maps a name to (keep the manifest?, damage). A damage mutates the checkpoint copy it is
# given and returns None, or returns a list of damages, each tried on its own fresh copy (the
# loops over record offsets).

def _truncations(ckpt, at_boundaries: bool):
    data = ckpt.src["good"][1]
    cuts = []
    for start, end in _records(data):
        if at_boundaries:
            cuts.append(start)                                    # every boundary but the end
        else:
            cuts += [start + 3, start + 8, start + 12, start + 14, end - 5, end - 1]
    return [lambda ck, c=c: ck.replace(1, data[:c]) for c in cuts]


def _length_bomb() -> bytes:
    """159 bytes: a record header declaring 10**12 bytes, with a valid length CRC."""
    length = struct.pack("<Q", 10**12)
    return (length + struct.pack("<I", masked_crc(length)) + bytes(range(256)))[:159]


def _with_record(ckpt, shard: int, payload: bytes, where: int = -1):
    records = _payloads(ckpt.src["good"][shard])
    records.insert(len(records) if where < 0 else where, payload)
    ckpt.replace(shard, b"".join(_frame(r) for r in records), rewrite_manifest=True)


def _misplaced_id(ckpt):
    # shard 1's first record moved into shard 0: its id now sits where mix64(id) % 3 is not 0
    moved = _payloads(ckpt.src["good"][1])[0]
    _with_record(ckpt, 0, moved)
    rest = _payloads(ckpt.src["good"][1])[1:]
    ckpt.replace(1, b"".join(_frame(r) for r in rest), rewrite_manifest=True)


def _repeated_id(ckpt):
    _with_record(ckpt, 0, _payloads(ckpt.src["good"][0])[0])


def _bad_timestamp(ckpt):
    d = pb.EntryDump.FromString(_payloads(ckpt.src["good"][0])[0])
    d.last_update_ts_sec = 1 << 40
    records = _payloads(ckpt.src["good"][0])
    records[0] = d.SerializeToString()
    ckpt.replace(0, b"".join(_frame(r) for r in records), rewrite_manifest=True)


def _manifest_text(ckpt, edit):
    edited = edit(ckpt.manifest().read_bytes().decode())
    ckpt.manifest().write_bytes(edited.encode() if isinstance(edited, str) else edited)


def _first_shard_line(lines) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith("shard "))


def _swap_lines(text):
    lines = text.split("\n")
    k = _first_shard_line(lines)
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    return "\n".join(lines)


def _pending_temps_gone(ckpt):
    # The new set (good) was committed by a pending manifest, then its temporaries vanished
    # (removed by hand, or never synced): the final names still hold an older save.
    temps = [f".good-{i:05d}-of-{N:05d}.tmp-{i:016x}" for i in range(N)]
    ckpt.manifest().write_bytes(_manifest("good", ckpt.src["good"], "pending", temps))
    for i in range(N):
        ckpt.replace(i, ckpt.src["earlier"][i])


MANIFEST_EDITS = {
    "manifest_bad_header": lambda t: t.replace("hashlab-checkpoint-manifest 2", "hashlab 2"),
    "manifest_version_3": lambda t: t.replace("manifest 2", "manifest 3"),
    "manifest_version_1_with_generation": lambda t: t.replace("manifest 2", "manifest 1"),
    "manifest_generation_missing": lambda t: t.replace("generation 1\n", ""),
    "manifest_generation_zero": lambda t: t.replace("generation 1\n", "generation 0\n"),
    "manifest_generation_leading_zero": lambda t: t.replace("generation 1\n",
                                                            "generation 01\n"),
    "manifest_generation_huge": lambda t: t.replace("generation 1\n",
                                                    "generation 18446744073709551616\n"),
    "manifest_generation_hex": lambda t: t.replace("generation 1\n", "generation 0x1\n"),
    "manifest_unknown_state": lambda t: t.replace("state committed", "state done"),
    "manifest_extra_field": lambda t: t.replace("\nshard 1 ", "\nshard 1 x ", 1),
    "manifest_missing_field": lambda t: "\n".join(
        line.rsplit(" ", 1)[0] if line.startswith("shard 2 ") else line
        for line in t.split("\n")),
    "manifest_size_not_a_number": lambda t: _edit_field(t, 1, 3, "12a"),
    "manifest_size_leading_zero": lambda t: _edit_field(t, 1, 3, lambda v: "0" + v),
    "manifest_size_negative": lambda t: _edit_field(t, 1, 3, lambda v: "-" + v),
    "manifest_size_huge": lambda t: _edit_field(t, 1, 3, "18446744073709551616"),
    "manifest_size_wrong": lambda t: _edit_field(t, 1, 3, lambda v: str(int(v) + 1)),
    "manifest_crc_uppercase": lambda t: _edit_field(t, 1, 4, lambda v: v.upper()
                                                    if v.upper() != v else "ABCDEF01"),
    "manifest_crc_short": lambda t: _edit_field(t, 1, 4, lambda v: v[:7]),
    "manifest_crc_wrong": lambda t: _edit_field(t, 1, 4, lambda v: f"{int(v, 16) ^ 1:08x}"),
    "manifest_lines_out_of_order": _swap_lines,
    "manifest_foreign_name": lambda t: t.replace("good-00001-of-00003", "other-00001-of-00003"),
    "manifest_wrong_count_in_name": lambda t: t.replace("good-00001-of-00003",
                                                        "good-00001-of-00004"),
    "manifest_zero_shards": lambda t: "\n".join(t.split("\n")[:3] + ["shards 0", ""]),
    "manifest_count_mismatch": lambda t: t.replace("shards 3", "shards 4"),
    "manifest_no_final_newline": lambda t: t.rstrip("\n"),
    "manifest_crlf": lambda t: t.replace("\n", "\r\n"),
    "manifest_trailing_space": lambda t: t.replace("\nshard 0", " \nshard 0"),
    "manifest_empty": lambda t: "",
    "manifest_binary": lambda t: bytes(range(256)) * 4,
    "manifest_too_large": lambda t: t + "#" * (17 << 20),
    "manifest_pending_without_temp": lambda t: t.replace("state committed", "state pending"),
    "manifest_pending_bad_temp": lambda t: "\n".join(
        (line + " ../../etc/passwd") if line.startswith("shard ") else line
        for line in t.replace("state committed", "state pending").split("\n")),
}


def _edit_field(text, line_index, field, value):
    lines = text.split("\n")
    k = _first_shard_line(lines) + line_index
    words = lines[k].split(" ")
    words[field] = value(words[field]) if callable(value) else value
    lines[k] = " ".join(words)
    return "\n".join(lines)


def _manifest_special(ckpt, kind):
    path = ckpt.manifest()
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")


CASES = {
    # name: (manifest kept?, damage)
    "truncate_at_every_record_boundary": (True, lambda c: _truncations(c, True)),
    "truncate_inside_records": (True, lambda c: _truncations(c, False)),
    "truncate_inside_records_no_manifest": (False, lambda c: _truncations(c, False)),
    "duplicated_shard": (True, lambda c: c.replace(1, c.src["good"][0])),
    "duplicated_shard_no_manifest": (False, lambda c: c.replace(1, c.src["good"][0])),
    "duplicated_shard_manifest_rewritten": (True, lambda c: c.replace(1, c.src["good"][0], True)),
    "other_tables_shard": (True, lambda c: c.replace(1, c.src["other"][1])),
    "stale_shard_of_an_earlier_save": (True, lambda c: c.replace(1, c.src["earlier"][1])),
    "symlink_to_other_checkpoints_shard": (True, lambda c: _symlink(c, "other")),
    "symlink_to_own_other_shard_no_manifest": (False, lambda c: _symlink(c, "self")),
    "zero_length_shard": (True, lambda c: c.replace(1, b"")),
    "fifo": (True, lambda c: c.make_special(1, "fifo")),
    "fifo_no_manifest": (False, lambda c: c.make_special(1, "fifo")),
    "dev_zero_symlink": (True, lambda c: c.make_special(1, "dev_zero")),
    "dev_zero_symlink_no_manifest": (False, lambda c: c.make_special(1, "dev_zero")),
    "directory_as_shard": (True, lambda c: c.make_special(1, "directory")),
    "directory_as_shard_no_manifest": (False, lambda c: c.make_special(1, "directory")),
    "length_bomb": (True, lambda c: c.replace(1, _length_bomb())),
    "length_bomb_manifest_rewritten": (True, lambda c: c.replace(1, _length_bomb(), True)),
    "length_bomb_no_manifest": (False, lambda c: c.replace(1, _length_bomb())),
    "misplaced_id_manifest_rewritten": (True, _misplaced_id),
    "repeated_id_manifest_rewritten": (True, _repeated_id),
    "timestamp_beyond_uint32": (True, _bad_timestamp),
    "pending_manifest_whose_temporaries_are_gone": (True, _pending_temps_gone),
    "manifest_fifo": (True, lambda c: _manifest_special(c, "fifo")),
    "manifest_directory": (True, lambda c: _manifest_special(c, "directory")),
    "manifest_dev_zero": (True, lambda c: _manifest_special(c, "dev_zero")),
    **{name: (True, lambda c, e=edit: _manifest_text(c, e)) for name, edit in
       MANIFEST_EDITS.items()},
}


def _symlink(ckpt, target):
    ckpt.shard(1).unlink()
    if target == "other":
        other = ckpt.folder / "elsewhere" / f"other-00001-of-{N:05d}"
        other.parent.mkdir()
        other.write_bytes(ckpt.src["other"][1])
        ckpt.shard(1).symlink_to(other)
    else:
        ckpt.shard(1).symlink_to(ckpt.shard(0))


def _victim(engine):
    t = engine.create_table(_config(engine))
    t.assign(np.array([7, 8, -9], np.int64), np.array([[1, 2], [3, 4], [5, 6]], np.float32),
             req_time=77)
    return t


def _state(t):
    probe = np.r_[np.arange(-10, 10), np.arange(0, 1000) * 1_000_003].astype(np.int64)
    return t.size(), t.lookup_entry(probe), t.max_update_ts


def _report(engine, case, outcome):
    path = os.environ.get("HASHLAB_CORPUS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"engine": engine.name, "case": case, "outcome": outcome}) + "\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_checkpoint_is_a_checkpoint_error_and_changes_nothing(
        engine, tmp_path, tmp_path_factory, case):
    require(engine, op=("save", "restore", "lookup_entry"))
    keep_manifest, damage = CASES[case]
    src = _sources(engine, tmp_path_factory)
    victim = _victim(engine)
    before = _state(victim)

    def fresh_copy(k):
        folder = tmp_path / f"v{k}"
        folder.mkdir()
        ckpt = Checkpoint(folder, src)
        if not keep_manifest:
            ckpt.manifest().unlink()
        return ckpt

    first = fresh_copy(0)
    variants = damage(first)
    copies = [first] if variants is None else []
    for k, variant in enumerate(variants or []):
        copies.append(fresh_copy(k + 1))
        variant(copies[-1])
    failures, last = [], None
    for k, ckpt in enumerate(copies):
        kind, exc = restore_with_time_limit(victim, ckpt.base, ckpt.folder, TIME_LIMIT_S)
        if kind != "error" or not isinstance(exc, engines.CheckpointError):
            failures.append(f"variant {k}: {kind} {type(exc).__name__ if exc else ''} {exc}")
        elif _state(victim) != before:
            failures.append(f"variant {k}: CheckpointError but the table changed")
        last = exc
    _report(engine, case, "; ".join(failures[:3]) if failures else
            f"CheckpointError x{len(copies)}: {str(last)[:200]}")
    assert not failures, f"{case}: {len(failures)} of {len(copies)} variants: {failures[:5]}"


def test_pending_manifest_with_its_temporaries_restores_the_new_set(engine, tmp_path,
                                                                    tmp_path_factory):
    """The positive twin of the case above: a save killed after its commit point restores
    the new set from the temporaries the pending manifest names, not the older final files."""
    require(engine, op=("save", "restore", "lookup_entry"))
    src = _sources(engine, tmp_path_factory)
    (tmp_path / "killed").mkdir()
    (tmp_path / "ref").mkdir()
    ckpt = Checkpoint(tmp_path / "killed", src)
    temps = [f".good-{i:05d}-of-{N:05d}.tmp-{i:016x}" for i in range(N)]
    for i in range(N):
        (ckpt.folder / temps[i]).write_bytes(src["good"][i])
        ckpt.replace(i, src["earlier"][i])
    ckpt.manifest().write_bytes(_manifest("good", src["good"], "pending", temps))
    t = engine.create_table(_config(engine))
    t.restore(ckpt.base)
    ref = engine.create_table(_config(engine))
    ref.restore(Checkpoint(tmp_path / "ref", src).base)
    assert t.size() == 60 and _state(t) == _state(ref)
