"""The TFRA worker: runs inside the TFRA venv, serves the "tfra" engine over stdin/stdout.

Standalone on purpose: it imports the standard library, numpy, TensorFlow and TFRA, plus the
worker-side modules of engines/peer/ by path (not our package, which needs numpy 2 and new
protobuf). Tables are `tfra.dynamic_embedding` variables; training goes through
`de.DynamicEmbeddingOptimizer` around TF's v1 SGD / Adagrad optimizers.

Monolith's occurrence semantics are kept here, around TFRA (engines/peer/occurrences.py):
without dedup every occurrence of an id is its own step; with dedup a group's gradient is the
sum of its rows in occurrence order.
"""
from __future__ import annotations

import os
import sys

# engines/peer's worker-side modules, last on the path so they shadow none of the peer's own.
sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))
import serve  # noqa: E402  (engines/peer/serve.py, loaded as a plain module)
from occurrences import dedup, occurrence_rounds  # noqa: E402

import numpy as np  # noqa: E402


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

    def size(self) -> int:
        return int(self.var.size().numpy())

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


class Worker(serve.TableHost):
    def __init__(self):
        super().__init__()
        import tensorflow as tf
        import tensorflow_recommenders_addons as tfra
        from tensorflow_recommenders_addons import dynamic_embedding as de
        self.tf, self.tfra, self.de = tf, tfra, de

    def hello(self, args, arrays):
        return {"tf": self.tf.__version__, "tfra": self.tfra.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0],
                "pid": os.getpid()}, {}

    def make_table(self, args):
        return Table(self.tf, self.de, f"hashlab_t{self.next_table}", int(args["dim"]),
                     args["optimizer"], float(args["lr"]), float(args["init_value"]),
                     float(args["accumulator"]), float(args.get("weight_decay", 0.0)))


if __name__ == "__main__":
    serve.main(Worker)
