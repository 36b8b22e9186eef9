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
    rows = []
    for engine, secs in (("tf-native", {0: 1e-3, 1: 4e-3, 2: 5e-3, 4: 7e-3}),
                         ("native-cpu", {0: 2e-4, 1: 2e-4, 2: 2e-4, 4: 2e-4})):
        for ps, s in secs.items():
            rows.append({"engine": engine, "scenario": f"sharded_lookup[ps={ps}]",
                         "base_scenario": "sharded_lookup", "op": "lookup", "median_s": s,
                         "ids_per_s": 2000 / s, "params": json.dumps({"ps": ps})})
    rows.append({"engine": "native-cpu", "scenario": "lookup_sweep", "base_scenario":
                 "lookup_sweep", "op": "lookup", "median_s": 1e-4, "ids_per_s": 1e7,
                 "params": json.dumps({"dim": 8})})
    return pd.DataFrame(rows)


def test_ps_chart_and_rpc_hop_table(tmp_path):
    perf = _perf_rows()
    path = tmp_path / "ps.png"
    assert ps_chart.ps_scaling(perf, str(path)) is None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hop = ps_chart.rpc_hop_table(perf).set_index("engine")
    assert hop.loc["tf-native", "rpc hop (ps=1 / ps=0)"] == pytest.approx(4.0)
    assert hop.loc["native-cpu", "rpc hop (ps=1 / ps=0)"] == pytest.approx(1.0)
    assert "lookup_sweep" not in set(hop["base_scenario"])


def test_ps_chart_says_why_when_nothing_swept_ps(tmp_path):
    perf = _perf_rows()
    why = ps_chart.ps_scaling(perf[perf.base_scenario == "lookup_sweep"], str(tmp_path / "x"))
    assert "ps" in why and not (tmp_path / "x").exists()
    assert ps_chart.rpc_hop_table(perf.iloc[:0]).empty
    assert np.isfinite(perf.ids_per_s).all()
