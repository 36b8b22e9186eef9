"""Vectors for the reference's standalone math: serving compressors (core §7.5), the delay
compensation decorator (core §7.4 Dc), learning-rate decay (core §8) and config parsing."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.reference import compressors as comp
from engines.reference import optimizers

F = np.float32


def test_fp32_and_fp16_compressors():
    x = np.array([0.1, 0.2, 10000], np.float32)
    np.testing.assert_array_equal(x.copy(), x)                          # fp32 is a copy
    np.testing.assert_allclose(comp.fp16_decode(comp.fp16_encode(x)), x, atol=1e-4, rtol=1e-4)
    assert comp.fp16_encode(np.array([1e6], np.float32))[0] == np.inf   # overflow -> inf
    # round to nearest even: 2049 lies halfway between 2048 and 2050
    assert comp.fp16_encode(np.array([2049], np.float32))[0] == 2048


def test_fixed_r8_compressor():
    s = F(5) / F(128)
    x = np.array([100, 0, 3.5], np.float32)
    np.testing.assert_allclose(comp.fixed_r8_decode(comp.fixed_r8_encode(x, 5.0), 5.0),
                               [5, 0, 3.5], atol=float(s))
    y = np.array([1.4 * s, 1.6 * s, -1.4 * s, -1.6 * s], np.float32)
    np.testing.assert_array_equal(comp.fixed_r8_decode(comp.fixed_r8_encode(y, 5.0), 5.0),
                                  [s, 2 * s, -s, -2 * s])
    assert comp.fake_quantize(np.array([np.nan], np.float32), 5.0)[0] == 0


def test_one_bit_compressor():
    x = np.array([100, .1, 1e-5, 0, -1e-5, -.1, -100], np.float32)
    codes = comp.one_bit_encode(x, init_scale=1.0, amplitude=1.0)
    np.testing.assert_array_equal(codes, [1, 1, 1, -1, -1, -1, -1])
    np.testing.assert_array_equal(comp.one_bit_decode(codes, 1.0), codes.astype(np.float32))


def test_hashnet_forward_vectors():
    w = np.array([1, 2], np.float32)
    np.testing.assert_allclose(comp.hashnet_forward(w, 1.0, 0.1), [0.07615941, 0.09640275],
                               rtol=1e-6)
    assert comp.hashnet_scale(1.0, 10000.0, 1000) == pytest.approx(2.44948974, rel=1e-7)
    assert comp.hashnet_scale(1.0, 2.0, 10**6) == 2.0                   # capped at max_scale


def _adadelta():
    return optimizers.make("adadelta", 2, {"learning_rate": 0.01, "weight_decay_factor": 0.0,
                                           "averaging_ratio": 0.9, "epsilon": 0.01,
                                           "warmup_steps": 0})


def test_dc_decorator_vectors():                                       # core §7.4 Dc.*
    opt = _adadelta()
    w = np.zeros((1, 2), np.float32)
    st = np.zeros((1, 4), np.float32)
    g = np.array([[10, 1]], np.float32)
    for latest, want in (([.1, .1], [-0.0031603, -0.00301233]),
                         ([0, 0], [-0.0065548, -0.00611400])):
        g_dc = optimizers.dc_gradient(g, w, np.array([latest], np.float32), 0.1)
        opt.step(w, g_dc, st, 0.01, 0, False)
        np.testing.assert_allclose(w[0], want, atol=1e-6)
        if latest[0]:
            np.testing.assert_allclose(st[0, :2], [8.1, 0.09801], rtol=1e-5)


def test_polynomial_decay():                                            # core §8
    lr = engines.PolynomialDecay(0.01, 10, end_learning_rate=0.11)
    assert [round(lr(s), 6) for s in (0, 1, 2, 10, 20)] == [0.01, 0.02, 0.03, 0.11, 0.11]
    cyc = engines.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert cyc(15) == pytest.approx(0.25)                  # decay_steps doubled to 20
    assert "decay_steps=10" in repr(lr) and repr(lr).startswith('LearningRateFunction("Poly')
    warm = engines.lr.warmup_learning_rate(0.5, 4)
    assert [warm(s) for s in (0, 2, 4, 8)] == [0.0, 0.25, 0.5, 0.5]


def test_config_builder_layout():
    spec = engines.parse_table_config(engines.table_config(segments=[
        dict(dim=1, optimizer="ftrl"), dict(dim=32, optimizer="adam"),
        dict(dim=4, optimizer="batch_softmax")]))
    assert spec.dim == 37 and spec.num_segments == 3
    assert [s.state_offset for s in spec.segments] == [0, 2, 68]
    assert spec.state_words == 70
    assert spec.segments[1].opt_params["beta2"] == pytest.approx(0.99)
    again = engines.parse_table_config(spec.serialized())
    assert again.config == spec.config


def test_config_builder_multi_segment_errors():
    with pytest.raises(ValueError, match=r"segments\[1\]\.optimizer"):
        engines.table_config(segments=[dict(dim=1), dict(dim=2, optimizer="lion")])
    with pytest.raises(ValueError, match=r"segments\[0\]\.dim"):
        engines.table_config(segments=[dict(optimizer="sgd")])
    with pytest.raises(ValueError, match="segments"):
        engines.table_config(dim=3, segments=[dict(dim=1)])
    with pytest.raises(ValueError, match="stochastic_rounding_float16"):
        cfg = engines.table_config(dim=1)
        cfg.entry_config.segments[0].opt_config.stochastic_rounding_float16 = True
        engines.parse_table_config(cfg)


def test_extract_slot_from_entry():                                    # core §7.1 #34
    from engines.protos.embedding_hash_table_pb2 import EntryDump
    from engines.slots import extract_slot_from_entry, slots
    raw = EntryDump(id=1 << 48).SerializeToString()
    assert extract_slot_from_entry([raw]).tolist() == [1]
    assert extract_slot_from_entry([EntryDump(id=3 << 54).SerializeToString()],
                                   fid_v2=False).tolist() == [3]
    assert extract_slot_from_entry([b"\xff"]).tolist() == [0]
    assert slots(np.array([-1], np.int64)).tolist() == [32767]          # bit 63 ignored (v2)
