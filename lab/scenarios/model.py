"""The declarative scenario: dataclasses that round-trip through plain dicts (TOML / JSON).

A scenario says *what* to run (tables, prefill, an ops sequence repeated for `steps`
iterations, batch size, id distribution, threads, dedup, seed); `lab.scenarios.execute`
says *how*. `sweep` turns one scenario into variants (one per combination of values);
`quick` holds the field overrides `--quick` applies (the size knob).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Mapping

from lab.scenarios import checks as C
from lab.scenarios.checks import LIMITS, ScenarioError

# op name -> the argument names a step of that op may carry (besides op/table/tables).
OP_ARGS: dict[str, frozenset] = {
    "lookup": frozenset({"batch"}),
    "lookup_entry": frozenset({"batch"}),
    "size": frozenset(),
    "assign": frozenset({"batch", "values", "req_time"}),
    "assign_add": frozenset({"batch", "values", "req_time"}),
    "apply_gradients": frozenset({"batch", "grads", "enable_dedup", "global_step", "req_time",
                                  "learning_rates"}),
    "save": frozenset({"nshards"}),
    "restore": frozenset({"fresh"}),
    "filter": frozenset({"batch", "grads"}),
    "fused_lookup": frozenset({"batch", "num_shards"}),
    "fused_apply": frozenset({"batch", "num_shards", "grads", "enable_dedup", "global_step",
                              "req_time"}),
}
OPS = frozenset(OP_ARGS)
# Ops that change a table (an engine lacking one cannot follow the scenario at all).
MUTATING_OPS = frozenset({"assign", "assign_add", "apply_gradients", "restore", "fused_apply"})
# Ops whose effect on a table is optimizer math (tolerance switches from exact to ulp).
OPTIMIZER_OPS = frozenset({"apply_gradients", "fused_apply"})
ID_KINDS = ("uniform", "zipf", "monolith_dup")
VALUE_KINDS = ("random", "ones", "zeros")
GRAD_KINDS = ("random", "ones", "from_lookup")
# Sweep keys: top-level scalar fields, or table-config keys applied to every table.
SCALAR_SWEEP_KEYS = ("batch_size", "threads", "dedup", "prefill", "steps", "ps")
CONFIG_SWEEP_KEYS = ("dim", "optimizer")


_check_keys = C.check_keys
HASH_FILTER_KEYS = frozenset({"kind", "capacity", "split_num", "occurrence_threshold",
                              "slot_occurrence_thresholds", "equal_probability", "seed"})


@dataclasses.dataclass(frozen=True)
class IdSpec:
    """Where ids come from. uniform: [0, vocab); zipf(a): rank r ~ Zipf(a), id = (r-1) % vocab
    (hot ids are small, so a prefill of 0..N-1 holds them); monolith_dup: `x // repeat` for
    x in range(batch) (hash_table_ops_benchmark.py's duplicates), the same ids every step."""
    kind: str = "uniform"
    vocab: int = 1_000_000
    a: float = 1.2
    repeat: int = 4

    def __post_init__(self):
        if self.kind not in ID_KINDS:
            raise ScenarioError(f"ids.kind: {self.kind!r} is not one of {ID_KINDS}")
        C.integer(self.vocab, "ids.vocab", 1, LIMITS["vocab"])
        if self.kind == "zipf" and not C.number(self.a, "ids.a") > 1:
            raise ScenarioError(f"ids.a must be > 1 for zipf, got {self.a}")
        C.number(self.a, "ids.a")
        C.integer(self.repeat, "ids.repeat", 1, LIMITS["batch_size"])

    def label(self) -> str:
        return {"uniform": f"uniform[0,{self.vocab})", "zipf": f"zipf(a={self.a})",
                "monolith_dup": f"x//{self.repeat}"}[self.kind]


@dataclasses.dataclass(frozen=True)
class TableDef:
    """One table: `config` holds `engines.table_config(**config)` keywords, so it serialises."""
    name: str = "t0"
    config: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"dim": 8, "optimizer": "sgd"})
    learning_rates: tuple = (0.1,)
    seed: int = 0
    hash_filter: Mapping[str, Any] | None = None      # create_hash_filter(**hash_filter)
    monolith_quirks: bool = False

    def __post_init__(self):
        where = f"tables[{self.name}]" if isinstance(self.name, str) else "tables[]"
        C.table_name(self.name, f"{where}.name")
        C.mapping(self.config, f"{where}.config")
        for key, value in self.config.items():
            if key == "segments":
                for i, seg in enumerate(C.sequence(value, f"{where}.config.segments", 64)):
                    for k, v in C.mapping(seg, f"{where}.config.segments[{i}]").items():
                        C.scalar(v, f"{where}.config.segments[{i}].{k}")
            else:
                C.scalar(value, f"{where}.config.{key}")
        lrs = C.sequence(self.learning_rates, f"{where}.learning_rates", 64)
        for lr in lrs:
            C.number(lr, f"{where}.learning_rates[]")
        C.integer(self.seed, f"{where}.seed", 0, 2 ** 63 - 1)
        if self.hash_filter is not None:
            C.check_keys(self.hash_filter, HASH_FILTER_KEYS, f"{where}.hash_filter")
            if "capacity" in self.hash_filter:
                C.integer(self.hash_filter["capacity"], f"{where}.hash_filter.capacity", 1,
                          LIMITS["filter_capacity"])
        C.boolean(self.monolith_quirks, f"{where}.monolith_quirks")
        self.build_config()                    # the engines' own config checks, up front

    def build_config(self):
        import engines
        try:
            return engines.table_config(**dict(self.config))
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"tables[{self.name}].config: {exc}") from exc

    def optimizers(self) -> tuple[str, ...]:
        segs = self.config.get("segments")
        if segs:
            return tuple(s.get("optimizer", "sgd") for s in segs)
        return (self.config.get("optimizer", "sgd"),)

    def dim(self) -> int:
        segs = self.config.get("segments")
        return sum(int(s["dim"]) for s in segs) if segs else int(self.config["dim"])


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One op of the per-step sequence. `table` defaults to the first table; fused ops use
    `tables` (default: all). `args` holds the op's own arguments (see OP_ARGS)."""
    op: str
    table: str | None = None
    tables: tuple | None = None
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.op, str) or self.op not in OPS:
            raise ScenarioError(f"ops: unknown op {self.op!r}; known: {sorted(OPS)}")
        where = f"ops[{self.op}]"
        if self.table is not None:
            C.table_name(self.table, f"{where}.table")
        for name in self.tables or ():
            C.table_name(name, f"{where}.tables[]")
        _check_keys(self.args, OP_ARGS[self.op], where)
        if "values" in self.args and self.args["values"] not in VALUE_KINDS:
            raise ScenarioError(f"{where}.values must be one of {VALUE_KINDS}")
        if "grads" in self.args and self.args["grads"] not in GRAD_KINDS:
            raise ScenarioError(f"{where}.grads must be one of {GRAD_KINDS}")
        for key, check in _ARG_CHECKS.items():
            if key in self.args:
                check(self.args[key], f"{where}.{key}")

    def batch(self, default: int) -> int:
        """Ids per call: the op's own `batch`, else the scenario's batch size."""
        return int(self.args.get("batch", default))

    @property
    def fused(self) -> bool:
        return self.op.startswith("fused_")

    def to_dict(self) -> dict:
        out = {"op": self.op}
        if self.table is not None:
            out["table"] = self.table
        if self.tables is not None:
            out["tables"] = list(self.tables)
        out.update(self.args)
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "OpSpec":
        if isinstance(d, str):
            return cls(op=d)
        C.mapping(d, "ops[]")
        if "op" not in d:
            raise ScenarioError(f"ops: every step needs an 'op' field, got {sorted(d)}")
        d = dict(d)
        op, table, tables = d.pop("op"), d.pop("table", None), d.pop("tables", None)
        if tables is not None:
            tables = tuple(C.sequence(tables, f"ops[{op}].tables", LIMITS["tables"]))
        return cls(op=op, table=table, tables=tables, args=d)


