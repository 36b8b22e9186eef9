"""Native hash filters: the counting logic runs in C++ (inside the table's admission pass);
checkpoints use the same records as engines/reference/filters.py (fsf §A.8), encoded here with
protobuf since filter saves are rare and small next to table saves."""
from __future__ import annotations

import numpy as np

from engines import api
from engines.api import CheckpointError
from engines.formats.shards import find_shards, read_shards, shard_name, write_shards

CELLS_PER_RECORD = 10000
SPLIT_PADDING = 64
MAX_FORWARD_STEP = 2
SLIDING_MAX_STEP = 16


class NativeHashFilter(api.HashFilter):
    def __init__(self, spec, engine_name: str = "native-cpu"):
        from engines.native.cpu import native_module
        mod = native_module()
        self.spec = spec
        self.kind = spec.kind
        self.engine_name = engine_name
        thresholds = np.ascontiguousarray(spec.thresholds, np.int32)
        if spec.kind == "sliding":
            self._f = mod.Filter.sliding(spec.capacity, spec.split_num, thresholds)
        elif spec.kind == "probabilistic":
            self._f = mod.Filter.probabilistic(spec.seed, spec.equal_probability, thresholds)
        else:
            self._f = mod.Filter.dummy(thresholds)

    # ---- the Monolith filter interface (for parity tests) ------------------------------
    def should_be_filtered(self, fid: int, count: int = 1, in_table: bool | None = None) -> bool:
        return self._f.should_be_filtered(fid, count, -1 if in_table is None else int(in_table))

    def add(self, fid: int, count: int) -> int:
        return self._f.add(fid, count)

    def get(self, fid: int) -> int:
        return self._f.get(fid)

    def estimated_total_element(self) -> int:
        return self._f.estimated_total_element()

    def failure_count(self) -> int:
        return self._f.failure_count()

    # ---- hooks -------------------------------------------------------------------------
    def _intercept_gradient(self, ids, grads):
        out = grads.copy()
        out[self._f.intercept_mask(ids).astype(bool)] = 0
        return out

    def _save(self, basename):
        if self.kind != "sliding":
            return []
        from engines.protos import embedding_hash_table_pb2 as pb
        st = self._f.sliding_state()
        shards = []
        for split in st["splits"][:st["split_num"]]:
            meta = pb.HashFilterSplitMetaDump(
                failure_count=split["failure_count"], total_size=split["total_size"],
                num_elements=split["num_elements"], fill_rate=split["fill_rate"],
                sliding_hash_filter_meta=pb.SlidingHashFilterMetaDump(
                    split_num=st["split_num"], max_forward_step=MAX_FORWARD_STEP,
                    max_backward_step=st["max_backward_step"], max_step=SLIDING_MAX_STEP,
                    head=st["head"], head_increment=st["head_increment"],
                    failure_count=st["failure_count"]))
            records = [meta.SerializeToString()]
            cells = split["cells"]
            for off in range(0, len(cells), CELLS_PER_RECORD):
                records.append(pb.HashFilterSplitDataDump(
                    offset=off, data=cells[off:off + CELLS_PER_RECORD].tolist())
                    .SerializeToString())
            shards.append(records)
        return write_shards(basename, shards)

    def _restore(self, basename):
        if self.kind == "dummy":
            return None
        if self.kind == "probabilistic":
            find_shards(basename)       # as Monolith: the file set must exist
            return None
        st = self._f.sliding_state()
        shards = read_shards(basename)  # every file read and CRC-checked first
        n = len(shards)
        names = [shard_name(basename, i, n) for i in range(n)]
        metas = [self._check_meta(records, path, st) for records, path in zip(shards, names)]
        if n != st["split_num"]:
            raise CheckpointError(f"split_num: {st['split_num']} doesn't match with: {n} files "
                                  f"of hash filter checkpoint {basename}")
        ring = {(m.sliding_hash_filter_meta.head, m.sliding_hash_filter_meta.head_increment,
                 m.sliding_hash_filter_meta.failure_count) for m in metas}
        if len(ring) != 1:
            raise CheckpointError(f"{basename}: the split files disagree on head/head_increment/"
                                  f"failure_count: {sorted(ring)}")
        head, head_increment, failures = ring.pop()
        if head >= len(st["splits"]):
            raise CheckpointError(f"head: {head} is not a split index (< {len(st['splits'])}) "
                                  f"in {names[0]}")
        staged = []
        for i in range(n):
            meta = metas[i]
            cells = self._staged_cells(st["splits"][i]["cells"], meta, shards[i], names[i])
            staged.append((meta.total_size, meta.num_elements, meta.fill_rate,
                           meta.failure_count, cells))
        self._f.sliding_set_state(head, head_increment, failures, staged)

    @staticmethod
    def _check_meta(records, path, st):
        from engines.protos import embedding_hash_table_pb2 as pb
        if not records:
            raise CheckpointError(f"{path}: empty file, record 0 (HashFilterSplitMetaDump) is "
                                  f"missing")
        meta = _parse(pb.HashFilterSplitMetaDump, records[0], path, 0)
        sliding = meta.sliding_hash_filter_meta
        for name, expected in (("split_num", st["split_num"]),
                               ("max_forward_step", MAX_FORWARD_STEP),
                               ("max_backward_step", st["max_backward_step"]),
                               ("max_step", SLIDING_MAX_STEP)):
            got = getattr(sliding, name)
            if got != expected:
                raise CheckpointError(f"{name}: {expected} doesn't match with: {got} read from "
                                      f"hash filter checkpoint file {path}")
        if meta.total_size < 1:
            raise CheckpointError(f"{path}: total_size must be >= 1, got {meta.total_size}")
        if meta.total_size > (1 << 34):
            raise CheckpointError(f"{path}: total_size {meta.total_size} is implausibly large")
        return meta

    @staticmethod
    def _staged_cells(current, meta, records, path):
        from engines.protos import embedding_hash_table_pb2 as pb
        cells = np.zeros(meta.total_size + SPLIT_PADDING, dtype=np.uint16)
        keep = min(len(cells), len(current))
        cells[:keep] = current[:keep]
        for r, payload in enumerate(records[1:], start=1):
            data = _parse(pb.HashFilterSplitDataDump, payload, path, r)
            values = np.asarray(data.data, dtype=np.int64)
            if data.offset + len(values) > len(cells):
                raise CheckpointError(f"{path}: record {r}: cells [{data.offset}, "
                                      f"{data.offset + len(values)}) exceed the split's "
                                      f"{len(cells)} cells")
            if len(values) and values.max() > 0xFFFF:
                raise CheckpointError(f"{path}: record {r}: cell value {int(values.max())} does "
                                      f"not fit 16 bits")
            cells[data.offset:data.offset + len(values)] = values
        return cells


def _parse(message_type, payload, path, index):
    msg = message_type()
    try:
        msg.ParseFromString(payload)
    except Exception as exc:  # protobuf's DecodeError
        raise CheckpointError(f"{path}: record {index}: cannot parse "
                              f"{message_type.DESCRIPTOR.name}: {exc}") from exc
    return msg
