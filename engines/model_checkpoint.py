"""Model-level checkpoints: every table (and hash filter) of a model under one step-numbered
asset folder, as Monolith's saver/restorer listeners lay them out (fsf §B.6, §A.8):

    model_dir/model.ckpt-<step>.assets/<table prefix>-00000-of-00001
    model_dir/model.ckpt-<step>.assets/hash_filter_<i>-00000-of-00007
    model_dir/checkpoint        (TensorFlow's CheckpointState text format)

Save and restore are atomic across the model (docs/checkpoints.md, "Model checkpoints"): a
save writes everything into a fresh hidden folder and swaps it in as the step's asset folder
in one step (RENAME_EXCHANGE, or a journalled pair of renames that the next save or restore
completes); a restore stages every table and filter before it commits any.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import shutil

from engines import validation as _v
from engines.api import CheckpointError, HashFilter, Table
from engines.formats.atomic import exchange_paths, fsync_dir, write_file_atomic
from engines.formats.shards import has_checkpoint
from engines.protos import hash_table_ops_pb2

_STATE_FILE = "checkpoint"
_FILTER_PREFIX = re.compile(r"hash_filter_[0-9]+")


def table_prefix(name: str) -> str:
    """Monolith's file prefix of a table name: ':' and '/' become '-'."""
    return name.replace(":", "-").replace("/", "-")


def asset_dir_of(ckpt_prefix: str) -> str:
    """The asset folder of a checkpoint prefix (`model_dir/model.ckpt-<step>`)."""
    return ckpt_prefix + ".assets"


