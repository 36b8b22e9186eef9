"""Sliding hash-filter checkpoints (fsf §A.8): one `basename-%05d-of-%05d` file per split, each
a HashFilterSplitMetaDump record followed by HashFilterSplitDataDump records of 10000 cells.

Shared by every engine's sliding filter, so the bytes and the validation are written once.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from google.protobuf.message import DecodeError

from engines.errors import CheckpointError
from engines.formats.shards import read_shard_set, write_shards
from engines.protos import embedding_hash_table_pb2 as pb

CELLS_PER_RECORD = 10000     # Monolith's kMaxNumPerTfRecord
CELL_PADDING = 64            # cells kept after total_size to absorb probe overflow
MAX_FORWARD_STEP = 2
SLIDING_MAX_STEP = 16


@dataclasses.dataclass
class SplitDump:
    failure_count: int
    total_size: int
    num_elements: int
    fill_rate: float
    cells: np.ndarray        # uint16 [total_size + CELL_PADDING]


@dataclasses.dataclass
class SlidingDump:
    split_num: int
    max_backward_step: int
    head: int
    head_increment: int
    failure_count: int
    splits: list             # SplitDump per saved split


def save_sliding(basename: str, dump: SlidingDump) -> list[str]:
    """Write the first split_num splits (Monolith saves only those, even when split_num < 5)."""
    ring = pb.SlidingHashFilterMetaDump(
        split_num=dump.split_num, max_forward_step=MAX_FORWARD_STEP,
        max_backward_step=dump.max_backward_step, max_step=SLIDING_MAX_STEP,
        head=dump.head, head_increment=dump.head_increment, failure_count=dump.failure_count)
    shards = []
    for split in dump.splits[:dump.split_num]:
        # Keyword construction marks every proto2 field present, so zeros are serialized too.
        meta = pb.HashFilterSplitMetaDump(
            failure_count=split.failure_count, total_size=split.total_size,
            num_elements=split.num_elements, fill_rate=split.fill_rate,
            sliding_hash_filter_meta=ring)
        records = [meta.SerializeToString()]
        for off in range(0, len(split.cells), CELLS_PER_RECORD):
            records.append(pb.HashFilterSplitDataDump(
                offset=off, data=split.cells[off:off + CELLS_PER_RECORD].tolist())
                .SerializeToString())
        shards.append(records)
    return write_shards(basename, shards)


def load_sliding(basename: str, split_num: int, max_backward_step: int,
                 live_cells: list) -> SlidingDump:
    """Read and validate every split file against the live filter's geometry before anything
    changes. `live_cells` lists the live splits' cell arrays (only their number is used: the
    files must cover every cell, as Monolith's writer and ours do). CheckpointError names the
    field or the file and record."""
    read = read_shard_set(basename, lambda _, files: list(files))  # every file read, checked
    shards = [records for _, records in read]
    names = [f.path for f, _ in read]
    n = len(shards)
    metas = [_check_meta(records, path, split_num, max_backward_step)
             for records, path in zip(shards, names)]
    if n != split_num:
        raise CheckpointError(f"split_num: {split_num} doesn't match with: {n} files of hash "
                              f"filter checkpoint {basename}")
    ring = {(m.sliding_hash_filter_meta.head, m.sliding_hash_filter_meta.head_increment,
             m.sliding_hash_filter_meta.failure_count) for m in metas}
    if len(ring) != 1:
        raise CheckpointError(f"{basename}: the split files disagree on head/head_increment/"
                              f"failure_count: {sorted(ring)}")
    head, head_increment, failures = ring.pop()
    if head >= len(live_cells):
        raise CheckpointError(f"head: {head} is not a split index (< {len(live_cells)}) in "
                              f"{names[0]}")
    splits = [SplitDump(m.failure_count, m.total_size, m.num_elements, m.fill_rate,
                        _staged_cells(m, shards[i], names[i]))
              for i, m in enumerate(metas)]
    return SlidingDump(split_num, max_backward_step, head, head_increment, failures, splits)


def _parse(message_type, payload: bytes, path: str, index: int):
    try:
        return message_type.FromString(payload)
    except DecodeError as exc:
        raise CheckpointError(f"{path}: record {index}: cannot parse "
                              f"{message_type.DESCRIPTOR.name}: {exc}") from exc


def _check_meta(records, path, split_num, max_backward_step):
    if not records:
        raise CheckpointError(f"{path}: empty file, record 0 (HashFilterSplitMetaDump) is "
                              f"missing")
    meta = _parse(pb.HashFilterSplitMetaDump, records[0], path, 0)
    sliding = meta.sliding_hash_filter_meta
    for name, expected in (("split_num", split_num), ("max_forward_step", MAX_FORWARD_STEP),
                           ("max_backward_step", max_backward_step),
                           ("max_step", SLIDING_MAX_STEP)):
        got = getattr(sliding, name)
        if got != expected:
            raise CheckpointError(f"{name}: {expected} doesn't match with: {got} read from "
                                  f"hash filter checkpoint file {path}")
    if meta.total_size < 1:
        raise CheckpointError(f"{path}: total_size must be >= 1, got {meta.total_size}")
    return meta


def _staged_cells(meta, records, path) -> np.ndarray:
    """The split's cells from its data records, which must cover all total_size + padding
    cells in order (Monolith's writer and ours cut the array into consecutive records). The
    cells are allocated only after the records are known to cover them, so a meta record
    cannot make us allocate more than the file's own data holds."""
    need = meta.total_size + CELL_PADDING
    parts, covered = [], 0
    for r, payload in enumerate(records[1:], start=1):
        data = _parse(pb.HashFilterSplitDataDump, payload, path, r)
        values = np.asarray(data.data, dtype=np.int64)
        if data.offset != covered:
            raise CheckpointError(f"{path}: record {r}: offset {data.offset}, the records "
                                  f"before it end at cell {covered}")
        if covered + len(values) > need:
            raise CheckpointError(f"{path}: record {r}: cells [{covered}, "
                                  f"{covered + len(values)}) exceed the split's {need} cells "
                                  f"(total_size {meta.total_size} + {CELL_PADDING})")
        if len(values) and values.max() > 0xFFFF:
            raise CheckpointError(f"{path}: record {r}: cell value {int(values.max())} does not "
                                  f"fit 16 bits")
        parts.append(values)
        covered += len(values)
    if covered != need:
        raise CheckpointError(f"{path}: the data records cover {covered} of the split's {need} "
                              f"cells (total_size {meta.total_size} + {CELL_PADDING}); a split "
                              f"file must cover every cell")
    return np.concatenate(parts).astype(np.uint16)
