"""EntryDump records of table checkpoints (fsf §B.2), parsed with file/record context in errors."""
from __future__ import annotations

from google.protobuf.message import DecodeError

from engines.api import CheckpointError
from engines.formats.shards import find_shards
from engines.formats.tfrecord import read_records
from engines.protos.embedding_hash_table_pb2 import EntryDump


def parse_entry_dump(payload: bytes, path: str, index: int) -> EntryDump:
    """Parse one record; CheckpointError naming the file and record index if it is not an EntryDump."""
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
