"""Checkpoint file formats: TFRecord framing, crash-safe writes, shard sets, EntryDump records."""
from engines.formats.atomic import write_file_atomic
from engines.formats.entry_codec import (
    decode_entry, encode_entry, entry_dump, load_entry_dumps, parse_entry_dump, stage_entries,
)
from engines.formats.shards import (
    MAX_SHARDS, ShardFile, ShardSet, auto_nshards, find_shard_set, find_shards, has_checkpoint,
    mix64, read_shard_set, read_shards, shard_name, shard_of, write_shards,
)
from engines.formats.tfrecord import decode_records, encode_records, frame, masked_crc, read_records

__all__ = [
    "MAX_SHARDS", "ShardFile", "ShardSet", "auto_nshards", "decode_entry", "decode_records",
    "encode_entry", "encode_records", "entry_dump", "find_shard_set", "find_shards", "frame",
    "has_checkpoint", "load_entry_dumps", "masked_crc", "mix64", "parse_entry_dump",
    "read_records", "read_shard_set", "read_shards", "shard_name", "shard_of",
    "stage_entries", "write_file_atomic", "write_shards",
]
