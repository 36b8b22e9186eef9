"""Monolith's checkpoint listeners for graph tables, over engines/model_checkpoint.py's layout.

    saver = tf.compat.v1.train.CheckpointSaverHook(
        model_dir, save_steps=100,
        listeners=[HashTableCheckpointSaverListener(model_dir + "/model.ckpt")])
    restorer = CheckpointRestorerHook([HashTableCheckpointRestorerListener(
        model_dir + "/model.ckpt")])

Before TF's saver writes `model.ckpt-<step>`, every table in the graph collection
`monolith_hash_tables` saves to `model.ckpt-<step>.assets/<table prefix>-NNNNN-of-MMMMM`
(so the `checkpoint` state file names a step only once its tables are on disk). The restorer
finds the newest checkpoint (or a lone `*.assets` folder: a sparse-only checkpoint) and
restores every table from its own prefix or the first of its extra_restore_names that has
files. The save and restore ops are built when the listener is created, before the graph is
finalized, and fed the paths at run time.
"""
from __future__ import annotations

import glob
import os

import tensorflow as tf

from engines.model_checkpoint import asset_dir_of, restore_basename, table_prefix
from engines.tfops.hash_table import HASH_TABLE_GRAPH_KEY

TIMEOUT_MS = 60 * 60 * 1000          # Monolith's: an hour for all tables


def _tables():
    return tf.compat.v1.get_collection(HASH_TABLE_GRAPH_KEY)


class HashTableCheckpointSaverListener(tf.compat.v1.train.CheckpointSaverListener):
    """Saves every table of the graph before the checkpoint of a step is written."""

    def __init__(self, basename: str):
        super().__init__()
        self._basename = basename
        self._paths = {}
        tables = _tables()
        # Monolith: a random sleep of up to 15 ms per table spreads file-system metadata load.
        saves = []
        for table in tables:
            path = tf.compat.v1.placeholder(tf.string, [], name=None)
            self._paths[table.name] = (path, table)
            saves.append(table.save(path, random_sleep_ms=15 * len(tables)).as_op())
        with tf.control_dependencies(saves):
            self._save_op = tf.no_op(name="save_hash_tables")

    def before_save(self, session, global_step_value):
        asset_dir = asset_dir_of(f"{self._basename}-{int(global_step_value)}")
        os.makedirs(asset_dir, exist_ok=True)
        feed = {path: os.path.join(asset_dir, table_prefix(table.name))
                for path, table in self._paths.values()}
        session.run(self._save_op, feed,
                    options=tf.compat.v1.RunOptions(timeout_in_ms=TIMEOUT_MS))


class HashTableCheckpointRestorerListener:
    """Restores every table of the graph from the newest checkpoint's asset folder, all or
    nothing: every table stages (reads and checks its files) before any table changes."""

    def __init__(self, basename: str):
        self._basename = basename
        self._tables = []
        for table in _tables():
            path = tf.compat.v1.placeholder(tf.string, [])
            token = tf.compat.v1.placeholder(tf.int64, [])
            self._tables.append((table, path, table.stage_restore(path), token,
                                 table.commit_restore(token).as_op(),
                                 table.discard_restore(token).as_op()))

    def asset_dir(self) -> str | None:
        """The asset folder to restore from, or None when there is nothing to restore."""
        model_dir = os.path.dirname(self._basename)
        prefix = tf.train.latest_checkpoint(model_dir)
        if prefix:
            return asset_dir_of(prefix)
        assets = glob.glob(os.path.join(glob.escape(model_dir), "*.assets"))
        return assets[0] if len(assets) == 1 else None     # a sparse-only checkpoint

    def begin(self):
        pass

    def before_restore(self, session):
        asset_dir = self.asset_dir()
        if asset_dir is None:
            return
        options = tf.compat.v1.RunOptions(timeout_in_ms=TIMEOUT_MS)
        bases = [restore_basename(asset_dir, t.name, t.extra_restore_names)
                 for t, *_ in self._tables]
        staged = []
        try:
            for (_, path, stage, *_), base in zip(self._tables, bases):
                staged.append(session.run(stage, {path: base}, options=options))
        except Exception:
            for (*_, token, _, discard), tok in zip(self._tables, staged):
                session.run(discard, {token: tok})
            raise
        session.run([commit for *_, commit, _ in self._tables],
                    {token: tok for (*_, token, _, _), tok in zip(self._tables, staged)},
                    options=options)

    def after_restore(self, session):
        pass

    def end(self, session):
        pass


class HashTableRestorerSaverListener(tf.compat.v1.train.CheckpointSaverListener):
    """Restores right after each save: entries the save's TTL dropped leave memory too, and
    updates made between the save and now are undone (Monolith's eviction mechanism)."""

    def __init__(self, basename: str):
        super().__init__()
        self._restorer = HashTableCheckpointRestorerListener(basename)

    def after_save(self, session, global_step_value):
        self._restorer.before_restore(session)


class CheckpointRestorerHook(tf.compat.v1.train.SessionRunHook):
    """Runs restorer listeners once the session exists (Monolith's basic_restore_hook)."""

    def __init__(self, listeners):
        self._listeners = list(listeners)

    def begin(self):
        for listener in self._listeners:
            listener.begin()

    def after_create_session(self, session, coord):
        for listener in self._listeners:
            listener.before_restore(session)
        for listener in self._listeners:
            listener.after_restore(session)

    def end(self, session):
        for listener in self._listeners:
            listener.end(session)
