"""Run one scenario on one engine, op by op.

`ScenarioExecution` builds the tables (and hash filters), prefills them, then runs the ops
sequence step by step. Inputs are drawn before the timer starts; only the engine call is
measured, by a `meter` (default: wall-clock seconds; the simulated cost mode passes one that
counts the call under callgrind). With `capture=True` every op also returns what parity
compares (lookups, entry bytes, sizes, checkpoint file digests); the timing runner leaves it
off, and then also deletes a table's previous checkpoint when it saves a new one.

`cycle` (timing only): step s draws its inputs (ids, values, gradients) as step s % cycle
does, while its clock (req_time, global_step) keeps counting. A timing run of any length then
repeats the same workload instead of growing its tables step after step, so how many samples
the runner takes does not change what it measures.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Any, Callable, Iterator

import numpy as np

import engines
from engines.api import table_requirements
from lab.scenarios import ids as gen
from lab.scenarios.model import MUTATING_OPS, OpSpec, Scenario

PREFILL_CHUNK = 1_000_000
DEFAULT_EXPIRE_DAYS = 36500          # the config proto default: TTL effectively off
FLOAT_BYTES = 4


@dataclasses.dataclass
class OpOutcome:
    step: int
    index: int                  # position of the op in the scenario's ops sequence
    op: str
    tables: tuple               # names of the tables the op touched
    n_ids: int                  # ids processed by the call
    nbytes: int                 # payload bytes moved (rows * dim * 4, or checkpoint bytes)
    row_width: int              # floats per id (for the dense-take baseline)
    seconds: float
    output: dict | None = None  # what parity compares (capture=True only)
    files: int = 0              # checkpoint files written / read (save, restore)


def call_label(scenario_name: str, step: int, index: int, op: str) -> str:
    """What a meter calls one engine call (unique within a run)."""
    return f"{scenario_name}#{step}#{index}#{op}"


def wall_meter(fn: Callable, label: str) -> tuple[Any, float]:
    """(fn(), its wall-clock seconds). `label` names the call (used by other meters)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def scenario_requirements(scenario: Scenario) -> engines.Requirements:
    """What an engine must declare to follow `scenario` at all: every table it builds and every
    mutating op it runs (read-only ops it lacks are skipped step by step instead)."""
    needs = engines.Requirements()
    for t in scenario.tables:
        spec = engines.parse_table_config(t.build_config())
        kind = t.hash_filter.get("kind", "sliding") if t.hash_filter is not None else None
        needs |= table_requirements(spec, kind, t.monolith_quirks)
        if spec.default_expire_days != DEFAULT_EXPIRE_DAYS or spec.slot_expire_days:
            needs |= engines.Requirements(ttl=True)
    ops = {o.op for o in scenario.ops} & (MUTATING_OPS - {"fused_apply"})
    if scenario.prefill:
        ops.add("assign")
    if "restore" in ops:
        ops.add("save")                   # restore reads what the scenario saved
    dedup = scenario.dedup or any(o.args.get("enable_dedup") for o in scenario.ops)
    return needs | engines.Requirements(
        ops=frozenset(ops),
        fused=any(o.fused for o in scenario.ops), dedup=bool(dedup),
        threads=scenario.threads > 1)


def unsupported_reason(capabilities, scenario: Scenario) -> str | None:
    """Why an engine with these capabilities cannot follow `scenario`, or None."""
    if "filter" in {o.op for o in scenario.ops} and not any(t.hash_filter
                                                            for t in scenario.tables):
        return "filter op without a table hash_filter"
    missing = capabilities.missing(scenario_requirements(scenario))
    return f"{', '.join(missing)} not declared" if missing else None