def restore_basename(asset_dir: str, name: str, extra_restore_names=()) -> str:
    """The saved files of table `name` in asset_dir: under its own prefix, else the first of
    its extra_restore_names that has a checkpoint (a manifest or exact shard names; a renamed
    table reads its old checkpoint)."""
    for candidate in (name,) + tuple(extra_restore_names):
        basename = os.path.join(asset_dir, table_prefix(candidate))
        if has_checkpoint(basename):
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
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        if name in self._tables:
            raise ValueError(f"name: a table named {name!r} is already registered "
                             f"(table names must be unique within a model)")
        prefix = table_prefix(name)
        for label, text in [("name", name)] + [("extra_restore_names", n)
                                               for n in extra_restore_names]:
            try:
                _v.check_basename(table_prefix(text) if isinstance(text, str) else text)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{label}: {text!r} cannot name checkpoint files: {exc}") \
                    from None
        for other in self._tables:
            if table_prefix(other) == prefix:
                raise ValueError(f"name: {name!r} and {other!r} would both save as {prefix!r} "
                                 f"(':' and '/' become '-' in file names)")
        if _FILTER_PREFIX.fullmatch(prefix):
            raise ValueError(f"name: {name!r} would save as {prefix!r}, the name of a hash "
                             f"filter's files")
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
        """Write every table and filter as step `step` (replacing that step's assets as a
        whole, never partly), then list it in the state file. Returns the asset folder."""
        step = _v.check_int(step, "step")
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        os.makedirs(self.model_dir, exist_ok=True)
        self._finish_swaps()
        self._remove_leftovers()
        asset_dir = self.asset_dir(step)
        staging = self._hidden(asset_dir, "tmp")
        os.mkdir(staging)
        try:
            for entry in self._tables.values():
                entry.table.save(os.path.join(staging, table_prefix(entry.name)),
                                 nshards=entry.saver_parallel)
            for i, f in enumerate(self._filters):
                f.save(os.path.join(staging, f"hash_filter_{i}"))
            fsync_dir(staging)
            self._install(staging, asset_dir)
        except BaseException:
            if not os.path.lexists(self._journal_path(asset_dir)):   # else the swap needs it
                shutil.rmtree(staging, ignore_errors=True)
            raise
        steps = [s for s in self.steps() if s != step] + [step]
        dropped = []
        if self.max_to_keep is not None:
            dropped, steps = steps[:-self.max_to_keep], steps[-self.max_to_keep:]
        self._write_state(steps)                  # first: never list a half-deleted step
        for old in dropped:
            shutil.rmtree(self.asset_dir(old), ignore_errors=True)
        if self.restore_after_save:
            self.restore(step)
        return asset_dir

    @staticmethod
    def _hidden(asset_dir: str, kind: str) -> str:
        """A hidden sibling of asset_dir: `.<name>.<kind>-<16 hex digits>`."""
        head, name = os.path.split(asset_dir)
        return os.path.join(head, f".{name}.{kind}-{secrets.token_hex(8)}")

    def _install(self, staging: str, asset_dir: str) -> None:
        """Make the complete folder `staging` the step's asset folder in one atomic step."""
        if not os.path.lexists(asset_dir):
            os.rename(staging, asset_dir)
            fsync_dir(self.model_dir)
            return
        if exchange_paths(staging, asset_dir):    # staging now holds the old assets
            fsync_dir(self.model_dir)
            shutil.rmtree(staging, ignore_errors=True)
            return
        # No exchange here: journal the pair of renames first, so that a crash between them
        # is completed by the next save or restore instead of leaving no asset folder.
        old = self._hidden(asset_dir, "old")
        journal = self._journal_path(asset_dir)
        write_file_atomic(journal, f"{os.path.basename(staging)}\n"
                                   f"{os.path.basename(old)}\n".encode())
        self._complete_swap(journal)

    def _journal_path(self, asset_dir: str) -> str:
        return os.path.join(self.model_dir, f".{os.path.basename(asset_dir)}.swap")

    def _journals(self) -> list[str]:
        pattern = re.compile(rf"\.{re.escape(self.basename)}-[0-9]+\.assets\.swap")
        try:
            names = os.listdir(self.model_dir)
        except FileNotFoundError:
            return []
        return sorted(os.path.join(self.model_dir, n) for n in names if pattern.fullmatch(n))

    def _complete_swap(self, journal: str) -> None:
        """Roll a journalled swap forward: the staged folder (complete before the journal was
        written) becomes the asset folder, the old one is removed, then the journal."""
        asset_name = os.path.basename(journal)[1:-len(".swap")]
        asset_dir = os.path.join(self.model_dir, asset_name)
        try:
            with open(journal, encoding="ascii") as f:
                staged_name, old_name = f.read().split("\n")[:2]
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{journal}: unreadable swap journal ({exc}); remove it "
                                  f"after checking {asset_dir}") from None
        for name, kind in ((staged_name, "tmp"), (old_name, "old")):
            if not re.fullmatch(rf"\.{re.escape(asset_name)}\.{kind}-[0-9a-f]{{16}}", name):
                raise CheckpointError(f"{journal}: not a swap journal of {asset_name} "
                                      f"({name!r})")
        staged = os.path.join(self.model_dir, staged_name)
        old = os.path.join(self.model_dir, old_name)
        if os.path.isdir(staged):
            if os.path.lexists(asset_dir):
                os.rename(asset_dir, old)
            os.rename(staged, asset_dir)
            fsync_dir(self.model_dir)
        os.remove(journal)
        fsync_dir(self.model_dir)
        shutil.rmtree(old, ignore_errors=True)

    def _finish_swaps(self) -> None:
        for journal in self._journals():
            self._complete_swap(journal)

    def _remove_leftovers(self) -> None:
        """What killed saves left (run after _finish_swaps, so no journal needs any of it):
        staging or old asset folders, and temporaries of the state file or of a journal."""
        assets = rf"\.{re.escape(self.basename)}-[0-9]+\.assets"
        folders = re.compile(rf"{assets}\.(tmp|old)-[0-9a-f]{{16}}")
        files = re.compile(rf"\.({_STATE_FILE}|{assets}\.swap)\.tmp-[0-9a-f]{{16}}")
        for name in os.listdir(self.model_dir):
            path = os.path.join(self.model_dir, name)
            if folders.fullmatch(name):
                shutil.rmtree(path, ignore_errors=True)
            elif files.fullmatch(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)

    def _write_state(self, steps: list[int]) -> None:
        names = [os.path.basename(self.ckpt_prefix(s)) for s in steps]
        text = f'model_checkpoint_path: "{names[-1]}"\n' + "".join(
            f'all_model_checkpoint_paths: "{n}"\n' for n in names)
        write_file_atomic(os.path.join(self.model_dir, _STATE_FILE), text.encode())

    def restore(self, step: int | None = None) -> int:
        """Restore every table (and filter) from `step` (default: the latest). Returns it.

        All of them or none: every table and filter is read and checked first, and only when
        all staged does any of them change."""
        if os.path.isdir(self.model_dir):
            self._finish_swaps()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"no checkpoint in {self.model_dir}")
        asset_dir = self.asset_dir(step)
        if not os.path.isdir(asset_dir):
            raise CheckpointError(f"checkpoint assets {asset_dir} do not exist")
        # The two-step restore of engines.api (Table._stage_restore / _commit_restore).
        staged = [(entry.table, entry.table._stage_restore(
                      restore_basename(asset_dir, entry.name, entry.extra_restore_names)))
                  for entry in self._tables.values()]
        staged += [(f, f._stage_restore(os.path.join(asset_dir, f"hash_filter_{i}")))
                   for i, f in enumerate(self._filters)]
        for owner, content in staged:
            owner._commit_restore(content)
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
