"""Plug-in engines in the lab: `hashlab engines`, the engine selection of report / bench / run,
the gate on their results, and the asv suites' engine parameter."""
from __future__ import annotations

import importlib
import json
import os
import sys

import pytest

from lab.cli import main
from lab.engine_select import resolve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_engines_command_lists_plugins_broken_and_rejected(fake_plugins, capsys):
    assert main(["engines"]) == 0
    out = capsys.readouterr().out
    assert "test-good    available\n" in out
    assert "plug-in from fake-good 1.0 (fake_plugins:GoodEngine)" in out
    assert "test-probe-crash BROKEN: probe() raised RuntimeError: probe blew up" in out
    assert "numpy        REJECTED plug-in: shadows the built-in engine 'numpy'" in out
    assert "test-unavailable unavailable: needs a device this machine lacks" in out
    assert main(["engines", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_name = {(e["name"], e.get("rejected", False)): e for e in listed}
    assert by_name[("test-good", False)]["available"]
    assert by_name[("test-returns-dict", False)]["broken"]
    assert by_name[("numpy", True)]["origin"].startswith("plug-in from fake-broken")
    assert by_name[("numpy", False)]["origin"] == "built-in"


def test_default_selection_skips_broken_plugins(fake_plugins):
    usable, unusable = resolve()
    labels = [c.label for c in usable]
    assert "numpy" in labels and "test-good" in labels and "test-good-factory" in labels
    reasons = dict(unusable)
    assert "probe blew up" in reasons["test-probe-crash"]
    assert "not an engines.Engine" in reasons["test-returns-dict"]


def test_target_spec_in_the_lab():
    (choice,), unusable = resolve(["fake_plugins:GoodEngine"])
    assert not unusable and choice.name == "fake_plugins:GoodEngine"
    assert choice.make().name == "test-good"
    _, unusable = resolve(["fake_plugins:ProbeCrashEngine"])
    assert "probe blew up" in unusable[0][1]
    with pytest.raises(ValueError, match="unknown engine 'test-nope'"):
        resolve(["test-nope"])


def test_report_bench_and_gate_include_plugins(fake_plugins, tmp_path, monkeypatch, capsys):
    from lab.report import writer
    monkeypatch.setattr(writer, "oracle_table", lambda: (None, "not in this test"))
    out = tmp_path / "report"
    assert main(["report", "--quick", "--engines", "numpy", "test-good",
                 "fake_plugins:good_factory", "--scenarios", "zipf_training", "--out", str(out),
                 "--asv-results", str(tmp_path), "--no-progress"]) == 0
    import pandas as pd
    parity = pd.read_csv(out / "parity.csv")
    passed = parity[parity.status == "pass"].groupby("engine").size()
    assert set(passed.index) == {"numpy", "test-good", "fake_plugins:good_factory"}
    assert "test-good" in (out / "report.md").read_text()
    bench = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--engines", "test-good", "--scenarios", "monolith_lookup",
                 "--save", str(bench), "--no-progress"]) == 0
    data = json.loads(bench.read_text())
    assert {e["label"] for e in data["engines"]} == {"test-good"}
    assert main(["gate", str(bench), "--baseline", str(bench), "--allow-inconclusive"]) == 0


def test_asv_engine_parameter_includes_plugins(fake_plugins, monkeypatch):
    monkeypatch.delenv("HASHLAB_ASV_ENGINES", raising=False)
    monkeypatch.syspath_prepend(ROOT)        # `benchmarks` is a top-level folder
    import benchmarks.common as common
    try:
        common = importlib.reload(common)
        assert "test-good" in common.ENGINES
        probe = common.probe_engines()
        assert probe["test-good"][0] is not None and probe["test-probe-crash"][0] is None
        assert common.make_engine(probe, "test-good").name == "test-good"
        with pytest.raises(NotImplementedError, match="probe blew up"):
            common.make_engine(probe, "test-probe-crash")
    finally:
        monkeypatch.undo()
        from engines import registry
        registry.rediscover()
        importlib.reload(sys.modules["benchmarks.common"])
