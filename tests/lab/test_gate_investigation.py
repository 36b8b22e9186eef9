"""What the gate says besides its verdicts: the environment differences (printed first), the
memory verdicts, the functions that grew in a regressed op (differential profiles) and the
pull-request comment (`--format markdown`)."""
import copy
import json

import numpy as np
import pytest

from lab.cli import main
from lab.engine_select import EngineChoice, resolve
from lab.gate import compare, differential, environment, markdown, render
from lab.gate import memory as memory_gate
from lab.scenarios import IdSpec, OpSpec, Scenario, TableDef
from lab.suite import SCHEMA, run_suite
from lab.timing import simulated


def _row(op, index, cost, **extra):
    return {"engine": "native-cpu", "scenario": "s", "op": op, "op_index": index,
            "threads": 1, "measure": "simulated", "median_cost": cost,
            "cost_samples": [cost, cost], "ratio_to_baseline": 2.0, **extra}


def _bench(costs: dict, machine=None, commit="a" * 40, dirty=False, profiles=(), mem=None):
    rows = [_row(op, i, c, **(mem or {}).get(op, {})) for i, (op, c) in enumerate(costs.items())]
    return {"schema": SCHEMA, "machine": machine or {"machine": "x86_64", "processor": "cpu A",
                                                     "cpu_count_logical": 2, "memory_gb": 23.4,
                                                     "kernel": "6.1", "python": "3.11.7",
                                                     "numpy": "2.4.6"},
            "git": {"commit": commit, "dirty": dirty}, "results": rows,
            "parity": [{"engine": "native-cpu", "scenario": "s", "status": "pass"}],
            "profiles": list(profiles)}


def _profile(op, index, stacks, where=None):
    return {"engine": "native-cpu", "scenario": "s", "op": op, "op_index": index, "threads": 1,
            "measure": "simulated", "unit": "estimated cycles per call", "calls": 2,
            "total": sum(stacks.values()), "folded": stacks, "where": where or {}}


def test_environment_differences_come_first_and_a_machine_change_warns():
    base = _bench({"lookup": 100.0})
    head = _bench({"lookup": 100.0}, commit="b" * 40, dirty=True,
                  machine={**base["machine"], "processor": "cpu B", "kernel": "6.5"})
    result = compare(head, base)
    fields = {f for f, _, _ in result.environment}
    assert fields == {"CPU model", "kernel", "commit", "uncommitted changes"}
    assert result.machines_differ
    text = render(result).splitlines()
    assert text[0].startswith("environment: 4 difference(s)")
    assert "  kernel: 6.1 -> 6.5" in text
    assert any("WARNING: the runs were made on different machines" in t for t in text)
    assert text.index(next(t for t in text if t.startswith("gate:"))) > 4
    same = compare(copy.deepcopy(base), base)
    assert same.environment == [] and not same.machines_differ
    assert render(same).startswith("environment: the two runs recorded the same environment")


def test_an_older_file_says_what_it_did_not_record():
    old = _bench({"lookup": 100.0})
    old["machine"].pop("kernel")
    assert ("kernel", "not recorded", "6.1") in environment.differences(_bench(
        {"lookup": 100.0}), old)


BASE_STACKS = {"py;call;Table::apply_gradients;update_loop": 600.0,
               "py;call;Table::apply_gradients;update_loop;memcpy": 200.0,
               "py;call;Table::apply_gradients;build_batch": 200.0}
HEAD_STACKS = {"py;call;Table::apply_gradients;update_loop": 900.0,
               "py;call;Table::apply_gradients;update_loop;memcpy": 200.0,
               "py;call;Table::apply_gradients;build_batch": 260.0}


