"""Fake plug-in packages: a `*.dist-info` folder with an entry_points.txt, on sys.path, is all
importlib.metadata needs to see an installed package."""
from __future__ import annotations

import os

import pytest

from engines import registry

HERE = os.path.dirname(os.path.abspath(__file__))


def write_dist(root, name: str, entry_points: dict[str, str], version: str = "1.0") -> None:
    folder = root / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                     f"Version: {version}\n")
    lines = [f"[{registry.ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in
                                                   entry_points.items()]
    (folder / "entry_points.txt").write_text("\n".join(lines) + "\n")


FAKE_DISTS = {
    "fake-good": {"test-good": "fake_plugins:GoodEngine",
                  "test-good-factory": "fake_plugins:good_factory",
                  "test-unavailable": "fake_plugins:UnavailableEngine"},
    "fake-broken": {"test-import-error": "fake_plugins_missing_module:Engine",
                    "test-no-attribute": "fake_plugins:Missing",
                    "test-probe-crash": "fake_plugins:ProbeCrashEngine",
                    "test-returns-dict": "fake_plugins:returns_a_dict",
                    "test-factory-crash": "fake_plugins:factory_crashes",
                    "test-not-engine-class": "fake_plugins:NotAnEngine",
                    "test-bad-capabilities": "fake_plugins:BadCapabilities",
                    "test-not-callable": "fake_plugins:NOT_CALLABLE",
                    "numpy": "fake_plugins:GoodEngine",
                    "has,comma": "fake_plugins:GoodEngine",
                    "test-bad-value": "fake_plugins.GoodEngine",
                    "test-dup": "fake_plugins:GoodEngine"},
    "fake-other": {"test-dup": "fake_plugins:good_factory"},
}


@pytest.fixture
def fake_site(tmp_path_factory):
    """A folder holding the fake packages (not yet on sys.path)."""
    root = tmp_path_factory.mktemp("site")
    for name, eps in FAKE_DISTS.items():
        write_dist(root, name, eps)
    return root


@pytest.fixture
def fake_plugins(fake_site, monkeypatch):
    """The fake packages installed for one test (sys.path and $PYTHONPATH, for subprocesses)."""
    monkeypatch.syspath_prepend(str(fake_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(fake_site), HERE, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    registry.rediscover()
    yield fake_site
    registry.rediscover()
