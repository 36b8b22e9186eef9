"""Sliding hash-filter checkpoints that lie (issue 11, defect 9): a meta record declaring a
huge total_size cannot make restore allocate beyond what the file's data records hold, a
file cut down to its meta record is an error, data records must cover every cell in order
(as Monolith's writer and ours do), and special files are refused. Every case leaves the
filter unchanged, on every engine with a sliding filter."""
from __future__ import annotations

import os
import re
import tracemalloc

import pytest

from engines import CheckpointError
from engines.protos import embedding_hash_table_pb2 as pb
from engines.testing.helpers import (ids, manifest_by_hand, require, restore_with_time_limit,
                                    rows, tfrecord_frame, tfrecord_payloads)

pytestmark = pytest.mark.conformance_area("filters")

SPLITS = 7


def _filter(engine):
    return engine.create_hash_filter("sliding", capacity=300, split_num=SPLITS,
                                     occurrence_threshold=2)


def _trained(engine):
    f = _filter(engine)
    f.intercept_gradient(ids(1, 3 << 17, 1), rows(1, 1, 1))
    return f


def _saved_bytes(f, where):
    f.save(str(where))
    return [open(f"{where}-{i:05d}-of-{SPLITS:05d}", "rb").read() for i in range(SPLITS)]


def _write(folder, files, manifest: bool):
    folder.mkdir()
    for i, data in enumerate(files):
        (folder / f"hf-{i:05d}-of-{SPLITS:05d}").write_bytes(data)
    if manifest:
        (folder / "hf.manifest").write_bytes(manifest_by_hand("hf", files))
    return str(folder / "hf")


def _split_file(meta: pb.HashFilterSplitMetaDump, data_records) -> bytes:
    return b"".join(tfrecord_frame(r) for r in [meta.SerializeToString()] + data_records)


def _records_of(data: bytes):
    payloads = tfrecord_payloads(data)
    return pb.HashFilterSplitMetaDump.FromString(payloads[0]), payloads[1:]


def _huge_total_size(files):
    meta, _ = _records_of(files[2])
    meta.total_size = 2**31
    # one record of 10 cells: a 51-byte file in the reproducer
    files[2] = _split_file(meta, [pb.HashFilterSplitDataDump(offset=0, data=[0] * 10)
                                  .SerializeToString()])


def _cut_to_meta(files):
    files[4] = tfrecord_frame(tfrecord_payloads(files[4])[0])


def _second_record_at(offset):
    """Split 1's cells cut into two records, the second starting at `offset` instead of 20:
    30 leaves a gap, 10 an overlap."""
    def damage(files):
        meta, data = _records_of(files[1])
        cells = list(pb.HashFilterSplitDataDump.FromString(data[0]).data)
        data = [pb.HashFilterSplitDataDump(offset=0, data=cells[:20]).SerializeToString(),
                pb.HashFilterSplitDataDump(offset=offset, data=cells[offset:])
                .SerializeToString()]
        files[1] = _split_file(meta, data)
    return damage


def _short(files):
    meta, data = _records_of(files[6])
    cells = list(pb.HashFilterSplitDataDump.FromString(data[0]).data)
    files[6] = _split_file(meta, [pb.HashFilterSplitDataDump(offset=0, data=cells[:-1])
                                  .SerializeToString()])


def _too_long(files):
    meta, data = _records_of(files[6])
    cells = list(pb.HashFilterSplitDataDump.FromString(data[0]).data)
    files[6] = _split_file(meta, [pb.HashFilterSplitDataDump(offset=0, data=cells + [0])
                                  .SerializeToString()])


DAMAGES = {"huge_total_size": _huge_total_size, "cut_to_meta_record": _cut_to_meta,
           "gap_between_data_records": _second_record_at(30),
           "overlapping_data_records": _second_record_at(10),
           "fewer_cells_than_total_size": _short, "more_cells_than_total_size": _too_long}


def _state(f, where):
    f.save(str(where))
    return [open(f"{where}-{i:05d}-of-{SPLITS:05d}", "rb").read() for i in range(SPLITS)]


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "no_manifest"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_lying_filter_file_is_a_checkpoint_error_and_allocates_nothing_big(
        engine, tmp_path, damage, manifest):
    require(engine, filter="sliding")
    files = _saved_bytes(_trained(engine), tmp_path / "good")
    DAMAGES[damage](files)
    base = _write(tmp_path / "bad", files, manifest)
    f = _trained(engine)
    f.intercept_gradient(ids(5), rows(1))
    before = _state(f, tmp_path / "before")
    tracemalloc.start()
    try:
        kind, exc = restore_with_time_limit(f, base, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kind == "error" and isinstance(exc, CheckpointError), (kind, exc)
    assert re.search(r"hf-0000[0-6]-of-00007", str(exc)), exc
    assert peak < 64 << 20, f"restore allocated {peak} bytes for a {damage} file"
    assert _state(f, tmp_path / "after") == before


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_special_files_as_filter_splits_are_refused(engine, tmp_path, kind):
    require(engine, filter="sliding")
    f = _trained(engine)
    base = str(tmp_path / "hf")
    f.save(base)
    before = _state(f, tmp_path / "before")
    target = tmp_path / f"hf-00003-of-{SPLITS:05d}"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dev_zero":
        target.symlink_to("/dev/zero")
    else:
        target.mkdir()
    kind_of_outcome, exc = restore_with_time_limit(f, base, tmp_path)
    assert kind_of_outcome == "error" and isinstance(exc, CheckpointError), (kind_of_outcome, exc)
    assert "not a regular file" in str(exc)
    assert _state(f, tmp_path / "after") == before


def test_filter_checkpoints_are_shard_sets_with_a_manifest(engine, tmp_path):
    require(engine, filter="sliding")
    f = _trained(engine)
    f.save(str(tmp_path / "hf"))
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"hf-{i:05d}-of-{SPLITS:05d}" for i in range(SPLITS)] + ["hf.manifest"])
    g = _filter(engine)
    g.restore(str(tmp_path / "hf"))
    assert _state(g, tmp_path / "g") == _state(f, tmp_path / "f")
