"""Table configs: the `table_config(...)` builder and the parser every engine shares.

`table_config` builds a Monolith-compatible `EmbeddingHashTableConfig`. `parse_table_config`
turns one (message or serialized bytes) into a `TableSpec`: per-segment dims, offsets,
initializer/optimizer/compressor parameters as f32 values, and the optimizer-state layout,
so engines never read protobuf themselves.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from engines import vocabulary
from engines.protos import embedding_hash_table_pb2 as eht_pb2
from engines.slots import slots

SUPPORTED_OPTIMIZERS = tuple(vocabulary.OPTIMIZERS)
UNCONSTRUCTIBLE_OPTIMIZERS = vocabulary.UNCONSTRUCTIBLE_OPTIMIZERS
INITIALIZERS = tuple(vocabulary.INITIALIZERS)
COMPRESSORS = tuple(vocabulary.COMPRESSORS)
MAX_SLOTS = 1 << 15
# Words one entry may take: embedding + optimizer state + id (2 words) + timestamp (1 word).
# The native engines store an entry as one record of at most this many 4-byte words
# (kMaxRowWords in engines/native/src/table_config.h); every engine enforces the same limit.
MAX_ROW_WORDS = 1 << 26


@dataclasses.dataclass(frozen=True)
class SegmentSpec:
    index: int
    dim: int
    offset: int                 # first embedding element of this segment
    initializer: str
    init_params: Mapping[str, float]
    optimizer: str
    opt_params: Mapping[str, float]   # every config field (defaults filled), numbers as f32
    compressor: str | None
    comp_params: Mapping[str, float]
    state_offset: int           # first state word of this segment
    state_words: int


@dataclasses.dataclass(frozen=True)
class TableSpec:
    config: eht_pb2.EmbeddingHashTableConfig
    segments: tuple[SegmentSpec, ...]
    dim: int
    state_words: int
    default_expire_days: int
    slot_expire_days: Mapping[int, int]
    fid_version: int
    initial_capacity: int = 0   # the config's capacity hint (0: none); engines may presize

    @property
    def num_segments(self) -> int:
        return len(self.segments)

    @property
    def optimizers(self) -> tuple[str, ...]:
        return tuple(s.optimizer for s in self.segments)

    def expire_days_array(self) -> np.ndarray:
        """int64[32768]: expire days per slot (what Monolith's save op builds)."""
        out = np.full(MAX_SLOTS, self.default_expire_days, dtype=np.int64)
        for slot, days in self.slot_expire_days.items():
            out[slot] = days
        return out

    def slots(self, ids: np.ndarray) -> np.ndarray:
        """The slot of each id used for TTL (fid v2 by default, v1 when fid_version=1)."""
        return slots(ids, self.fid_version)

    def serialized(self) -> bytes:
        return self.config.SerializeToString()


def _message_fields(msg) -> dict:
    """Every field of a config sub-message except dim_size, with defaults filled in."""
    out = {}
    for field in msg.DESCRIPTOR.fields:
        if field.name == "dim_size":
            continue
        value = getattr(msg, field.name)
        if field.type == field.TYPE_FLOAT:
            value = float(np.float32(value))
        out[field.name] = value
    return out


def parse_table_config(config, fid_version: int = 2) -> TableSpec:
    """Validate a config (message or bytes) and lay out its entry. Raises ValueError."""
    if isinstance(config, (bytes, bytearray, memoryview)):
        msg = eht_pb2.EmbeddingHashTableConfig()
        try:
            msg.ParseFromString(bytes(config))
        except Exception as exc:
            raise ValueError(f"config: not a serialized EmbeddingHashTableConfig: {exc}") from exc
        config = msg
    if not isinstance(config, eht_pb2.EmbeddingHashTableConfig):
        raise TypeError(f"config must be an EmbeddingHashTableConfig (or its bytes), "
                        f"got {type(config).__name__}")
    if fid_version not in (1, 2):
        raise ValueError(f"fid_version must be 1 or 2, got {fid_version!r}")
    if config.WhichOneof("type") != "cuckoo":
        raise ValueError("config: type must be set to cuckoo (Monolith: 'Unknown type of hash "
                         "table')")
    entry = config.entry_config
    if entry.entry_type != eht_pb2.EntryConfig.TRAINING:
        raise ValueError("config.entry_config.entry_type: only TRAINING tables are supported "
                         "(SERVING tables cannot be trained or saved)")
    if config.skip_zero_embedding:
        raise ValueError("config.skip_zero_embedding is only allowed for SERVING tables")
    if not entry.segments:
        raise ValueError("config.entry_config.segments: at least one segment is required")

    segments, offset, state_offset = [], 0, 0
    for i, seg in enumerate(entry.segments):
        where = f"config.entry_config.segments[{i}]"
        if not 1 <= seg.dim_size <= MAX_ROW_WORDS:
            raise ValueError(f"{where}.dim_size must be in [1, {MAX_ROW_WORDS}], got "
                             f"{seg.dim_size}")
        if not seg.HasField("init_config") or seg.init_config.WhichOneof("type") is None:
            raise ValueError(f"{where}.init_config: an initializer is required")
        if not seg.HasField("opt_config") or seg.opt_config.WhichOneof("type") is None:
            raise ValueError(f"{where}.opt_config: an optimizer is required")
        init_name = seg.init_config.WhichOneof("type")
        opt_name = seg.opt_config.WhichOneof("type")
        if opt_name in UNCONSTRUCTIBLE_OPTIMIZERS:
            raise ValueError(f"{where}.opt_config: optimizer {opt_name!r} is not implemented "
                             f"(Monolith's factory cannot build it either)")
        if seg.opt_config.stochastic_rounding_float16:
            raise ValueError(f"{where}.opt_config.stochastic_rounding_float16 is not supported "
                             f"(see docs/semantics.md §4)")
        comp_name = (seg.comp_config.WhichOneof("type")
                     if seg.HasField("comp_config") else None)
        if seg.HasField("comp_config") and comp_name is None:
            raise ValueError(f"{where}.comp_config: a compressor type must be set")
        opt_params = _message_fields(getattr(seg.opt_config, opt_name))
        words = vocabulary.OPTIMIZERS[opt_name].state_words(seg.dim_size)
        segments.append(SegmentSpec(
            index=i, dim=seg.dim_size, offset=offset,
            initializer=init_name,
            init_params=_message_fields(getattr(seg.init_config, init_name)),
            optimizer=opt_name, opt_params=opt_params,
            compressor=comp_name,
            comp_params=(_message_fields(getattr(seg.comp_config, comp_name))
                         if comp_name else {}),
            state_offset=state_offset, state_words=words))
        offset += seg.dim_size
        state_offset += words
        if offset + state_offset + 3 > MAX_ROW_WORDS:
            raise ValueError(f"config: dim {offset} is too large: an entry would exceed "
                             f"{MAX_ROW_WORDS * 4} bytes ({MAX_ROW_WORDS} words of embedding, "
                             f"optimizer state, id and timestamp)")

    exp = config.slot_expire_time_config
    slot_days = {}
    for item in exp.slot_expire_times:
        if item.slot >= MAX_SLOTS:
            raise ValueError(f"config.slot_expire_time_config: slot {item.slot} is out of "
                             f"range [0, {MAX_SLOTS})")
        slot_days[int(item.slot)] = int(item.expire_time)
    return TableSpec(config=config, segments=tuple(segments), dim=offset,
                     state_words=state_offset, default_expire_days=int(exp.default_expire_time),
                     slot_expire_days=slot_days, fid_version=fid_version,
                     initial_capacity=int(config.initial_capacity))


# ---------------------------------------------------------------------------------------------
# Builder

_INIT_FIELDS = vocabulary.INITIALIZERS
_COMP_FIELDS = vocabulary.COMPRESSORS


def _fill_segment(seg_msg, dim, optimizer, initializer, compressor, fields, where):
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"{where}dim must be a positive int, got {dim!r}")
    seg_msg.dim_size = int(dim)
    fields = dict(fields)

    if initializer not in _INIT_FIELDS:
        raise ValueError(f"{where}initializer: unknown initializer {initializer!r}; "
                         f"expected one of {sorted(_INIT_FIELDS)}")
    init = getattr(seg_msg.init_config, initializer)
    init.dim_size = int(dim)
    for name in _INIT_FIELDS[initializer]:
        if name in fields:
            setattr(init, name, fields.pop(name))

    known_opts = SUPPORTED_OPTIMIZERS + UNCONSTRUCTIBLE_OPTIMIZERS
    if optimizer not in known_opts:
        raise ValueError(f"{where}optimizer: unknown optimizer {optimizer!r}; expected one of "
                         f"{sorted(SUPPORTED_OPTIMIZERS)}")
    if optimizer in UNCONSTRUCTIBLE_OPTIMIZERS:
        raise ValueError(f"{where}optimizer: {optimizer!r} is not implemented (Monolith's "
                         f"factory cannot build it either)")
    opt = getattr(seg_msg.opt_config, optimizer)
    opt.dim_size = int(dim)
    opt_field_names = {f.name for f in opt.DESCRIPTOR.fields} - {"dim_size"}

    if compressor is not None:
        if compressor not in _COMP_FIELDS:
            raise ValueError(f"{where}compressor: unknown compressor {compressor!r}; expected "
                             f"one of {sorted(_COMP_FIELDS)}")
        comp = getattr(seg_msg.comp_config, compressor)
        comp.dim_size = int(dim)
        for name in _COMP_FIELDS[compressor]:
            if name in fields:
                setattr(comp, name, fields.pop(name))

    for name, value in fields.items():
        if name not in opt_field_names:
            raise ValueError(f"{where}{name}: unknown field for optimizer {optimizer!r} "
                             f"(known: {sorted(opt_field_names)})")
        try:
            setattr(opt, name, value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}{name}: {exc}") from exc


