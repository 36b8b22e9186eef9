"""The simulated cost mode: callgrind dumps read back, the same code counted the same (to within
the few percent that memory placement moves cache misses), and the gate failing exactly on the
op with an injected slowdown.

Counts must not depend on scheduling: this test holds with two busy processes on the machine
(issue 20, row 11). It failed under load when an idle native pool thread (the engine the
simulated child builds to read the capabilities, with the default thread count) first ran in
the middle of a counted `size` call: the pool now starts its threads with its first parallel
job. Three samples per op, not two, so that one call that memory placement made colder (a
first call's cache misses) cannot move the median by half its cost."""
import textwrap

import numpy as np
import pytest

import lab.gate.slowdown as slowdown
from lab.engine_select import EngineChoice, resolve
from lab.gate import compare
from lab.scenarios import IdSpec, OpSpec, Scenario, TableDef
from lab.suite import run_suite
from lab.timing import counters, simulated

DUMP = textwrap.dedent("""\
    version: 1
    creator: callgrind-3.19.0
    desc: I1 cache: 32768 B, 64 B, 8-way associative
    desc: Trigger: Client Request: tiny#3#1#lookup#baseline
    positions: line
    events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
    summary: 1000 300 200 10 20 5 2 3 1 90 7 4 1
    fn=(1) main
    0 1000 300 200 10 20 5 2 3 1 90 7 4 1
    totals: 1000 300 200 10 20 5 2 3 1 90 7 4 1
    """)


def test_a_dump_becomes_a_cost(tmp_path):
    path = tmp_path / "callgrind.out.7"
    path.write_text(DUMP)
    label, events = simulated.read_dump(str(path))
    assert label == "tiny#3#1#lookup#baseline" and events["Ir"] == 1000
    assert counters.l1_misses(events) == 35 and counters.ll_misses(events) == 6
    assert counters.cost(events) == 1000 + 10 * 35 + 100 * 6
    assert {name: counters.counter(events, name) for name in counters.COUNTER_NAMES} == {
        "instructions": 1000, "d1_misses": 25, "ll_misses": 6, "branch_misses": 8}
    (tmp_path / "callgrind.out.8").write_text("events: Ir\n")       # no label: not ours
    with pytest.raises(ValueError, match="not a callgrind dump"):
        simulated.read_dumps(str(tmp_path), "callgrind.out")


def _tiny():
    return Scenario(name="sim_tiny", tables=(TableDef(config={"dim": 16, "optimizer": "sgd"}),),
                    ops=(OpSpec("assign_add"), OpSpec("lookup"), OpSpec("size")),
                    prefill=4000, batch_size=4000, ids=IdSpec(kind="uniform", vocab=8000),
                    steps=3, warmup=0)


@pytest.mark.skipif(simulated.unavailable_reason() is not None,
                    reason=f"simulated mode unavailable: {simulated.unavailable_reason()}")
def test_same_code_same_costs_and_the_gate_finds_the_slow_op():
    choices, _ = resolve(["native-cpu"])
    if not choices:
        pytest.skip("native-cpu is not available here")
    base = choices[0]
    slow = EngineChoice(base.label, slowdown.NAME, {"base": base.name, "fraction": 0.25},
                        base.capabilities, base.known_divergences)
    runs = [run_suite([_tiny()], [c], measure="simulated",
                      imports=["lab.gate.slowdown"]).to_json() for c in (base, base, slow)]
    first, again, slowed = runs
    for a, b in zip(first["results"], again["results"]):
        assert a["measure"] == "simulated" and a["repeats"] == 3
        assert np.allclose(a["cost_samples"], b["cost_samples"], rtol=0.03)
        assert a["samples_s"] == [] and a["unstable"] is False
        assert a["instructions"] > 0 and a["median_cost"] >= a["instructions"]
    assert compare(again, first).exit_code == 0
    result = compare(slowed, first)
    regressed = result.perf[result.perf.verdict == "REGRESSION"]
    assert result.exit_code == 1 and regressed.op.tolist() == ["lookup"]
    change = float(regressed.change.iloc[0])
    # The stand-in looks up a quarter of the batch again in a second call, whose fixed cost
    # (the API layer's checks, the binding) counts in full on this 4,000-id lookup: 1.36x
    # measured since issue 20's merge (counts are deterministic), not the ids' 1.25x.
    assert 1.1 < change < 1.45 and np.isclose(change, regressed.ci_low.iloc[0])
    # The slowed engine differs in lookup only: its other calls count as the base engine's
    # (a wrapper that CPython could not specialise made `size` count 1.15-1.25x).
    others = result.perf[result.perf.op != "lookup"]
    assert len(others) == 2 and (abs(others.change - 1) < 0.03).all(), others
