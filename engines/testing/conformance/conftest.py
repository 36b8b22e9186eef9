"""Fixtures of the conformance suite: `engine` (parametrized over the selected engines, see
engines/testing/selection.py), `make_engine` (another instance of the same engine, e.g. with
another thread count) and `numpy_engine` (the reference). Also collects each test's outcome
per capability area (the `conformance_area` marker) and prints the summary."""
from __future__ import annotations

import os

import pytest

import engines
from engines.testing import selection, summary

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_RESULTS = pytest.StashKey[dict]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "conformance_area(name): the capability area of a conformance test "
                   "(ops, optimizers, filters, ttl, checkpoints, fused, ...)")
    config.addinivalue_line(
        "markers", "slow: long-running tests: real processes, kills and faults "
                   "(deselect with -m 'not slow')")
    config.stash.setdefault(_RESULTS, {})


def pytest_generate_tests(metafunc):
    if "engine_param" in metafunc.fixturenames:
        metafunc.parametrize("engine_param", selection.params_for(metafunc.config),
                             indirect=True)


@pytest.fixture
def engine_param(request) -> selection.EngineParam:
    return request.param


@pytest.fixture
def engine(engine_param):
    return engine_param.make()


@pytest.fixture
def make_engine(engine_param):
    """`make_engine(**overrides)`: a fresh instance of the engine under test."""
    return engine_param.make


@pytest.fixture
def numpy_engine():
    return engines.get("numpy")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    results = config.stash.setdefault(_RESULTS, {})
    for item in items:
        if not str(item.path).startswith(here):
            continue
        marker = item.get_closest_marker("conformance_area")
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("engine_param") if callspec else None
        results[item.nodeid] = summary.Result(
            item.nodeid, marker.args[0] if marker else "other",
            param.label if param is not None else None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    result = item.config.stash.setdefault(_RESULTS, {}).get(item.nodeid)
    if result is not None:
        result.update(report)
    return report


def pytest_terminal_summary(terminalreporter, config):
    ran = [r for r in config.stash.get(_RESULTS, {}).values() if r.outcome]
    lines = summary.render(ran)
    if lines:
        terminalreporter.section("hashtable-lab conformance summary")
        for line in lines:
            terminalreporter.write_line(line)
