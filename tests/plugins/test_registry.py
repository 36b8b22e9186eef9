"""Engine plug-ins: discovery through entry points, broken and rejected plug-ins (reported,
never fatal to the other engines), module:Factory targets, specs and run-time registration."""
from __future__ import annotations

import re
import sys

import pytest

import engines
from engines import registry
from engines.reference.numpy_engine import NumpyEngine

BROKEN = {
    "test-import-error": "No module named 'fake_plugins_missing_module'",
    "test-no-attribute": "has no attribute 'Missing'",
    "test-probe-crash": "probe() raised RuntimeError: probe blew up",
    "test-returns-dict": "the factory returned a dict, not an engines.Engine",
    "test-factory-crash": "the factory raised ZeroDivisionError: factory blew up",
    "test-not-engine-class": "is a class but not an engines.Engine subclass",
    "test-bad-capabilities": "capabilities must be an engines.Capabilities, got dict",
    "test-not-callable": "is a int, not an Engine class or factory",
}


def infos():
    return {i.name: i for i in engines.available()}


def test_plugins_are_listed_after_the_builtins(fake_plugins):
    names = engines.names()
    assert names[:5] == ["numpy", "native-cpu", "native-gpu", "tensorflow", "tfra"]
    assert {"test-good", "test-good-factory", "test-unavailable", *BROKEN} <= set(names)
    assert names.count("numpy") == 1


def test_discovery_imports_no_plugin_module(fake_plugins):
    sys.modules.pop("fake_plugins", None)
    assert "test-good" in engines.names()
    assert "fake_plugins" not in sys.modules


def test_working_plugins(fake_plugins):
    good = infos()["test-good"]
    assert good.available and not good.broken
    assert good.origin == "plug-in from fake-good 1.0 (fake_plugins:GoodEngine)"
    assert good.capabilities == NumpyEngine.capabilities
    assert engines.get("test-good").name == "test-good"
    assert isinstance(engines.get("test-good-factory"), NumpyEngine)
    assert infos()["test-good-factory"].available


def test_unavailable_plugin_is_not_broken(fake_plugins):
    info = infos()["test-unavailable"]
    assert not info.available and not info.broken
    assert info.reason == "needs a device this machine lacks"
    with pytest.raises(engines.EngineUnavailable, match="needs a device"):
        engines.get("test-unavailable")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_plugin_is_reported_with_its_reason(fake_plugins, name):
    info = infos()[name]           # available() itself never raises for a broken plug-in
    assert not info.available and info.broken and info.capabilities is None
    assert BROKEN[name] in info.reason
    with pytest.raises(engines.BrokenPlugin, match=re.escape(BROKEN[name])):
        engines.get(name)
    assert infos()["numpy"].available and infos()["test-good"].available


def test_rejected_entry_points(fake_plugins):
    rejected = {(r.name, r.origin.split(" (")[0]): r.reason for r in engines.rejected()}
    assert rejected[("numpy", "plug-in from fake-broken 1.0")].startswith(
        "shadows the built-in engine 'numpy'")
    assert "not a valid engine name" in rejected[("has,comma", "plug-in from fake-broken 1.0")]
    assert "is not 'module:Factory'" in rejected[("test-bad-value",
                                                  "plug-in from fake-broken 1.0")]
    for dist in ("fake-broken", "fake-other"):
        assert rejected[("test-dup", f"plug-in from {dist} 1.0")].startswith(
            "2 packages claim this name")
    names = engines.names()
    assert "test-dup" not in names and "has,comma" not in names
    assert type(engines.get("numpy")) is NumpyEngine          # the built-in, not the plug-in


def test_target_runs_an_engine_that_is_not_installed():
    eng = engines.get("fake_plugins:GoodEngine")
    assert isinstance(eng, NumpyEngine)
    info = engines.info("fake_plugins:good_factory")
    assert info.available and info.origin == "fake_plugins:good_factory (not installed)"
    broken = engines.info("fake_plugins:ProbeCrashEngine")
    assert broken.broken and "probe blew up" in broken.reason
    with pytest.raises(ValueError, match="not a 'module:Factory' target"):
        engines.get("fake plugins:Good Engine")
    with pytest.raises(ValueError, match="unknown engine 'no-such-engine'"):
        engines.info("no-such-engine")


def test_register_rejects_names_it_would_shadow(fake_plugins):
    with pytest.raises(ValueError, match="built-in"):
        engines.register("numpy", NumpyEngine)
    with pytest.raises(ValueError, match="plug-in from fake-good"):
        engines.register("test-good", NumpyEngine)
    with pytest.raises(ValueError, match="not a valid engine name"):
        engines.register("a:b", NumpyEngine)
    with pytest.raises(TypeError, match="factory"):
        engines.register("test-registered", "NumpyEngine")
    engines.register("test-registered", lambda **o: NumpyEngine(**o))
    try:
        assert engines.names()[-1] == "test-registered"
        assert infos()["test-registered"].origin == "registered in this process"
    finally:
        engines.unregister("test-registered")


@pytest.mark.parametrize("text,name,options", [
    ("numpy", "numpy", {}),
    ("tensorflow:kernels=tf", "tensorflow", {"kernels": "tf"}),
    ("native-cpu:threads=2,pin=true", "native-cpu", {"threads": 2, "pin": True}),
    ("pkg.mod:Factory", "pkg.mod:Factory", {}),
    ("pkg.mod:Outer.Inner:threads=2,scale=0.5", "pkg.mod:Outer.Inner",
     {"threads": 2, "scale": 0.5}),
    ("numpy:", "numpy", {}),
])
def test_parse_spec(text, name, options):
    spec = registry.parse_spec(text)
    assert (spec.text, spec.name, spec.options) == (text, name, options)


@pytest.mark.parametrize("text,match", [("numpy:threads=2,oops", "bad option 'oops'"),
                                        ("pkg.mod:Factory:oops", "bad option 'oops'"),
                                        ("1pkg:Factory", "not a 'module:Factory' target"),
                                        (":threads=2", "empty engine name")])
def test_parse_spec_errors_name_the_option(text, match):
    with pytest.raises(ValueError, match=f"^--hashlab-engine: .*{match}"):
        registry.parse_spec(text, "--hashlab-engine")
