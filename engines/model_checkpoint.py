"""Model-level checkpoints: every table (and hash filter) of a model under one step-numbered
asset folder, as Monolith's saver/restorer listeners lay them out (fsf §B.6, §A.8):

    model_dir/model.ckpt-<step>.assets/<table prefix>-00000-of-00001
    model_dir/model.ckpt-<step>.assets/hash_filter_<i>-00000-of-00007
    model_dir/checkpoint        (TensorFlow's CheckpointState text format)
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil

from engines.api import CheckpointError, HashFilter, Table
from engines.formats.atomic import write_file_atomic
from engines.protos import hash_table_ops_pb2

_STATE_FILE = "checkpoint"


def table_prefix(name: str) -> str:
    """Monolith's file prefix of a table name: ':' and '/' become '-'."""
    return name.replace(":", "-").replace("/", "-")


def asset_dir_of(ckpt_prefix: str) -> str:
    """The asset folder of a checkpoint prefix (`model_dir/model.ckpt-<step>`)."""
    return ckpt_prefix + ".assets"


def restore_basename(asset_dir: str, name: str, extra_restore_names=()) -> str:
    """The saved files of table `name` in asset_dir: under its own prefix, else the first of
    its extra_restore_names that has shard files (a renamed table reads its old checkpoint)."""
    for candidate in (name,) + tuple(extra_restore_names):
        basename = os.path.join(asset_dir, table_prefix(candidate))
        if glob.glob(glob.escape(basename) + "-[0-9][0-9][0-9][0-9][0-9]-of-*"):
            return basename
    raise CheckpointError(f"Unable to find table checkpoint in {asset_dir} for table "
                          f"{name!r} (also tried {list(extra_restore_names)}). "
                          f"Maybe the model structure has been changed.")


@dataclasses.dataclass
class _Entry:
    name: str
    table: Table
    extra_restore_names: tuple[str, ...]
    saver_parallel: int


class CheckpointManager:
    """Saves and restores all tables of one model.

    `restore_after_save=True` re-restores right after each save, as Monolith's
    HashTableRestorerSaverListener does, so entries dropped by the save's TTL disappear from
    memory too.
    """

    def __init__(self, model_dir: str, basename: str = "model.ckpt", max_to_keep: int | None = 5,
                 restore_after_save: bool = False):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}")
        self.model_dir = os.fspath(model_dir)
        self.basename = basename
        self.max_to_keep = max_to_keep
        self.restore_after_save = restore_after_save
        self._tables: dict[str, _Entry] = {}
        self._filters: list[HashFilter] = []

    # ---- registration ------------------------------------------------------------------
    def add_table(self, name: str, table: Table, extra_restore_names=(),
                  saver_parallel: int = -1) -> None:
        if not isinstance(table, Table):
            raise TypeError(f"table must be a Table, got {type(table).__name__}")
        if not name:
            raise ValueError("name must be non-empty")
        if name in self._tables:
            raise ValueError(f"name: a table named {name!r} is already registered "
                             f"(table names must be unique within a model)")
        self._tables[name] = _Entry(name, table, tuple(extra_restore_names), saver_parallel)

    def add_hash_filter(self, hash_filter: HashFilter) -> int:
        """Register a filter; it is saved as hash_filter_<index>."""
        self._filters.append(hash_filter)
        return len(self._filters) - 1

    @property
    def table_names(self) -> list[str]:
        return list(self._tables)

    # ---- paths -------------------------------------------------------------------------
    def ckpt_prefix(self, step: int) -> str:
        return os.path.join(self.model_dir, f"{self.basename}-{int(step)}")

    def asset_dir(self, step: int) -> str:
        return asset_dir_of(self.ckpt_prefix(step))

    def steps(self) -> list[int]:
        """Checkpoint steps listed in the state file, oldest first."""
        path = os.path.join(self.model_dir, _STATE_FILE)
        if not os.path.exists(path):
            return []
        names = re.findall(r'all_model_checkpoint_paths:\s*"([^"]*)"', open(path).read())
        return [int(n.rsplit("-", 1)[1]) for n in names]

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    # ---- save / restore ----------------------------------------------------------------
    def save(self, step: int) -> str:
        asset_dir = self.asset_dir(step)
        os.makedirs(asset_dir, exist_ok=True)
        for entry in self._tables.values():
            entry.table.save(os.path.join(asset_dir, table_prefix(entry.name)),
                             nshards=entry.saver_parallel)
        for i, f in enumerate(self._filters):
            f.save(os.path.join(asset_dir, f"hash_filter_{i}"))
        steps = [s for s in self.steps() if s != step] + [step]
        if self.max_to_keep is not None:
            for old in steps[:-self.max_to_keep]:
                shutil.rmtree(self.asset_dir(old), ignore_errors=True)
            steps = steps[-self.max_to_keep:]
        self._write_state(steps)
        if self.restore_after_save:
            self.restore(step)
        return asset_dir

    def _write_state(self, steps: list[int]) -> None:
        names = [os.path.basename(self.ckpt_prefix(s)) for s in steps]
        text = f'model_checkpoint_path: "{names[-1]}"\n' + "".join(
            f'all_model_checkpoint_paths: "{n}"\n' for n in names)
        write_file_atomic(os.path.join(self.model_dir, _STATE_FILE), text.encode())

    def restore(self, step: int | None = None) -> int:
        """Restore every table (and filter) from `step` (default: the latest). Returns it."""
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"no checkpoint in {self.model_dir}")
        asset_dir = self.asset_dir(step)
        if not os.path.isdir(asset_dir):
            raise CheckpointError(f"checkpoint assets {asset_dir} do not exist")
        plan = [(entry, restore_basename(asset_dir, entry.name, entry.extra_restore_names))
                for entry in self._tables.values()]
        for entry, basename in plan:
            entry.table.restore(basename)
        for i, f in enumerate(self._filters):
            f.restore(os.path.join(asset_dir, f"hash_filter_{i}"))
        return step

    # ---- metadata ----------------------------------------------------------------------
    def to_proto(self, name: str) -> hash_table_ops_pb2.HashTableProto:
        entry = self._tables[name]
        proto = hash_table_ops_pb2.HashTableProto()
        proto.table_tensor = f"{name}:0"
        proto.shared_name = name
        proto.dim_size = entry.table.dim
        proto.slot_expire_time_config = \
            entry.table.spec.config.slot_expire_time_config.SerializeToString()
        proto.learning_rate_tensor = ",".join(repr(x) for x in entry.table.learning_rates)
        proto.saver_parallel = entry.saver_parallel
        proto.extra_restore_names.extend(entry.extra_restore_names)
        return proto

    def add_table_from_proto(self, proto: hash_table_ops_pb2.HashTableProto,
                             table: Table) -> None:
        """Register `table` under the proto's name, with its restore names and parallelism."""
        if proto.dim_size and proto.dim_size != table.dim:
            raise ValueError(f"proto.dim_size {proto.dim_size} does not match the table's "
                             f"dim {table.dim}")
        self.add_table(proto.shared_name, table, tuple(proto.extra_restore_names),
                       proto.saver_parallel if proto.HasField("saver_parallel") else -1)
