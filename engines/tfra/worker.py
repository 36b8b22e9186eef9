"""The TFRA worker: runs inside the TFRA venv, serves the "tfra" engine over stdin/stdout.

Standalone on purpose: it imports the standard library, numpy, TensorFlow and TFRA, plus
protocol.py from this directory by path (not our package, which needs numpy 2 and new
protobuf). Tables are `tfra.dynamic_embedding` variables; training goes through
`de.DynamicEmbeddingOptimizer` around TF's v1 SGD / Adagrad optimizers.

Monolith's occurrence semantics are kept here, around TFRA: without dedup every occurrence
of an id is its own step (round k = every id's k-th occurrence); with dedup a group's
gradient is the sum of its rows in occurrence order. The reply's `seconds` times the op
inside this process, so the engine can separate IPC from TFRA's own cost.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol  # noqa: E402  (this directory's protocol.py, loaded as a plain module)

import numpy as np  # noqa: E402


# The two helpers below restate docs/semantics.md §3 in numpy because this process cannot
# import our package (engines.reference.numpy_engine) next to TF 2.16's numpy and protobuf.
def occurrence_rounds(ids: np.ndarray):
    """Position lists, one per round: round k holds every id's k-th occurrence, in order."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.r_[0, np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ids)]))
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids)) - run_start
    return [np.flatnonzero(rank == r) for r in range(int(rank.max()) + 1 if len(ids) else 0)]


def dedup(ids: np.ndarray, grads: np.ndarray):
    """(ids in first-occurrence order, f32 sums of their rows in occurrence order)."""
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(len(uniq), np.int64)
    remap[order] = np.arange(len(uniq))
    group = remap[inverse.reshape(-1)]
    summed = np.zeros((len(uniq), grads.shape[1]), np.float32)
    for r, sel in enumerate(occurrence_rounds(ids)):
        if r == 0:
            summed[group[sel]] = grads[sel]
        else:
            summed[group[sel]] += grads[sel]
    return uniq[order], summed


class Table:
    def __init__(self, tf, de, name, dim, optimizer, lr, init_value, accumulator,
                 weight_decay=0.0):
        self.tf, self.de, self.dim = tf, de, dim
        self.weight_decay = np.float32(weight_decay)
        self.var = de.get_variable(name, key_dtype=tf.int64, value_dtype=tf.float32, dim=dim,
                                   initializer=tf.constant_initializer(init_value))
        self.lr = tf.Variable(lr, dtype=tf.float32, trainable=False)
        lr_fn = self.lr.read_value
        if optimizer == "sgd":
            base = tf.compat.v1.train.GradientDescentOptimizer(lr_fn)
        elif optimizer == "adagrad":
            base = tf.compat.v1.train.AdagradOptimizer(lr_fn,
                                                       initial_accumulator_value=accumulator)
        else:
            raise ValueError(f"optimizer {optimizer!r} is not served by the TFRA worker")
        self.opt = de.DynamicEmbeddingOptimizer(base)
        self.name = name

    def lookup(self, ids):
        values, exists = self.var.lookup(self.tf.constant(ids), return_exists=True)
        out = values.numpy()
        out[~exists.numpy()] = 0.0           # Monolith: a missing id reads as zeros
        return out

    def assign(self, ids, values, add):
        tf = self.tf
        for sel in occurrence_rounds(ids):   # duplicates: sequential, last write wins
            keys = tf.constant(ids[sel])
            rows = values[sel]
            if add:
                rows = self.var.lookup(keys).numpy() + rows   # new ids start at the init value
            self.var.upsert(keys, tf.constant(rows))

    def apply_gradients(self, ids, grads, enable_dedup, lr):
        self.lr.assign(lr)
        if enable_dedup:
            ids, grads = dedup(ids, grads)
            rounds = [np.arange(len(ids))]
        else:
            rounds = occurrence_rounds(ids)
        for sel in rounds:
            self._step(ids[sel], grads[sel])

    def _step(self, ids, grads):
        tf = self.tf
        if self.weight_decay:
            # Monolith's g' = g + wd*w (TF's Adagrad has no weight decay); a new id's w is
            # its initial value, which TFRA's lookup returns.
            grads = grads + self.weight_decay * self.var.lookup(tf.constant(ids)).numpy()
        keys, g = tf.constant(ids), tf.constant(grads)
        with tf.GradientTape() as tape:
            values, trainable = self.de.embedding_lookup(self.var, keys, return_trainable=True,
                                                         name=f"{self.name}_lookup")
            loss = tf.reduce_sum(values * g)            # d loss / d row i = grads[i]
        self.opt.apply_gradients(zip(tape.gradient(loss, [trainable]), [trainable]))


