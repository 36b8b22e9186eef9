"""Device arrays through DLPack: CuPy / PyTorch inputs are used in place (no copy), lookup
returns the caller's framework, `out=` writes into a caller's buffer, and device inputs get
the same validation as numpy ones."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from gpu_helpers import optional


def _table(gpu, dim=8):
    t = gpu.create_table(engines.table_config(dim=dim, optimizer="adagrad",
                                              initializer="random_uniform", minval=-1,
                                              maxval=1), seed=3)
    ids = np.arange(-50, 50, dtype=np.int64)
    t.assign(ids, np.linspace(-1, 1, 100 * dim, dtype=np.float32).reshape(100, dim))
    return t, ids


@pytest.mark.parametrize("framework", ["cupy", "torch"])
def test_lookup_round_trip(gpu, framework):
    xp = optional(framework)
    t, ids = _table(gpu)
    want = t.lookup(ids)
    if framework == "cupy":
        d_ids = xp.asarray(ids)
        got = t.lookup(d_ids)
        assert isinstance(got, xp.ndarray) and got.shape == (100, 8)
        np.testing.assert_array_equal(xp.asnumpy(got), want)
    else:
        d_ids = xp.as_tensor(ids, device="cuda")
        got = t.lookup(d_ids)
        assert isinstance(got, xp.Tensor) and got.is_cuda
        np.testing.assert_array_equal(got.cpu().numpy(), want)


def test_out_is_written_in_place(gpu):
    cupy = optional("cupy")
    t, ids = _table(gpu)
    out = cupy.full((100, 8), cupy.nan, dtype=cupy.float32)
    ptr = out.data.ptr
    res = t.lookup(cupy.asarray(ids), out=out)
    assert res is out and out.data.ptr == ptr
    np.testing.assert_array_equal(cupy.asnumpy(out), t.lookup(ids))


def test_device_writes_match_host_writes(gpu):
    cupy = optional("cupy")
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 30, 500).astype(np.int64)
    grads = rng.standard_normal((500, 8)).astype(np.float32)
    a, _ = _table(gpu)
    b, _ = _table(gpu)
    a.apply_gradients(ids, grads, enable_dedup=True)
    b.apply_gradients(cupy.asarray(ids), cupy.asarray(grads), enable_dedup=True)
    a.assign_add(ids, grads)
    b.assign_add(cupy.asarray(ids), cupy.asarray(grads).reshape(-1))   # flat rows accepted
    probe = np.unique(ids)
    np.testing.assert_array_equal(a.lookup(probe), b.lookup(probe))


def test_device_input_validation(gpu):
    cupy = optional("cupy")
    t, ids = _table(gpu)
    with pytest.raises(TypeError, match="int64"):
        t.lookup(cupy.arange(3, dtype=cupy.int32))
    with pytest.raises(ValueError, match="1-D"):
        t.lookup(cupy.zeros((2, 2), dtype=cupy.int64))
    g = cupy.ones((3, 8), dtype=cupy.float32)
    g[1, 2] = cupy.inf
    before = t.lookup(ids)
    with pytest.raises(ValueError, match="row 1"):
        t.apply_gradients(cupy.arange(3, dtype=cupy.int64), g)
    with pytest.raises(ValueError, match="shape"):
        t.assign(cupy.arange(3, dtype=cupy.int64), cupy.ones((3, 7), dtype=cupy.float32))
    np.testing.assert_array_equal(t.lookup(ids), before)


def test_nb_ndarray_speaks_dlpack(gpu):
    cupy = optional("cupy")
    t, ids = _table(gpu)
    raw = t._t.lookup(cupy.asarray(ids), None)          # nanobind's own device array
    assert raw.__dlpack_device__()[0] == 2
    np.testing.assert_array_equal(cupy.asnumpy(cupy.from_dlpack(raw)), t.lookup(ids))
