"""The op library, loaded once per process, with the gradients of its differentiable ops.

    from engines.tfops.ops import lib
    lib().monolith_hash_table_lookup(handle, ids, dim_size=8)

Gradients: a lookup's gradient with respect to the table handle is
`tf.IndexedSlices(values=d(loss)/d(embeddings), indices=ids)`, i.e. exactly the (ids, grads)
pair `HashTable.apply_gradients` takes; the hash-filter intercept passes embeddings through and
zeroes the gradient rows of ids the filter has not admitted yet.
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
_lib = None


def lib():
    """The loaded library (compiled into the cache on first use; see engines/tfops/build.py)."""
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                from engines.tfops import build
                loaded = build.load()
                _register_gradients(loaded)
                _lib = loaded
    return _lib


def _register_gradients(loaded) -> None:
    import tensorflow as tf

    def lookup_grad(op, grad):
        return [tf.IndexedSlices(grad, op.inputs[1]), None]

    def intercept_grad(op, grad):
        filtered = loaded.monolith_hash_filter_intercept_gradient_gradient(
            op.inputs[0], op.inputs[1], grad)
        return [None, None, filtered]

    for name, fn in (("MonolithHashTableLookup", lookup_grad),
                     ("MonolithHashFilterInterceptGradient", intercept_grad)):
        try:
            tf.RegisterGradient(name)(fn)
        except KeyError:      # registered by an earlier load in this process
            pass
