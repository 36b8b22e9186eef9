"""EntryDump records of table checkpoints (fsf §B.2): one encoder and one decoder for the
Python engines (numpy, tensorflow), built with the protobuf library.

An entry is (id, embedding f32[D], optimizer state words f32[W], timestamp). Which state
words go to which dump field is `engines.vocabulary.OPTIMIZERS`, the same table the config
layout derives from; the native engines encode the same bytes in C++ (entry_dump.cc) and the
conformance suite checks they agree byte for byte.
"""
from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError

from engines.errors import CheckpointError
from engines.formats.shards import find_shards
from engines.formats.tfrecord import read_records
from engines.protos.embedding_hash_table_pb2 import EntryDump
from engines.vocabulary import OPTIMIZERS

F = np.float32


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
    dumps = []
    for path in find_shards(basename):
        dumps.extend(parse_entry_dump(p, path, i) for i, p in enumerate(read_records(path)))
    return dumps


def _put_state(msg, fields, words: np.ndarray, dim: int) -> None:
    pos = 0
    for field, kind in fields:
        if kind == "vec":
            getattr(msg, field).extend(words[pos:pos + dim].tolist())
            pos += dim
        elif kind == "f32":
            setattr(msg, field, float(words[pos]))
            pos += 1
        else:   # "i64": two words holding an int64
            setattr(msg, field, int(words[pos:pos + 2].copy().view(np.int64)[0]))
            pos += 2


def entry_dump(spec, num: np.ndarray, state: np.ndarray, ts: int,
               entry_id: int | None = None) -> EntryDump:
    """The EntryDump of one entry of a table with layout `spec` (engines.config.TableSpec)."""
    d = EntryDump()
    if entry_id is not None:
        d.id = int(entry_id)
    d.num.extend(num.tolist())
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
    return int(d.id), num, state, int(d.last_update_ts_sec)
