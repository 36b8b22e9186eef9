"""The asv suites run on the numpy engine (every parameter combination, one call each), so a
broken benchmark is caught without asv. Skips must be NotImplementedError with a reason."""
import inspect
import itertools
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)   # `benchmarks` is a top-level directory, not an installed package

from benchmarks import bench_checkpoint, bench_lookup, bench_update  # noqa: E402
from benchmarks.common import make_engine, probe_engines  # noqa: E402

PREFIXES = ("time_", "track_", "peakmem_")
CLASSES = [cls for mod in (bench_lookup, bench_update, bench_checkpoint)
           for _, cls in inspect.getmembers(mod, inspect.isclass)
           if cls.__module__ == mod.__name__ and not cls.__name__.startswith("_")]


@pytest.fixture(scope="module")
def probe():
    return {k: v for k, v in probe_engines().items() if k == "numpy"}


@pytest.fixture
def small_sizes(monkeypatch):
    """The suites' module-level sizes, shrunk: this checks the code, not the speed."""
    for mod, name, value in ((bench_lookup, "TABLE_ROWS", 2_000), (bench_lookup, "BATCH", 500),
                             (bench_update, "TABLE_ROWS", 2_000), (bench_update, "BATCH", 512),
                             (bench_checkpoint, "ENTRIES", 1_000)):
        monkeypatch.setattr(mod, name, value)
    monkeypatch.setattr(bench_lookup.FusedLookup, "ROWS", 2_000)
    monkeypatch.setattr(bench_lookup.FusedLookup, "N", 1_200)
    monkeypatch.setattr(bench_update.RepeatedId, "REPEATS", 500)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_suite_runs_on_numpy(cls, probe, small_sizes):
    names = [n for n in dir(cls) if n.startswith(PREFIXES)]
    assert names and cls.param_names[0] == "engine"
    ran = 0
    for combo in itertools.product(["numpy"], *cls.params[1:]):
        bench = cls()
        try:
            bench.setup(probe, *combo)
        except NotImplementedError as exc:
            assert "does not declare" in str(exc)
            continue
        for name in names:
            value = getattr(bench, name)(probe, *combo)
            if name.startswith("track_"):
                assert value > 0 and getattr(cls, name).unit
        if hasattr(bench, "teardown"):
            bench.teardown(probe, *combo)
        ran += 1
    assert ran >= 1


def test_unavailable_engine_is_skipped_with_reason():
    with pytest.raises(NotImplementedError, match="unavailable: not built"):
        make_engine({"x": (None, "not built")}, "x")
    with pytest.raises(NotImplementedError, match="not registered"):
        make_engine({}, "y")
    bench_lookup.peakmem_reference()
