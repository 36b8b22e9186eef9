"""The pieces the CPU and CUDA builds share: one vocabulary, one config marshaller, one
checkpoint error type."""
from __future__ import annotations

import enum
import itertools

import numpy as np
import pytest

import engines
from engines.native.cpu import native_module
from engines import vocabulary
from engines.errors import CheckpointError
from engines.native.common import config_text

# The compiled engine is part of every install: its absence is an error, never a skip
# (a CI run must fail when the native build silently failed; tests/native/test_build.py).
native = native_module()


def _names(enum_type):
    return tuple(m.name for m in sorted(enum_type, key=lambda m: m.value))


def test_module_enums_are_the_python_vocabulary():
    assert _names(native.Optimizer) == tuple(vocabulary.OPTIMIZERS)
    assert _names(native.Initializer) == tuple(vocabulary.INITIALIZERS)
    assert _names(native.Compressor) == (vocabulary.NO_COMPRESSOR, *vocabulary.COMPRESSORS)


def test_a_stale_module_is_refused_at_load():
    class Stale:
        __name__ = "engines.native._stale"
        Optimizer = enum.Enum("Optimizer", [(n, i) for i, n in
                                            enumerate([*vocabulary.OPTIMIZERS, "lion"])])
        Initializer = native.Initializer
        Compressor = native.Compressor
    with pytest.raises(ImportError, match="lion"):
        vocabulary.check_native_names(Stale)


@pytest.mark.parametrize("optimizer, initializer, compressor", list(itertools.product(
    vocabulary.OPTIMIZERS, vocabulary.INITIALIZERS, [None, *vocabulary.COMPRESSORS])))
def test_every_config_marshals_and_builds(optimizer, initializer, compressor):
    cfg = engines.table_config(dim=3, optimizer=optimizer, initializer=initializer,
                               compressor=compressor)
    spec = engines.parse_table_config(cfg)
    native.Table(native.Pool(1), None, config_text(spec, seed=5, quirks=True))


def test_marshalled_floats_are_exact():
    cfg = engines.table_config(dim=2, optimizer="ftrl", beta=0.1, l1_regularization_strength=1e-7,
                               initializer="random_uniform", minval=-1 / 3, maxval=2 / 3)
    text = config_text(engines.parse_table_config(cfg), seed=1, quirks=False)
    for key, value in (("beta", 0.1), ("l1_regularization_strength", 1e-7),
                       ("minval", -1 / 3), ("maxval", 2 / 3)):
        field = next(w for w in text.split() if w.startswith(key + "="))
        assert float.fromhex(field.split("=", 1)[1]) == float(np.float32(value))


def test_native_checkpoint_errors_are_the_engines_class(tmp_path):
    t = engines.get("native-cpu", threads=1).create_table(engines.table_config(dim=2))
    (tmp_path / "t-00000-of-00001").write_bytes(b"\x01" * 20)
    with pytest.raises(CheckpointError) as info:
        t.restore(str(tmp_path / "t"))
    assert type(info.value) is CheckpointError
    assert "t-00000-of-00001: record 0" in str(info.value)
