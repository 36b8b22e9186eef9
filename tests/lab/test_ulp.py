import numpy as np

from engines.tolerance import within_ulps
from lab.parity.ulp import error_stats, ulp_distance

F = np.float32


def test_adjacent_floats_are_one_ulp_apart():
    x = F(1.0)
    assert ulp_distance(x, np.nextafter(x, F(2))) == 1
    assert ulp_distance(x, np.nextafter(x, F(0))) == 1
    assert ulp_distance(F(-3.5), np.nextafter(F(-3.5), F(-4))) == 1


def test_signed_zeros_are_equal_and_crossing_zero_counts_both_sides():
    assert ulp_distance(F(0.0), F(-0.0)) == 0
    tiny = np.nextafter(F(0), F(1))                    # smallest subnormal
    assert ulp_distance(tiny, -tiny) == 2


def test_nan_and_inf():
    assert ulp_distance(F(np.nan), F(np.nan)) == 0
    assert np.isinf(ulp_distance(F(np.nan), F(1.0)))
    assert ulp_distance(F(np.inf), np.finfo(np.float32).max) == 1


def test_large_distance_does_not_overflow():
    d = ulp_distance(np.finfo(np.float32).max, -np.finfo(np.float32).max)
    assert d == 2 * (0x7F7FFFFF)


def test_error_stats_and_tolerance():
    a = np.array([1.0, 2.0, 0.0], F)
    b = a.copy()
    b[1] = np.nextafter(b[1], F(3))
    b[1] = np.nextafter(b[1], F(3))
    stats = error_stats(a, b)
    assert stats.max_ulp == 2
    assert stats.max_abs_err > 0 and stats.max_rel_err < 1e-6
    assert within_ulps(a, b, 4, 1e-12).all()
    assert not within_ulps(a, b, 1, 0.0).all()
    # Near zero an absolute floor applies: 1e-13 vs 0 is billions of ulps but passes.
    assert within_ulps(F(1e-13), F(0.0), 4, 1e-12)


def test_one_tolerance_for_the_suite_and_the_reports():
    """Issue 20, row 9: the conformance suite (engines.testing.compare) and the parity
    reports (lab.parity.compare) read one policy, engines.tolerance, and agree at its edge."""
    import pytest

    from engines import tolerance
    from engines.testing.compare import assert_dumps_close, assert_floats_close
    from engines.protos.embedding_hash_table_pb2 import EntryDump
    from lab.parity.compare import ULP, Policy, compare_outputs

    assert Policy() == Policy(tolerance.MAX_ULP, tolerance.ABS_FLOOR)
    ref = F(1.5)
    edge, beyond = ref, ref
    for k in range(tolerance.MAX_ULP + 1):
        edge, beyond = beyond, np.nextafter(beyond, F(2))
    assert compare_outputs({"embeddings": [edge]}, {"embeddings": [ref]}, ULP).ok
    assert not compare_outputs({"embeddings": [beyond]}, {"embeddings": [ref]}, ULP).ok
    assert_floats_close([edge], [ref], "edge")
    with pytest.raises(AssertionError):
        assert_floats_close([beyond], [ref], "beyond")
    dumps = [EntryDump(id=1, num=[float(v)]).SerializeToString() for v in (ref, edge, beyond)]
    assert_dumps_close(dumps[1], dumps[0], "edge")
    with pytest.raises(AssertionError):
        assert_dumps_close(dumps[2], dumps[0], "beyond")


def test_repeated_fields_on_every_protobuf_runtime():
    """FieldDescriptor.label is gone in protobuf 7, is_repeated missing from old runtimes:
    tolerance.is_repeated reads either, for both comparers."""
    from types import SimpleNamespace

    from google.protobuf.descriptor import FieldDescriptor

    from engines import tolerance
    assert tolerance.is_repeated(SimpleNamespace(is_repeated=True))
    assert tolerance.is_repeated(SimpleNamespace(label=FieldDescriptor.LABEL_REPEATED))
    assert not tolerance.is_repeated(SimpleNamespace(label=FieldDescriptor.LABEL_OPTIONAL))
