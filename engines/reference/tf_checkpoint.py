"""Checkpoint shard files written and read with TensorFlow's own TFRecord I/O.

Same files as the numpy engine (fsf §B.4, docs/semantics.md §3 save/restore): names from
`shards.shard_name`, discovery and validation by `shards.find_shards`, framing by
`tf.io.TFRecordWriter` / `tf.data.TFRecordDataset` (which verify both CRCs). Writes are
crash-safe: a hidden temp name in the same directory, fsync, rename, directory fsync.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets

from engines.reference.tf_runtime import tf

from engines.api import CheckpointError
from engines.formats import shards
from engines.formats.atomic import fsync_dir

_SHARD_SUFFIX = re.compile(r"-[0-9]{5}-of-([0-9]{5})")


def _write_one(path: str, records: list[bytes]) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.tmp-{secrets.token_hex(8)}")
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for payload in records:
                writer.write(payload)
        fd = os.open(tmp, os.O_RDONLY)            # TF's writer does not fsync
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


def write_shards(basename: str, shard_records: list[list[bytes]]) -> list[str]:
    """Write shard i to basename-i-of-n, then drop shard files of another count."""
    n = len(shard_records)
    paths = []
    for i, records in enumerate(shard_records):
        path = shards.shard_name(basename, i, n)
        _write_one(path, records)
        paths.append(path)
    prefix = os.path.basename(basename)
    removed = False
    for path in glob.glob(glob.escape(basename) + "-*"):
        m = _SHARD_SUFFIX.fullmatch(os.path.basename(path)[len(prefix):])
        if m is not None and int(m.group(1)) != n:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            removed = True
    if removed:
        fsync_dir(os.path.dirname(os.path.abspath(basename)))
    return paths


def read_shard(path: str) -> list[bytes]:
    """Every record of one shard; CheckpointError naming the file and record on a CRC
    mismatch or truncation (TF reports both as DataLossError)."""
    records = []
    try:
        for payload in tf.data.TFRecordDataset(path):
            records.append(payload.numpy())
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as exc:
        raise CheckpointError(f"{path}: record {len(records)}: corrupt or truncated "
                              f"({exc.message.splitlines()[0]})") from None
    except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint file ({exc.message})") from None
    return records


def read_shards(basename: str) -> list[tuple[str, list[bytes]]]:
    """(path, records) of every shard of one complete set, all read before returning."""
    return [(path, read_shard(path)) for path in shards.find_shards(basename)]
