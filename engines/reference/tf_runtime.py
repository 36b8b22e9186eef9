"""TensorFlow, imported quietly, and AutoGraph's leftovers removed. Every module of the
TensorFlow reference takes `tf` from here, so TensorFlow's start-up banners (CPU features,
oneDNN) stay off the console. Nothing imports this module until a TF engine builds a table
(or the optimizer oracle runs): `TensorFlowEngine.probe()` only looks the package up."""
from __future__ import annotations

import os
import sys

# TF's C++ logger reads this when the library loads: 2 keeps errors and drops the INFO and
# WARNING lines. setdefault: a value the user exported wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# On CPUs with AVX-512 TensorFlow turns on oneDNN's custom kernels, which reorder float sums
# ("slightly different numerical results") and announce it on stderr whatever the log level.
# A reference engine wants TensorFlow's plain kernels; a value the user exported wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import tensorflow as tf  # noqa: E402

# AutoGraph writes each converted function to <tmp>/__autograph_generated_file*.py, loads it
# as a module of that name and deletes the file only at an orderly interpreter exit; processes
# that end with os._exit (asv's benchmark workers) or are killed leave them behind.
_AUTOGRAPH_PREFIX = "__autograph_generated_file"
_removed: set[str] = set()


def remove_autograph_files() -> None:
    """Delete the files behind the AutoGraph modules loaded so far. The modules stay loaded
    and the traced graphs keep working; only their on-disk copies go."""
    for name, module in list(sys.modules.items()):
        if name in _removed or not name.startswith(_AUTOGRAPH_PREFIX):
            continue
        _removed.add(name)
        path = getattr(module, "__file__", None)
        if path:
            try:
                os.remove(path)
            except OSError:
                pass                      # already gone


__all__ = ["remove_autograph_files", "tf"]