def _learning_rates(value, where):
    for lr in C.sequence(value, where, 64):
        C.number(lr, f"{where}[]")


def _nshards(value, where):
    if value != -1:
        C.integer(value, where, 1, LIMITS["nshards"])


_ARG_CHECKS = {
    "batch": lambda v, w: C.integer(v, w, 1, LIMITS["batch_size"]),
    "req_time": lambda v, w: C.integer(v, w, 0, LIMITS["max_req_time"]),
    "global_step": lambda v, w: C.integer(v, w, 0, 2 ** 62),
    "enable_dedup": C.boolean,
    "fresh": C.boolean,
    "learning_rates": _learning_rates,
    "nshards": _nshards,
    "num_shards": lambda v, w: C.integer(v, w, 1, LIMITS["num_shards"]),
}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    tables: tuple = (TableDef(),)
    ops: tuple = (OpSpec("lookup"),)
    prefill: int = 0             # ids 0..prefill-1 are assigned random values before step 0
    batch_size: int = 1024
    ids: IdSpec = IdSpec()
    threads: int = 1
    dedup: bool = False          # default enable_dedup of apply_gradients / fused_apply
    steps: int = 3               # iterations of `ops` (parity compares each; timing measures)
    warmup: int = 1              # extra untimed iterations before timing
    seed: int = 0
    seconds_per_step: int = 1    # the clock: writes of step s default to req_time = s * this
    # Parameter-server tasks: > 0 shards every table over that many tasks of an in-process
    # cluster on engines that can (create_sharded_table: tf-native); others run one local
    # table, the single-process baseline next to them. 0: local tables everywhere.
    ps: int = 0
    sweep: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    quick: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: tuple = ()
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # set by variants()

    def __post_init__(self):
        if not self.name:
            raise ScenarioError("name: required")
        C.text(self.name, "name")
        C.text(self.description, f"{self.name}.description")
        if not self.tables:
            raise ScenarioError(f"{self.name}: at least one table is required")
        C.sequence(self.tables, f"{self.name}.tables", LIMITS["tables"])
        C.sequence(self.ops, f"{self.name}.ops", LIMITS["ops"])
        if not all(isinstance(t, TableDef) for t in self.tables) or not all(
                isinstance(o, OpSpec) for o in self.ops):
            raise ScenarioError(f"{self.name}: tables must be TableDefs and ops OpSpecs")
        if not isinstance(self.ids, IdSpec):
            raise ScenarioError(f"{self.name}.ids must be an IdSpec")
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise ScenarioError(f"{self.name}: table names must be unique, got {names}")
        for op in self.ops:
            for ref in ([op.table] if op.table else []) + list(op.tables or ()):
                if ref not in names:
                    raise ScenarioError(f"{self.name}: op {op.op} names unknown table {ref!r}")
        for field, low in (("batch_size", 1), ("threads", 1), ("steps", 1), ("prefill", 0),
                           ("warmup", 0), ("seconds_per_step", 0), ("seed", 0),
                           ("ps", 0)):
            C.integer(getattr(self, field), f"{self.name}.{field}", low, LIMITS.get(field))
        C.boolean(self.dedup, f"{self.name}.dedup")
        self._check_work()
        C.mapping(self.sweep, f"{self.name}.sweep")
        for key, values in self.sweep.items():
            if key not in SCALAR_SWEEP_KEYS + CONFIG_SWEEP_KEYS:
                raise ScenarioError(f"{self.name}.sweep: cannot sweep {key!r}; allowed: "
                                    f"{list(SCALAR_SWEEP_KEYS + CONFIG_SWEEP_KEYS)}")
            for v in C.sequence(values, f"{self.name}.sweep.{key}", LIMITS["variants"]):
                C.scalar(v, f"{self.name}.sweep.{key}[]")
            if not values:
                raise ScenarioError(f"{self.name}.sweep.{key}: needs at least one value")
        variants = math.prod(len(v) for v in self.sweep.values())
        if variants > LIMITS["variants"]:
            raise ScenarioError(f"{self.name}.sweep: {variants} combinations; the limit is "
                                f"{LIMITS['variants']}")
        _check_keys(self.quick, {f.name for f in dataclasses.fields(Scenario)} - {"name",
                    "quick", "params"}, f"{self.name}.quick")
        for tag in C.sequence(self.tags, f"{self.name}.tags", 64):
            C.text(tag, f"{self.name}.tags[]")
        for key, value in C.mapping(self.params, f"{self.name}.params").items():
            C.scalar(value, f"{self.name}.params.{key}")

    def _check_work(self) -> None:
        """Bound what one run of this scenario may ask for (ids processed, clock range)."""
        iterations = self.warmup + self.steps
        largest = max([self.batch_size] + [o.batch(self.batch_size) for o in self.ops])
        if iterations * largest > LIMITS["ids_per_scenario"]:
            raise ScenarioError(f"{self.name}: (warmup + steps) x batch = {iterations} x "
                                f"{largest} ids; the limit is {LIMITS['ids_per_scenario']:,}")
        floats = self.prefill * sum(t.dim() for t in self.tables)
        if floats > LIMITS["prefill_floats"]:
            raise ScenarioError(f"{self.name}: prefill x dims = {floats:,} floats; the limit "
                                f"is {LIMITS['prefill_floats']:,}")
        if iterations * self.seconds_per_step > LIMITS["max_req_time"]:
            raise ScenarioError(f"{self.name}: (warmup + steps) x seconds_per_step passes the "
                                f"largest req_time {LIMITS['max_req_time']} (uint32 seconds)")

    # ---- derived -------------------------------------------------------------------------
    def table(self, name: str | None) -> TableDef:
        if name is None:
            return self.tables[0]
        return next(t for t in self.tables if t.name == name)

    @property
    def base_name(self) -> str:
        return self.name.split("[", 1)[0]

    def optimizers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o for t in self.tables for o in t.optimizers()))

    # ---- the size knob and sweeps -----------------------------------------------------
    def quick_version(self) -> "Scenario":
        """The `--quick` scenario: `quick` overrides applied (nested dicts merged)."""
        return dataclasses.replace(self, quick={}).with_overrides(self.quick)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Scenario":
        """This scenario with some fields replaced (the form of `quick`: `ids` may be a
        partial dict, `tables`/`ops` plain dicts, `sweep` lists)."""
        _check_keys(overrides, {f.name for f in dataclasses.fields(Scenario)} - {"name",
                    "params"}, f"{self.name} overrides")
        changes = {}
        for key, value in overrides.items():
            current = getattr(self, key)
            if key == "ids" and isinstance(value, Mapping):
                value = dataclasses.replace(current, **value)
            elif key == "tables":
                value = tuple(_table_from_dict(t) if isinstance(t, Mapping) else t
                              for t in value)
            elif key == "ops":
                value = tuple(o if isinstance(o, OpSpec) else OpSpec.from_dict(o)
                              for o in value)
            elif key == "sweep":
                value = _sweep(value, self.name)
            changes[key] = value
        return dataclasses.replace(self, **changes)

    def variants(self) -> list["Scenario"]:
        """One scenario per combination of sweep values, named `name[key=value,...]`."""
        if not self.sweep:
            return [self]
        keys = list(self.sweep)
        out = []
        for combo in itertools.product(*(self.sweep[k] for k in keys)):
            params = dict(zip(keys, combo))
            changes = {k: v for k, v in params.items() if k in SCALAR_SWEEP_KEYS}
            cfg = {k: v for k, v in params.items() if k in CONFIG_SWEEP_KEYS}
            tables = tuple(dataclasses.replace(t, config=_override_config(t.config, cfg))
                           for t in self.tables) if cfg else self.tables
            label = ",".join(f"{k}={v}" for k, v in params.items())
            out.append(dataclasses.replace(self, name=f"{self.name}[{label}]", tables=tables,
                                           sweep={}, params={**self.params, **params},
                                           **changes))
        return out

    def resolved(self, quick: bool) -> list["Scenario"]:
        return (self.quick_version() if quick else self).variants()

    # ---- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "tables":
                value = [dataclasses.asdict(t) | {"config": dict(t.config),
                                                  "learning_rates": list(t.learning_rates)}
                         for t in value]
            elif f.name == "ops":
                value = [o.to_dict() for o in value]
            elif f.name == "ids":
                value = dataclasses.asdict(value)
            elif f.name in ("sweep",):
                value = {k: list(v) for k, v in value.items()}
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return _plain(out)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Scenario":
        if not isinstance(d, Mapping):
            raise ScenarioError(f"a scenario must be a table/object, got {type(d).__name__}")
        name = d.get("name")
        where = f"scenario {name!r}" if isinstance(name, str) else "scenario"
        _check_keys(d, {f.name for f in dataclasses.fields(cls)}, where)
        d = dict(d)
        if "tables" in d:
            d["tables"] = tuple(_table_from_dict(t) for t in C.sequence(
                d["tables"], f"{where}.tables", LIMITS["tables"]))
        if "ops" in d:
            d["ops"] = tuple(OpSpec.from_dict(o) for o in C.sequence(
                d["ops"], f"{where}.ops", LIMITS["ops"]))
        if "ids" in d:
            _check_keys(d["ids"], {f.name for f in dataclasses.fields(IdSpec)}, "ids")
            d["ids"] = IdSpec(**d["ids"])
        if "sweep" in d:
            d["sweep"] = _sweep(d["sweep"], where)
        if "tags" in d:
            d["tags"] = tuple(C.sequence(d["tags"], f"{where}.tags", 64))
        for key in ("quick", "params"):
            if key in d:
                C.mapping(d[key], f"{where}.{key}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ScenarioError(f"{where}: {exc}") from exc


def _sweep(value, where) -> dict:
    return {k: tuple(C.sequence(v, f"{where}.sweep.{k}", LIMITS["variants"]))
            for k, v in C.mapping(value, f"{where}.sweep").items()}


def _plain(value):
    """Tuples -> lists and mappings -> dicts, recursively (what JSON/TOML give back)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _override_config(config: Mapping, changes: Mapping) -> dict:
    config = dict(config)
    if config.get("segments"):
        config["segments"] = [dict(s, **changes) for s in config["segments"]]
    else:
        config.update(changes)
    return config


def _table_from_dict(d: Mapping) -> TableDef:
    _check_keys(d, {f.name for f in dataclasses.fields(TableDef)}, "tables[]")
    d = dict(d)
    if "learning_rates" in d:
        d["learning_rates"] = tuple(C.number(x, "tables[].learning_rates[]") for x in
                                    C.sequence(d["learning_rates"], "tables[].learning_rates",
                                               64))
    return TableDef(**d)