def test_a_regression_names_where_the_growth_is_not_its_callers(tmp_path):
    base = _bench({"apply_gradients": 1000.0, "lookup": 500.0},
                  profiles=[_profile("apply_gradients", 0, BASE_STACKS,
                                     {"update_loop": "table.cc:380"})])
    head = _bench({"apply_gradients": 1360.0, "lookup": 500.0},
                  profiles=[_profile("apply_gradients", 0, HEAD_STACKS,
                                     {"update_loop": "table.cc:380"})])
    result = compare(head, base)
    assert result.regressions == 1
    found = result.profiles[("native-cpu", "s", "apply_gradients", 0, 1)]
    names = [f.name for f in found.functions]
    assert names == ["update_loop", "build_batch"]       # callers (py, call, ...) left out
    top = found.functions[0]
    assert (top.base, top.head, top.where) == (800.0, 1100.0, "table.cc:380")
    assert top.base_share == pytest.approx(0.8) and top.head_share == pytest.approx(1100 / 1360)
    written = differential.write_svgs(result.profiles, str(tmp_path))
    assert len(written) == 1 and "rgb(250," in open(written[0]).read()
    text = render(result)
    assert "1. update_loop [table.cc:380]: 800 -> 1100 (+300, 1.38x); 80.0% -> 80.9%" in text
    assert f"differential flame graph: {written[0]}" in text
    md = markdown.render(result)
    assert "| op | change | 95% CI | p | grew most |" in md
    assert "| native-cpu s apply_gradients (op 0) | **1.360x** (cost) | exact (counted) | — |" \
        " 1. `update_loop` 1.38x, 80% → 81% of the op<br>2. `build_batch` 1.30x" in md
    assert "lookup" not in md.split("| op |")[1].split("<sub>")[0]


def test_memory_is_gated_like_time():
    mib = 2 ** 20
    base = _bench({"lookup": 100.0, "size": 50.0},
                  mem={"lookup": {"mem_peak_bytes": 4 * mib, "mem_alloc_bytes": 4 * mib},
                       "size": {"mem_peak_bytes": 1000, "mem_alloc_bytes": 1000}})
    fat = _bench({"lookup": 100.0, "size": 50.0},
                 mem={"lookup": {"mem_peak_bytes": 5 * mib, "mem_alloc_bytes": 5 * mib},
                      "size": {"mem_peak_bytes": 3000, "mem_alloc_bytes": 3000}})
    result = compare(fat, base)
    mem = result.memory.set_index(["op", "metric"])
    assert mem.loc[("lookup", "mem_peak_bytes"), "verdict"] == "REGRESSION"
    assert mem.loc[("lookup", "mem_peak_bytes"), "change"] == pytest.approx(1.25)
    assert mem.loc[("size", "mem_peak_bytes"), "verdict"] == "ok"     # 3x, but 2 KB
    assert result.memory_regressions == 2 and result.exit_code == 1
    assert "1 memory regression" not in render(result) and "2 memory regression(s)" in \
        render(result)
    assert "peak memory 1.250x (4.000 MiB -> 5.000 MiB per call, median)" in render(result)
    assert compare(copy.deepcopy(base), base).exit_code == 0
    assert compare(fat, base, memory_threshold=1.3).memory_regressions == 0
    unmeasured = _bench({"lookup": 100.0, "size": 50.0})
    note = compare(unmeasured, base)
    assert note.memory_regressions == 0 and "only the baseline run measured it" in render(note)
    with pytest.raises(ValueError, match="memory-threshold"):
        memory_gate.compare_memory(fat, base, threshold=0.9)
    broken = copy.deepcopy(fat)
    broken["results"][0]["mem_peak_bytes"] = -5
    with pytest.raises(ValueError, match=r"results\[0\].mem_peak_bytes"):
        compare(broken, base)


