"""The `ps` scenario field, the executor's sharded-table hook and the PS-scaling chart (the
end-to-end run on a real in-process cluster is tests/tfops/cluster/test_lab_sharded.py)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import engines
from engines.reference.numpy_engine import NumpyEngine
from lab.report import ps_chart
from lab.scenarios import select
from lab.scenarios.execute import ScenarioExecution
from lab.scenarios.model import Scenario, ScenarioError


def test_ps_is_a_sweepable_field_that_round_trips():
    variants = select(["sharded_lookup"], quick=True)
    assert [v.ps for v in variants] == [0, 1, 2, 4]
    assert [v.params["ps"] for v in variants] == [0, 1, 2, 4]
    assert Scenario.from_dict(variants[2].to_dict()) == variants[2]
    with pytest.raises(ScenarioError, match="ps must be >= 0"):
        dataclasses.replace(variants[0], ps=-1)


class _ShardingNumpy(NumpyEngine):
    """Records the sharded tables the executor asks for (a test-only engine)."""
    name = "test-sharding"
    asked = []

    def create_sharded_table(self, config, ps, **kwargs):
        self.asked.append(ps)
        return self.create_table(config, **kwargs)


def test_executor_asks_engines_that_can_shard_and_others_run_one_table(tmp_path):
    sc = dataclasses.replace(select(["sharded_lookup"], quick=True)[2], prefill=10,
                             batch_size=8, steps=1)
    assert sc.ps == 2
    sharding = _ShardingNumpy()
    ScenarioExecution(sc, sharding, str(tmp_path / "a")).setup()
    assert sharding.asked == [2]
    plain = ScenarioExecution(sc, engines.get("numpy"), str(tmp_path / "b"))
    plain.setup()                      # numpy has no create_sharded_table: one local table
    assert plain.tables["t0"].size() == 10


def _perf_rows():
    """Timing rows shaped like the runner's: tf-native sharded over ps 0-4 and native-cpu's
    single-process baseline, for both sharded scenarios (sharded_optimize has two ops), plus a
    row of another scenario the chart must leave out. tf-native at ps=4 is unstable."""
    rows = []
    secs = {"tf-native": {0: 1e-3, 1: 4e-3, 2: 5e-3, 4: 7e-3},
            "native-cpu": {0: 2.45e-4, 1: 2.45e-4, 2: 2.45e-4, 4: 2.45e-4}}
    for base, ops in (("sharded_lookup", ("lookup",)),
                      ("sharded_optimize", ("apply_gradients", "lookup"))):
        for engine, by_ps in secs.items():
            for ps, s in by_ps.items():
                for index, op in enumerate(ops):
                    t = s * (index + 1)
                    rows.append({"engine": engine, "scenario": f"{base}[ps={ps}]",
                                 "base_scenario": base, "op": op, "op_index": index,
                                 "threads": 1, "n_ids": 2000, "median_s": t,
                                 "ci_low_s": t * 0.9, "ci_high_s": t * 1.2,
                                 "ids_per_s": 2000 / t, "params": json.dumps({"ps": ps}),
                                 "unstable": engine == "tf-native" and ps == 4})
    rows.append({"engine": "native-cpu", "scenario": "lookup_sweep", "base_scenario":
                 "lookup_sweep", "op": "lookup", "op_index": 0, "threads": 1, "n_ids": 1000,
                 "median_s": 1e-4, "ci_low_s": 0.9e-4, "ci_high_s": 1.1e-4, "ids_per_s": 1e7,
                 "params": json.dumps({"dim": 8}), "unstable": False})
    return pd.DataFrame(rows)


def test_ps_chart_and_rpc_hop_table(tmp_path):
    perf = _perf_rows()
    path = tmp_path / "ps.png"
    assert ps_chart.ps_scaling(perf, str(path)) is None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hop = ps_chart.rpc_hop_table(perf)
    assert "lookup_sweep" not in set(hop["scenario"])
    assert len(hop) == 6                          # 2 engines x (1 + 2) scenario ops
    lookup = hop[hop.scenario == "sharded_lookup"].set_index("engine")
    assert lookup.loc["tf-native", ps_chart.HOP] == pytest.approx(4.0)
    assert lookup.loc["native-cpu", ps_chart.HOP] == pytest.approx(1.0)
    # times in a unit a person reads, with their 95% CI, never raw seconds
    local = [c for c in hop.columns if c.startswith("local (ps=0)")][0]
    assert "[95% CI]" in local and "lower is better" in local
    assert lookup.loc["native-cpu", local] == "245 µs [220–294]"
    assert lookup.loc["tf-native", local] == "1 ms [0.9–1.2]"
    ps4 = [c for c in hop.columns if c.startswith("ps=4")][0]
    assert lookup.loc["tf-native", ps4] == "7 ms [6.3–8.4]"
    assert not any("0.000245" in str(v) for v in hop.to_numpy().ravel())


def test_ps_chart_in_the_report_style(tmp_path, monkeypatch):
    """One colour per engine, the style's, the same in both panels; one line style per op,
    the same in both panels; CIs as error bars; unstable points circled; log axes with units
    and direction."""
    import matplotlib.colors as mcolors

    from lab.report import charts, style
    figs = []
    real = charts._save
    monkeypatch.setattr(charts, "_save", lambda fig, path: (figs.append(fig), real(fig, path)))
    perf = _perf_rows()
    assert ps_chart.ps_scaling(perf, str(tmp_path / "ps.png")) is None
    fig = figs[0]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["sharded_lookup",
                                                               "sharded_optimize"]
    op_style = {}
    for ax in panels:
        lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert lines
        for line in lines:
            engine, op = line.get_label().split(": ")
            assert mcolors.to_hex(line.get_color()) == mcolors.to_hex(
                style.engine_color(engine)), (ax.get_title(), engine)
            op_style.setdefault(op, set()).add((str(line.get_linestyle()), line.get_marker()))
        # error bars: one vertical segment per point, in the engine's colour
        bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
        colours = {mcolors.to_hex(c.get_color()[0]) for c in bars}
        assert colours == {mcolors.to_hex(style.engine_color(e))
                           for e in ("tf-native", "native-cpu")}
        assert sum(len(c.get_segments()) for c in bars) == len(lines) * 4
        # the unstable points (tf-native at ps=4) circled
        rings = [c for c in ax.collections if c.__class__.__name__ == "PathCollection"]
        assert sum(len(c.get_offsets()) for c in rings) == sum(
            line.get_label().startswith("tf-native") for line in lines)
        assert "higher is better" in ax.get_ylabel() and "ids/s" in ax.get_ylabel()
        assert ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["local", "1", "2", "4"]
    assert all(len(styles) == 1 for styles in op_style.values()), op_style
    assert len({next(iter(v)) for v in op_style.values()}) == len(op_style)
    legend = {h.get_label(): h for h in fig.legends[0].legend_handles}
    for engine in ("tf-native", "native-cpu"):
        assert mcolors.to_hex(legend[engine].get_facecolor()) == mcolors.to_hex(
            style.engine_color(engine))
    assert {"op: lookup", "op: apply_gradients"} <= set(legend)
    assert any("unstable" in label for label in legend)
    assert "95% confidence interval" in fig._suptitle.get_text()


def test_ps_chart_says_why_when_nothing_swept_ps(tmp_path):
    perf = _perf_rows()
    why = ps_chart.ps_scaling(perf[perf.base_scenario == "lookup_sweep"], str(tmp_path / "x"))
    assert "ps" in why and not (tmp_path / "x").exists()
    assert ps_chart.rpc_hop_table(perf.iloc[:0]).empty
    assert np.isfinite(perf.ids_per_s).all()