class Worker:
    def __init__(self):
        import tensorflow as tf
        import tensorflow_recommenders_addons as tfra
        from tensorflow_recommenders_addons import dynamic_embedding as de
        self.tf, self.tfra, self.de = tf, tfra, de
        self.tables: dict[int, Table] = {}
        self.next_table = 0

    def hello(self, args, arrays):
        return {"tf": self.tf.__version__, "tfra": self.tfra.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0],
                "pid": os.getpid()}, {}

    def create_table(self, args, arrays):
        tid = self.next_table
        self.next_table += 1
        self.tables[tid] = Table(self.tf, self.de, f"hashlab_t{tid}", int(args["dim"]),
                                 args["optimizer"], float(args["lr"]),
                                 float(args["init_value"]), float(args["accumulator"]),
                                 float(args.get("weight_decay", 0.0)))
        return {"table": tid}, {}

    def drop_table(self, args, arrays):
        self.tables.pop(int(args["table"]), None)
        return {}, {}

    def _table(self, args) -> Table:
        tid = int(args["table"])
        if tid not in self.tables:
            raise KeyError(f"no table {tid} in this worker")
        return self.tables[tid]

    def lookup(self, args, arrays):
        return {}, {"values": self._table(args).lookup(arrays["ids"])}

    def assign(self, args, arrays):
        self._table(args).assign(arrays["ids"], arrays["values"], add=bool(args.get("add")))
        return {}, {}

    def apply_gradients(self, args, arrays):
        self._table(args).apply_gradients(arrays["ids"], arrays["grads"],
                                          bool(args["enable_dedup"]), float(args["lr"]))
        return {}, {}

    def size(self, args, arrays):
        return {"size": int(self._table(args).var.size().numpy())}, {}

    def crash(self, args, arrays):
        os._exit(int(args.get("code", 3)))        # tests: a worker dying mid-request


def serve(rfd: int, wfd: int) -> None:
    worker = None
    while True:
        try:
            header, arrays = protocol.read_frame(rfd)
        except protocol.WorkerDied:
            return                                  # the engine closed the pipe
        op, rid = header.get("op"), header.get("id")
        reply = {"op": op, "id": rid, "ok": True}
        out = {}
        start = time.perf_counter()
        try:
            protocol.check_version(header)
            if op == "shutdown":
                protocol.write_frame(wfd, reply)
                return
            if worker is None:
                worker = Worker()
            handler = getattr(worker, op, None) if isinstance(op, str) and \
                not op.startswith("_") else None
            if handler is None:
                raise ValueError(f"unknown op {op!r}")
            extra, out = handler(header.get("args", {}), arrays)
            reply.update(extra)
        except Exception as exc:   # report to the engine, keep serving
            reply = {"op": op, "id": rid, "ok": False,
                     "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()}
            out = {}
        reply["seconds"] = time.perf_counter() - start
        protocol.write_frame(wfd, reply, out)


def main() -> None:
    # Keep the protocol stream clean: the real stdout becomes a private fd and anything that
    # prints (TF, TFRA, warnings) goes to stderr.
    wfd = os.dup(1)
    os.dup2(2, 1)
    serve(0, wfd)


if __name__ == "__main__":
    main()
