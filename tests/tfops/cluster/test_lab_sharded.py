"""The lab's sharded scenarios end to end on a real in-process cluster: tf-native sharded over
1, 2 and 4 ps tasks matches the numpy reference op by op, and `hashlab report` draws the
PS-scaling chart with the RPC-hop table. Run by test_cluster.py in its own process."""
from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from lab import suite  # noqa: E402
from lab.engine_select import resolve  # noqa: E402
from lab.report.writer import write_report  # noqa: E402
from lab.scenarios import select  # noqa: E402


def test_sharded_scenarios_pass_parity_and_draw_the_chart(tmp_path):
    scenarios = select(["sharded_lookup", "sharded_optimize"], quick=True)
    assert sorted({v.ps for v in scenarios}) == [0, 1, 2, 4]
    choices, unusable = resolve(["numpy", "tf-native:threads=1"])
    assert not unusable
    result = suite.run_suite(scenarios, choices, quick=True)
    summary = result.parity_summary
    assert (summary.status == "pass").all(), summary.to_string()
    tf_rows = result.perf[result.perf.engine == "tf-native:threads=1"]
    assert sorted(set(tf_rows.scenario)) == sorted(v.name for v in scenarios)
    out = write_report(result, str(tmp_path), with_oracle=False)
    assert "ps_scaling.png" in out["images"]
    assert "RPC hop: time at ps=1 ÷ local" in open(out["markdown"]).read()
