"""Checkpoint file formats: TFRecord framing, crash-safe writes, shard sets, EntryDump records."""
from engines.formats.atomic import write_file_atomic
from engines.formats.entry_dump import load_entry_dumps, parse_entry_dump
from engines.formats.shards import (
    MAX_SHARDS, find_shards, mix64, read_shards, shard_name, shard_of, write_shards,
)
from engines.formats.tfrecord import decode_records, encode_records, frame, masked_crc, read_records

__all__ = [
    "MAX_SHARDS", "decode_records", "encode_records", "find_shards", "frame", "load_entry_dumps",
    "masked_crc", "mix64", "parse_entry_dump", "read_records", "read_shards", "shard_name",
    "shard_of", "write_file_atomic", "write_shards",
]
