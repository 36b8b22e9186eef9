"""EntryDump records of table checkpoints (fsf §B.2): one encoder and one decoder for the
Python engines (numpy, tensorflow), built with the protobuf library.

An entry is (id, embedding f32[D], optimizer state words f32[W], timestamp). Which state
words go to which dump field is `engines.vocabulary.OPTIMIZERS`, the same table the config
layout derives from; the native engines encode the same bytes in C++ (entry_dump.cc) and the
conformance suite checks they agree byte for byte.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from google.protobuf.message import DecodeError

from engines.errors import CheckpointError
from engines.formats.shards import read_shard_set, shard_of
from engines.protos.embedding_hash_table_pb2 import EntryDump
from engines.vocabulary import OPTIMIZERS

F = np.float32
MAX_TIMESTAMP = (1 << 32) - 1     # entry timestamps are uint32 seconds
# The one bit pattern of NaN in a dump (a positive quiet NaN without payload); the C++ encoder
# (entry_dump.cc, kCanonicalNaN) writes the same (docs/checkpoints.md, "NaN").
CANONICAL_NAN = 0x7FC00000
_NAN = np.array([CANONICAL_NAN], np.uint32).view(F)[0]


def _canonical(values: np.ndarray) -> np.ndarray:
    """values with every NaN replaced by the canonical one (a copy only when there is one)."""
    nan = np.isnan(values)
    return np.where(nan, _NAN, values) if nan.any() else values


def parse_entry_dump(payload: bytes, path: str, index: int) -> EntryDump:
    """Parse one record; CheckpointError naming the file and record index if it is not an
    EntryDump."""
    try:
        return EntryDump.FromString(payload)
    except DecodeError as e:
        raise CheckpointError(f"{path}: record {index}: not a valid EntryDump ({e})") from None


def load_entry_dumps(basename: str) -> list[EntryDump]:
    """Every EntryDump of a table checkpoint, shard by shard in record order.

    Everything is read, CRC-checked and parsed before returning, so a caller that restores from
    the result never sees a half-valid checkpoint.
    """
    return read_shard_set(basename, lambda _, shards: [
        parse_entry_dump(p, shard.path, i) for shard, records in shards
        for i, p in enumerate(records)])


def _put_state(msg, fields, words: np.ndarray, dim: int) -> None:
    pos = 0
    for field, kind in fields:
        if kind == "vec":
            getattr(msg, field).extend(_canonical(words[pos:pos + dim]).tolist())
            pos += dim
        elif kind == "f32":
            setattr(msg, field, float(_canonical(words[pos:pos + 1])[0]))
            pos += 1
        else:   # "i64": two words holding an int64
            setattr(msg, field, int(words[pos:pos + 2].copy().view(np.int64)[0]))
            pos += 2


def entry_dump(spec, num: np.ndarray, state: np.ndarray, ts: int,
               entry_id: int | None = None) -> EntryDump:
    """The EntryDump of one entry of a table with layout `spec` (engines.config.TableSpec);
    every NaN is written as CANONICAL_NAN."""
    d = EntryDump()
    if entry_id is not None:
        d.id = int(entry_id)
    d.num.extend(_canonical(num).tolist())
    d.opt.SetInParent()
    for seg in spec.segments:
        info = OPTIMIZERS[seg.optimizer]
        if info.dump is None:
            continue                       # moving_average: Monolith appends no dump
        single = d.opt.dump.add()
        member = getattr(single, info.dump)
        member.SetInParent()               # sgd's dump is an empty message, but present
        _put_state(member, info.fields,
                   state[seg.state_offset:seg.state_offset + seg.state_words], seg.dim)
    d.last_update_ts_sec = int(ts)
    return d


def encode_entry(spec, num, state, ts, entry_id=None) -> bytes:
    return entry_dump(spec, num, state, ts, entry_id).SerializeToString()


def _take_state(where, seg, kind, msg, fields, words: np.ndarray) -> None:
    pos, dim = 0, seg.dim
    for field, word_kind in fields:
        if word_kind == "vec":
            values = getattr(msg, field)
            if len(values) != dim:
                raise CheckpointError(f"{where}: segment {seg.index}: {kind}.{field} has "
                                      f"{len(values)} values, expected {dim}")
            words[pos:pos + dim] = values
            pos += dim
        elif word_kind == "f32":
            words[pos] = F(getattr(msg, field))
            pos += 1
        else:
            words[pos:pos + 2] = np.array([getattr(msg, field)], np.int64).view(F)
            pos += 2


def decode_entry(spec, payload: bytes, path: str, index: int, quirks: bool = False):
    """(id, num f32[<= D], state words f32[W], timestamp) of one record, fully validated
    against the table layout; CheckpointError "<path>: record <index>: ..." otherwise.

    quirks=True reproduces Monolith's Adam restore: both beta powers go through the
    beta1_power slot, so the saved beta2_power lands there and beta2_power restarts at the
    config's beta2 (docs/semantics.md §4)."""
    where = f"{path}: record {index}"
    d = parse_entry_dump(payload, path, index)
    if not d.HasField("id"):
        raise CheckpointError(f"{where}: EntryDump has no id")
    num = np.asarray(d.num, dtype=F)
    if len(num) > spec.dim:
        raise CheckpointError(f"{where}: {len(num)} embedding values, table dim is {spec.dim}")
    dumps = list(d.opt.dump)
    owners = [seg for seg in spec.segments if OPTIMIZERS[seg.optimizer].dump is not None]
    if len(dumps) != len(owners):
        raise CheckpointError(f"{where}: {len(dumps)} optimizer dumps, the table's optimizers "
                              f"{spec.optimizers} need {len(owners)}")
    state = np.zeros(spec.state_words, F)
    for seg, dump in zip(owners, dumps):
        info = OPTIMIZERS[seg.optimizer]
        kind = dump.WhichOneof("type")
        if kind != info.dump:
            raise CheckpointError(f"{where}: segment {seg.index} dump is {kind!r}, the table's "
                                  f"optimizer is {seg.optimizer!r}")
        words = state[seg.state_offset:seg.state_offset + seg.state_words]
        _take_state(where, seg, kind, getattr(dump, kind), info.fields, words)
        if quirks and seg.optimizer == "adam":
            k = 2 * seg.dim
            words[k] = words[k + 1]
            words[k + 1] = F(seg.opt_params["beta2"])
    ts = int(d.last_update_ts_sec)
    if not 0 <= ts <= MAX_TIMESTAMP:
        raise CheckpointError(f"{where}: last_update_ts_sec {ts} is outside [0, {MAX_TIMESTAMP}] "
                              f"(entry timestamps are uint32 seconds)")
    return int(d.id), num, state, ts