def skipped_op_reason(engine, op: OpSpec) -> str | None:
    """Why a read-only op is skipped on this engine, or None."""
    if op.op in ("filter",) or op.fused or op.op in MUTATING_OPS:
        return None
    missing = engine.capabilities.missing(engines.Requirements.of(ops=op.op))
    return f"{missing[0]} not declared" if missing else None


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ScenarioExecution:
    """One engine's run of one scenario. Use `setup()` once, then `run()`."""

    def __init__(self, scenario: Scenario, engine, workdir: str, capture: bool = False,
                 meter: Callable = wall_meter, cycle: int | None = None):
        self.scenario = scenario
        self.engine = engine
        self.workdir = workdir
        self.capture = capture
        self.meter = meter
        self.cycle = cycle
        self.tables: dict[str, Any] = {}
        self.filters: dict[str, Any] = {}
        self._last_save: dict[str, str] = {}        # table -> basename of its latest save
        self._last_lookup: dict[str, tuple] = {}    # table -> (ids, embeddings)
        os.makedirs(workdir, exist_ok=True)

    # ---- setup ------------------------------------------------------------------------
    def _make_table(self, tdef):
        hf = None
        if tdef.hash_filter is not None:
            hf = self.engine.create_hash_filter(**dict(tdef.hash_filter))
            self.filters[tdef.name] = hf
        kwargs = dict(learning_rates=tdef.learning_rates, hash_filter=hf, seed=tdef.seed,
                      monolith_quirks=tdef.monolith_quirks)
        if self.scenario.ps and hasattr(self.engine, "create_sharded_table"):
            return self.engine.create_sharded_table(tdef.build_config(), ps=self.scenario.ps,
                                                    **kwargs)
        return self.engine.create_table(tdef.build_config(), **kwargs)

    def setup(self) -> None:
        sc = self.scenario
        for tdef in sc.tables:
            table = self._make_table(tdef)
            self.tables[tdef.name] = table
            for start in range(0, sc.prefill, PREFILL_CHUNK):
                ids = gen.prefill_ids(sc.prefill)[start:start + PREFILL_CHUNK]
                table.assign(ids, gen.prefill_values(len(ids), table.dim, sc.seed,
                                                     start // PREFILL_CHUNK))

    # ---- running ----------------------------------------------------------------------
    def run(self, steps: int | None = None, first_step: int = 0,
            skip: frozenset = frozenset()) -> Iterator[OpOutcome]:
        """Yield one OpOutcome per op and step. `skip`: op indices not to run (read-only ops
        the engine does not declare)."""
        sc = self.scenario
        for step in range(first_step, first_step + (sc.steps if steps is None else steps)):
            step_ids = gen.draw_ids(sc.ids, sc.batch_size, sc.seed, self._inputs(step))
            for index, op in enumerate(sc.ops):
                if index in skip:
                    continue
                yield self.run_op(step, index, op, step_ids)

    def _ids_for(self, op: OpSpec, op_index: int, step: int,
                 step_ids: np.ndarray) -> np.ndarray:
        n = op.args.get("batch")
        if n is None or n == len(step_ids):
            return step_ids
        # An op with its own batch size draws its own ids (seeded by its position).
        return gen.draw_ids(self.scenario.ids, int(n), self.scenario.seed + 1 + op_index,
                            self._inputs(step))

    def _inputs(self, step: int) -> int:
        """The step whose inputs step `step` draws (see `cycle`)."""
        return step % self.cycle if self.cycle else step

    def run_op(self, step: int, index: int, op: OpSpec, step_ids: np.ndarray) -> OpOutcome:
        handler = getattr(self, f"_op_{op.op}")
        return handler(step, index, op, self._ids_for(op, index, step, step_ids))

    def _outcome(self, step, index, op, names, n, width, seconds, output, nbytes=None,
                 files=0):
        return OpOutcome(step, index, op.op, tuple(names), n,
                         n * width * FLOAT_BYTES if nbytes is None else nbytes, width, seconds,
                         output if self.capture else None, files)

    def _measure(self, step, index, op, fn):
        """(fn(), its measurement) for the engine call of op `index` at `step`."""
        return self.meter(fn, call_label(self.scenario.name, step, index, op.op))

    def _checkpoint_path(self, name, step, index) -> str:
        """Where a table's checkpoint goes: always inside the run folder."""
        root = os.path.realpath(self.workdir)
        path = os.path.realpath(os.path.join(root, f"{name}-s{step}-op{index}"))
        if os.path.dirname(path) != root:
            raise ValueError(f"table name {name!r} would write outside the run folder")
        return path

    def _size_output(self, names) -> dict:
        if not self.capture:
            return {}
        return {f"size[{n}]": self.tables[n].size() for n in names}

    def _default_time(self, step):
        """req_time of a write when the op does not fix one: the scenario's clock."""
        return int(step) * self.scenario.seconds_per_step

    # Each handler: draw inputs, time the engine call, capture outputs.
    def _op_lookup(self, step, index, op, ids):
        name = op.table or self.scenario.tables[0].name
        t = self.tables[name]
        emb, sec = self._measure(step, index, op, lambda: t.lookup(ids))
        self._last_lookup[name] = (ids, emb)
        return self._outcome(step, index, op, [name], len(ids), t.dim, sec,
                             {"embeddings": emb})

    def _op_lookup_entry(self, step, index, op, ids):
        name = op.table or self.scenario.tables[0].name
        t = self.tables[name]
        entries, sec = self._measure(step, index, op, lambda: t.lookup_entry(ids))
        return self._outcome(step, index, op, [name], len(ids), t.dim, sec,
                             {"entries": entries})

    def _op_size(self, step, index, op, ids):
        name = op.table or self.scenario.tables[0].name
        n, sec = self._measure(step, index, op, lambda: self.tables[name].size())
        return self._outcome(step, index, op, [name], 0, 0, sec, {f"size[{name}]": n})

    def _write(self, step, index, op, ids, add):
        name = op.table or self.scenario.tables[0].name
        t = self.tables[name]
        vals = gen.values(op.args.get("values", "random"), len(ids), t.dim, self.scenario.seed,
                          self._inputs(step), index)
        req_time = int(op.args.get("req_time", self._default_time(step)))
        write = t.assign_add if add else t.assign
        _, sec = self._measure(step, index, op, lambda: write(ids, vals, req_time=req_time))
        return self._outcome(step, index, op, [name], len(ids), t.dim, sec,
                             self._size_output([name]))

    def _op_assign(self, step, index, op, ids):
        return self._write(step, index, op, ids, add=False)

    def _op_assign_add(self, step, index, op, ids):
        return self._write(step, index, op, ids, add=True)

    def _gradients(self, op, name, ids, dim, step, index):
        kind = op.args.get("grads", "random")
        if kind == "from_lookup":
            last = self._last_lookup.get(name)
            if last is not None and np.array_equal(last[0], ids):
                return gen.grads_from_lookup(last[1])
            return gen.grads_from_lookup(self.tables[name].lookup(ids))
        return gen.grads(kind, len(ids), dim, self.scenario.seed, self._inputs(step), index)

    def _op_apply_gradients(self, step, index, op, ids):
        name = op.table or self.scenario.tables[0].name
        t = self.tables[name]
        g = self._gradients(op, name, ids, t.dim, step, index)
        lrs = op.args.get("learning_rates")
        kwargs = dict(global_step=int(op.args.get("global_step", step)),
                      enable_dedup=bool(op.args.get("enable_dedup", self.scenario.dedup)),
                      req_time=int(op.args.get("req_time", self._default_time(step))),
                      learning_rates=tuple(lrs) if lrs is not None else None)
        _, sec = self._measure(step, index, op, lambda: t.apply_gradients(ids, g, **kwargs))
        return self._outcome(step, index, op, [name], len(ids), t.dim, sec,
                             self._size_output([name]))

    def _op_filter(self, step, index, op, ids):
        name = op.table or next(t.name for t in self.scenario.tables if t.hash_filter)
        f = self.filters[name]
        dim = self.tables[name].dim
        g = gen.grads(op.args.get("grads", "random"), len(ids), dim, self.scenario.seed,
                      self._inputs(step), index)
        out, sec = self._measure(step, index, op, lambda: f.intercept_gradient(ids, g))
        return self._outcome(step, index, op, [name], len(ids), dim, sec, {"grads": out})

    def _op_save(self, step, index, op, ids):
        name = op.table or self.scenario.tables[0].name
        t = self.tables[name]
        basename = self._checkpoint_path(name, step, index)
        nshards = int(op.args.get("nshards", -1))
        paths, sec = self._measure(step, index, op, lambda: t.save(basename, nshards=nshards))
        previous = self._last_save.get(name)
        self._last_save[name] = basename
        nbytes = sum(os.path.getsize(p) for p in paths)
        output = None
        if self.capture:
            output = {"files": {os.path.basename(p): (_digest(p), p) for p in paths}}
        elif previous is not None and previous != basename:
            self._delete_checkpoint(previous)      # long timing runs must not fill the disk
        return self._outcome(step, index, op, [name], t.size(), t.dim, sec, output,
                             nbytes=nbytes, files=len(paths))

    def _checkpoint_files(self, basename) -> list[str]:
        prefix = os.path.basename(basename) + "-"
        return [os.path.join(self.workdir, f) for f in sorted(os.listdir(self.workdir))
                if f.startswith(prefix)]

    def _delete_checkpoint(self, basename) -> None:
        for path in self._checkpoint_files(basename):
            os.unlink(path)

    def _op_restore(self, step, index, op, ids):
        name = op.table or self.scenario.tables[0].name
        if name not in self._last_save:
            raise RuntimeError(f"scenario {self.scenario.name}: restore of table {name!r} "
                               f"before any save")
        basename = self._last_save[name]
        if op.args.get("fresh", False):           # restore into a newly created table
            self.tables[name] = self._make_table(self.scenario.table(name))
        t = self.tables[name]
        files = self._checkpoint_files(basename)
        nbytes = sum(os.path.getsize(p) for p in files)
        _, sec = self._measure(step, index, op, lambda: t.restore(basename))
        return self._outcome(step, index, op, [name], t.size(), t.dim, sec,
                             self._size_output([name]), nbytes=nbytes, files=len(files))

    # ---- fused ops ----------------------------------------------------------------------
    def _fused_layout(self, op, ids):
        names = list(op.tables or [t.name for t in self.scenario.tables])
        shards = int(op.args.get("num_shards", 2))
        sizes = gen.split_evenly(len(ids), len(names) * shards)
        return names, [self.tables[n] for n in names], shards, sizes

    def _op_fused_lookup(self, step, index, op, ids):
        names, tables, shards, sizes = self._fused_layout(op, ids)
        (emb, splits, id_off, emb_off, _), sec = self._measure(
            step, index, op, lambda: self.engine.fused_lookup(tables, ids, sizes, shards))
        out = {"embeddings": np.asarray(emb), "recv_splits": np.asarray(splits),
               "id_offsets": np.asarray(id_off), "emb_offsets": np.asarray(emb_off)}
        floats = int(np.asarray(emb).size)
        return self._outcome(step, index, op, names, len(ids), floats // max(len(ids), 1), sec,
                             out, nbytes=floats * FLOAT_BYTES)

    def _op_fused_apply(self, step, index, op, ids):
        names, tables, shards, sizes = self._fused_layout(op, ids)
        dims = np.tile([t.dim for t in tables], shards)
        total = int((sizes.astype(np.int64) * dims).sum())
        g = gen.grads(op.args.get("grads", "random"), total, 1, self.scenario.seed,
                      self._inputs(step), index).reshape(-1)
        lrs = [lr for t in tables for lr in t.learning_rates]
        id_off = np.r_[0, np.cumsum(sizes)].astype(np.int32)
        emb_off = np.r_[0, np.cumsum(sizes.astype(np.int64) * dims)].astype(np.int32)
        kwargs = dict(
            req_time=int(op.args.get("req_time", self._default_time(step))),
            global_step=int(op.args.get("global_step", step)), num_shards=shards,
            enable_grad_accumulation=bool(op.args.get("enable_dedup", self.scenario.dedup)))
        _, sec = self._measure(step, index, op, lambda: self.engine.fused_apply_gradients(
            tables, ids, ids, sizes, g, id_off, emb_off, lrs, **kwargs))
        return self._outcome(step, index, op, names, len(ids), total // max(len(ids), 1), sec,
                             self._size_output(names), nbytes=total * FLOAT_BYTES)
