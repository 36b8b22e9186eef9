"""Which engines the conformance suite runs on (engines/testing/selection.py) and its summary
(engines/testing/summary.py)."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

import engines
from engines.reference.numpy_engine import NumpyEngine
from engines.testing import selection, summary


class ThreadedEngine(NumpyEngine):
    name = "test-threaded"
    capabilities = dataclasses.replace(NumpyEngine.capabilities, threads=True)

    def __init__(self, threads: int = 1):
        super().__init__()
        self.threads = threads


@pytest.fixture
def threaded():
    engines.register(ThreadedEngine.name, ThreadedEngine)
    yield ThreadedEngine.name
    engines.unregister(ThreadedEngine.name)


def test_requested_prefers_option_then_environment_then_all():
    assert selection.requested(["a", "b:x=1"], "c") == (["a", "b:x=1"], True)
    assert selection.requested([], "numpy,native-cpu,") == (["numpy", "native-cpu"], True)
    assert selection.requested([], None) == (engines.names(registered=False), False)


def _ids(params):
    return [p.id for p in params]


def test_threaded_engines_run_with_one_and_two_threads(threaded):
    params = selection.engine_params(["numpy", threaded, f"{threaded}:threads=3"], True)
    assert _ids(params) == ["numpy", f"{threaded}-t1", f"{threaded}-t2",
                            f"{threaded}:threads=3"]
    assert [p.values[0].make().threads for p in params[1:]] == [1, 2, 3]
    assert params[2].values[0].options == {"threads": 2}


def test_unavailable_and_broken_engines(fake_plugins):
    params = selection.engine_params(["test-unavailable", "test-probe-crash"], False)
    reasons = [p.marks[0].kwargs["reason"] for p in params]
    assert reasons == ["engine test-unavailable unavailable: needs a device this machine lacks",
                       "engine test-probe-crash broken: probe() raised RuntimeError: "
                       "probe blew up"]
    with pytest.raises(pytest.UsageError, match="test-probe-crash is broken"):
        selection.engine_params(["test-probe-crash"], True)
    with pytest.raises(pytest.UsageError, match="unknown engine"):
        selection.engine_params(["test-nope"], True)


def _report(when, outcome, reason=""):
    return SimpleNamespace(when=when, failed=outcome == "failed", skipped=outcome == "skipped",
                           longrepr=("f.py", 1, f"Skipped: {reason}") if reason else None)


def test_summary_counts_areas_reasons_and_failures():
    results = [summary.Result(f"m.py::t{k}[e]", area, "e") for k, area in
               enumerate(["ops", "ops", "ttl", "ops", "ttl"])]
    results[0].update(_report("call", "passed"))
    results[1].update(_report("setup", "passed"))
    results[1].update(_report("call", "failed"))
    results[2].update(_report("setup", "skipped", "engine e does not declare TTL"))
    results[3].update(_report("call", "passed"))
    results[3].update(_report("teardown", "failed"))
    results[4].update(_report("setup", "skipped", "engine e does not declare op save, TTL"))
    shared = summary.Result("m.py::t_shared", "ops", None)
    shared.update(_report("call", "passed"))
    lines = summary.render([r for r in results + [shared] if r.outcome])
    assert lines[:4] == ["passed/failed/skipped per capability area:",
                         "area                     e",
                         "ops                  1/2/0",
                         "ttl                  0/0/2"]
    assert "e skipped, lacking: TTL (2), op save (1)" in lines
    assert "e FAILED 2: m.py::t1[e], m.py::t3[e]" in lines
    many = [summary.Result(f"d/m.py::test_{k:02d}[e]", "ops", "e", outcome="failed")
            for k in range(12)]
    failed = summary.render(many)[3:]
    assert failed[0].startswith("e FAILED 12: m.py::test_00[e], m.py::test_01[e],")
    assert failed[-1].endswith("m.py::test_07[e], and 4 more")
    assert all(len(line) <= 100 for line in failed)
    assert lines[-1] == "engine-independent checks: 1 passed"
    assert summary.render([]) == []