@dataclasses.dataclass
class StagedEntries:
    """Every entry of a checkpoint, parsed and checked, in file order; each id once."""
    ids: np.ndarray            # int64 [m]
    nums: list                 # f32 arrays of <= dim values (a shorter one keeps the init tail)
    states: np.ndarray         # f32 [m, state_words]
    stamps: np.ndarray         # int64 [m], each in [0, 2**32 - 1]


def stage_entries(spec, basename: str, quirks: bool = False) -> StagedEntries:
    """Read, check and parse a whole table checkpoint (docs/checkpoints.md, "Restore"):
    every record against the table layout, every id in the shard its fixed hash names (sets
    with a manifest), no id twice. CheckpointError naming the file and record otherwise.
    A save by another process meanwhile does not matter (shards.read_shard_set)."""
    return read_shard_set(basename, lambda shard_set, shards: _stage(spec, shard_set, shards,
                                                                     quirks))


def _stage(spec, shard_set, shards, quirks: bool) -> StagedEntries:
    ids, nums, states, stamps = [], [], [], []
    starts = []                                   # (first entry index, path) of every file
    for index, (shard, records) in enumerate(shards):
        first = len(ids)
        starts.append((first, shard.path))
        for k, payload in enumerate(records):
            entry_id, num, state, ts = decode_entry(spec, payload, shard.path, k, quirks)
            ids.append(entry_id)
            nums.append(num)
            states.append(state)
            stamps.append(ts)
        if shard_set.from_manifest:
            _check_placement(np.array(ids[first:], np.int64), index, shard_set.count, shard.path)
    ids_arr = np.array(ids, np.int64)
    _check_unique(ids_arr, starts)
    return StagedEntries(ids_arr, nums,
                         np.array(states, F).reshape(len(ids), spec.state_words),
                         np.array(stamps, np.int64))


def _check_placement(ids: np.ndarray, index: int, count: int, path: str) -> None:
    if not len(ids):
        return
    owner = shard_of(ids, count)
    wrong = np.flatnonzero(owner != index)
    if len(wrong):
        k = int(wrong[0])
        raise CheckpointError(f"{path}: record {k}: id {int(ids[k])} belongs to shard "
                              f"{int(owner[k])} of {count}, not this one (a foreign or "
                              f"misplaced shard)")


def _check_unique(ids: np.ndarray, starts: list) -> None:
    if len(ids) < 2:
        return
    order = np.argsort(ids, kind="stable")
    repeats = order[1:][ids[order[1:]] == ids[order[:-1]]]
    if not len(repeats):
        return
    second = int(repeats.min())                   # the earliest record that repeats an id
    first = int(np.flatnonzero(ids == ids[second])[0])

    def where(i: int) -> str:
        start, path = [s for s in starts if s[0] <= i][-1]   # empty files share a start
        return f"{path} record {i - start}"
    raise CheckpointError(f"id {int(ids[second])} appears twice: {where(first)} and "
                          f"{where(second)} (a duplicated or foreign shard)")