def table_config(dim: int | None = None, optimizer: str = "sgd", initializer: str = "zeros",
                 expire_days: int | None = None, segments=None, compressor: str | None = "fp32",
                 slot_expire_days: Mapping[int, int] | None = None,
                 initial_capacity: int | None = None,
                 **optimizer_fields) -> eht_pb2.EmbeddingHashTableConfig:
    """Build an EmbeddingHashTableConfig (cuckoo, TRAINING).

    Single segment: `table_config(dim=8, optimizer="adagrad", initial_accumulator_value=1.0)`.
    Initializer fields (`constant`, `minval`, `maxval`) and compressor fields (`r`,
    `step_size`, `init_scale`, `max_scale`, `amplitude`) are taken from the same keywords.
    Multi-segment: `segments=[dict(dim=1, optimizer="ftrl"), dict(dim=8, optimizer="sgd")]`,
    each dict taking the same keywords as this function's per-segment ones.
    TTL: `expire_days` sets default_expire_time; `slot_expire_days={slot: days}` per slot.
    """
    cfg = eht_pb2.EmbeddingHashTableConfig()
    cfg.cuckoo.SetInParent()
    if initial_capacity is not None:
        cfg.initial_capacity = int(initial_capacity)
    if segments is None:
        if dim is None:
            raise ValueError("dim: required when segments is not given")
        _fill_segment(cfg.entry_config.segments.add(), dim, optimizer, initializer, compressor,
                      optimizer_fields, "")
    else:
        if dim is not None or optimizer_fields:
            raise ValueError("segments: pass dim/optimizer fields inside each segment, not "
                             "alongside segments=")
        if not segments:
            raise ValueError("segments: at least one segment is required")
        for i, seg in enumerate(segments):
            seg = dict(seg)
            where = f"segments[{i}]."
            if "dim" not in seg:
                raise ValueError(f"{where}dim: required")
            _fill_segment(cfg.entry_config.segments.add(), seg.pop("dim"),
                          seg.pop("optimizer", "sgd"), seg.pop("initializer", "zeros"),
                          seg.pop("compressor", "fp32"), seg, where)
    if expire_days is not None or slot_expire_days:
        exp = cfg.slot_expire_time_config
        if expire_days is not None:
            if expire_days < 0:
                raise ValueError(f"expire_days must be >= 0, got {expire_days}")
            exp.default_expire_time = int(expire_days)
        for slot, days in sorted((slot_expire_days or {}).items()):
            if not 0 <= slot < MAX_SLOTS or days < 0:
                raise ValueError(f"slot_expire_days: bad entry {slot}: {days}")
            item = exp.slot_expire_times.add()
            item.slot, item.expire_time = int(slot), int(days)
    parse_table_config(cfg)  # fail here, not at create_table
    return cfg
