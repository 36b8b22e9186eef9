"""The engine table of `tf-native` with ps=N: a ShardedHashTable on the in-process cluster.

Its graph is built once (placeholders for every input) and run through a TF1 session on the
cluster's first server, so every call pays what a training step pays: the client partitions
ids, TF's runtime ships the parts to the ps tasks over gRPC and the results back. Each run has
a deadline; a task that does not answer fails the call with ClusterError instead of hanging.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from engines import api
from engines.native.common import int64_arg
from engines.tfops.cluster import DEFAULT_TIMEOUT_S, ClusterError, ps_devices
from engines.tfops.engine import _errors_as_engine_errors
from engines.tfops.sharded import ShardedHashTable


class _StagedShards:
    """One staged restore per task (tokens in the task's table resource); dropped unless
    committed."""

    def __init__(self, table, tokens):
        self._table, self._tokens = table, list(tokens)

    def commit(self):
        tokens, self._tokens = self._tokens, None
        self._table._run("commit_restore", tokens=tokens)

    def __del__(self):
        if self._tokens is not None:
            try:
                self._table._run("discard_restore", tokens=self._tokens)
            except Exception:  # noqa: BLE001 - the session may be closed already
                pass


class ShardedEngineTable(api.Table):
    def __init__(self, engine, spec, learning_rates, seed, quirks,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(spec, learning_rates)
        self.engine_name = engine.name
        self.num_ps = engine.ps
        self._timeout_ms = int(timeout_s * 1000)
        self._lrs = np.asarray(self.learning_rates, np.float32)
        self._graph = tf.Graph()
        with self._graph.as_default():
            ph = {
                "ids": tf.compat.v1.placeholder(tf.int64, [None], "ids"),
                "rows": tf.compat.v1.placeholder(tf.float32, [None, spec.dim], "rows"),
                "req_time": tf.compat.v1.placeholder(tf.int64, [], "req_time"),
                "global_step": tf.compat.v1.placeholder(tf.int64, [], "global_step"),
                "lrs": tf.compat.v1.placeholder(tf.float32, [spec.num_segments], "lrs"),
                "basename": tf.compat.v1.placeholder(tf.string, [], "basename"),
                "nshards": tf.compat.v1.placeholder(tf.int64, [], "nshards"),
            }
            t = ShardedHashTable(spec.config, self.learning_rates,
                                 ps_devices=ps_devices(self.num_ps), seed=seed,
                                 monolith_quirks=quirks, fid_version=spec.fid_version,
                                 threads=engine.threads)
            ids, rows, rt = ph["ids"], ph["rows"], ph["req_time"]
            self._ops = {
                "lookup": t.lookup(ids), "lookup_entry": t.lookup_entry(ids),
                "assign": t.assign(ids, rows, rt).as_op(),
                "assign_add": t.assign_add(ids, rows, rt).as_op(),
                "size": t.size(), "max_update_ts": t.max_update_ts(),
                "save": t.save(ph["basename"], ph["nshards"]),
                "stage_restore": t.stage_restore(ph["basename"]),
            }
            tokens = tf.compat.v1.placeholder(tf.int64, [self.num_ps], "tokens")
            ph["tokens"] = tokens
            per_task = tf.unstack(tokens, self.num_ps)
            self._ops["commit_restore"] = t.commit_restore(per_task).as_op()
            self._ops["discard_restore"] = t.discard_restore(per_task)
            for dedup in (False, True):
                self._ops[("apply", dedup)] = t.apply_gradients(
                    ids, rows, ph["global_step"], dedup, rt, ph["lrs"]).as_op()
        self._ph = ph
        self._graph.finalize()
        self._sess = engine.cluster.session(self.num_ps, self._graph, timeout_s)

    def __del__(self):
        sess = getattr(self, "_sess", None)
        if sess is not None:
            try:
                sess.close()
            except Exception:  # noqa: BLE001 - interpreter shutting down
                pass

    @_errors_as_engine_errors
    def _run(self, op, **feeds):
        feed = {self._ph[k]: v for k, v in feeds.items()}
        try:
            return self._sess.run(self._ops[op], feed, options=tf.compat.v1.RunOptions(
                timeout_in_ms=self._timeout_ms))
        except tf.errors.DeadlineExceededError as exc:
            raise ClusterError(f"{op} on {self.num_ps} ps tasks did not finish within "
                               f"{self._timeout_ms / 1000:g} s: {exc.message}") from None
        except tf.errors.UnavailableError as exc:
            raise ClusterError(f"{op}: a ps task is unreachable: {exc.message}") from None

    def _assign(self, ids, values, req_time):
        self._run("assign", ids=ids, rows=values, req_time=int64_arg(req_time, "req_time"))

    def _assign_add(self, ids, values, req_time):
        self._run("assign_add", ids=ids, rows=values, req_time=int64_arg(req_time, "req_time"))

    def _lookup(self, ids):
        return self._run("lookup", ids=ids)

    def _lookup_entry(self, ids):
        return [bytes(e) for e in self._run("lookup_entry", ids=ids)]

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        lr = self._lrs if lrs is self.learning_rates else np.asarray(lrs, np.float32)
        self._run(("apply", enable_dedup), ids=ids, rows=grads, lrs=lr,
                  global_step=int64_arg(global_step, "global_step"),
                  req_time=int64_arg(req_time, "req_time"))

    def _size(self):
        return int(self._run("size"))

    def _max_update_ts(self):
        return int(self._run("max_update_ts"))

    def _save(self, basename, nshards):
        if nshards != -1 and nshards % self.num_ps:
            raise ValueError(f"nshards must be -1 or a multiple of the {self.num_ps} ps tasks "
                             f"(each task writes its own shards), got {nshards}")
        return [p.decode() for p in self._run("save", basename=basename, nshards=nshards)]

    def _stage_restore(self, basename):
        return _StagedShards(self, self._run("stage_restore", basename=basename))

    def _commit_restore(self, staged):
        staged.commit()

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        raise NotImplementedError("save_as_tensor: not declared for sharded tables")