def test_gate_cli_markdown(tmp_path, capsys):
    base = _bench({"apply_gradients": 1000.0},
                  profiles=[_profile("apply_gradients", 0, BASE_STACKS)])
    head = _bench({"apply_gradients": 1360.0},
                  profiles=[_profile("apply_gradients", 0, HEAD_STACKS)])
    for name, data in (("base", base), ("head", head)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    code = main(["gate", str(tmp_path / "head.json"), "--baseline", str(tmp_path / "base.json"),
                 "--format", "markdown"])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("### hashlab gate: FAIL: 1 regression(s)")
    assert (tmp_path / "gate-diff").is_dir() and len(list((tmp_path / "gate-diff").iterdir())) == 1
    assert main(["gate", str(tmp_path / "head.json"), "--baseline",
                 str(tmp_path / "base.json"), "--memory-threshold", "0.5"]) == 2


def _tiny():
    return Scenario(name="diff_tiny", tables=(TableDef(config={"dim": 16, "optimizer": "sgd"}),),
                    ops=(OpSpec("assign_add"), OpSpec("lookup")), prefill=4000,
                    batch_size=4000, ids=IdSpec(kind="uniform", vocab=8000), steps=2, warmup=0)


@pytest.mark.skipif(simulated.unavailable_reason() is not None,
                    reason=f"simulated mode unavailable: {simulated.unavailable_reason()}")
def test_a_simulated_regression_names_the_function_that_grew():
    """Real callgrind profiles: the test-only slow-lookup engine looks a quarter of every batch
    up again; the gate must name the native lookup loop among the functions that grew."""
    import lab.gate.slowdown as slowdown
    choices, _ = resolve(["native-cpu"])
    if not choices:
        pytest.skip("native-cpu is not available here")
    base = choices[0]
    slow = EngineChoice(base.label, slowdown.NAME, {"base": base.name, "fraction": 0.25},
                        base.capabilities, base.known_divergences)
    first, slowed = [run_suite([_tiny()], [c], measure="simulated",
                               imports=["lab.gate.slowdown"]).to_json() for c in (base, slow)]
    assert {p["op"] for p in first["profiles"]} == {"assign_add", "lookup"}
    result = compare(slowed, first)
    found = result.profiles[(base.label, "diff_tiny", "lookup", 1, 1)]
    names = [f.name for f in found.functions[:3]]
    assert any("Table::lookup" in n for n in names), names
    assert found.functions[0].delta > 0.1 * found.base_total


def test_wall_runs_keep_profiles_when_asked_and_the_gate_uses_them():
    """`hashlab bench --wall-profiles`: each op sampled by py-spy after the timing; a wall
    regression between two such runs is explained like a simulated one."""
    from lab.explain.sampled import unavailable_reason
    if unavailable_reason():
        pytest.skip(unavailable_reason())
    choices, _ = resolve(["numpy"])
    run = run_suite([_tiny()], choices, quick=True, wall_profiles=True).to_json()
    profiles = {p["op"]: p for p in run["profiles"]}
    assert set(profiles) == {"assign_add", "lookup"}
    lookup = profiles["lookup"]
    assert lookup["measure"] == "wall" and lookup["unit"] == "seconds per call"
    assert lookup["total"] > 0 and lookup["calls"] >= 3
    assert all(stack.split(";")[0].startswith("hashlab_op1_lookup ") for stack in lookup["folded"])
    assert any(w.startswith(("lab/", "engines/")) for w in lookup["where"].values())
    # the timings made certain (a quick run's few noisy samples decide nothing): the base's
    # lookup a tight series, the slower run's the same 1.5x; the profiles stay measured
    tight = [1e-3 * (1 + 0.001 * i) for i in range(20)]
    base = copy.deepcopy(run)
    row = next(r for r in base["results"] if r["op"] == "lookup")
    row.update(samples_s=tight, ratio_samples=[v * 10 for v in tight], sample_rounds=[0] * 20,
               median_s=float(np.median(tight)), ratio_to_baseline=float(np.median(tight)) * 10)
    slower = copy.deepcopy(base)
    row = next(r for r in slower["results"] if r["op"] == "lookup")
    row["samples_s"] = [v * 1.5 for v in row["samples_s"]]
    row["ratio_samples"] = [v * 1.5 for v in row["ratio_samples"]]
    row["median_s"] *= 1.5
    row["ratio_to_baseline"] *= 1.5
    prof = next(p for p in slower["profiles"] if p["op"] == "lookup")
    prof["folded"] = {k: v * (3.0 if i == 0 else 1.0) for i, (k, v)
                      in enumerate(sorted(prof["folded"].items(), key=lambda kv: -kv[1]))}
    result = compare(slower, base, basis="time")
    key = (choices[0].label, "diff_tiny", "lookup", 1, 1)
    assert result.perf.set_index("op").loc["lookup", "verdict"] == "REGRESSION"
    found = result.profiles[key]
    assert found.unit == "seconds per call" and found.functions[0].delta > 0
