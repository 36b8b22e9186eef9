import copy
import json

import numpy as np
import pytest

from lab.cli import main
from lab.gate import GateUsageError, compare, render

SCENARIO = "monolith_lookup[threads=1]"


def _samples(median, seed, n=40, spread=0.05):
    return (median * np.random.default_rng(seed).lognormal(0.0, spread, n)).tolist()


def _row(op, idx, ratio, seed, measure="wall", samples=None):
    samples = _samples(ratio, seed) if samples is None else samples
    return {"engine": "native-cpu", "scenario": SCENARIO, "op": op, "op_index": idx,
            "threads": 1, "median_s": ratio * 1e-4, "measure": measure,
            "ratio_to_baseline": float(np.median(samples)) if samples else None,
            "ratio_samples": samples}


def _bench(lookup=10.0, apply=50.0, status="pass", seed=0, measure="wall"):
    return {"schema": "hashlab-bench/2", "machine": {}, "git": {"commit": None},
            "results": [_row("assign_add", 0, apply, seed, measure),
                        _row("lookup", 1, lookup, seed + 1, measure),
                        _row("size", 2, 0, seed, measure, samples=[])],
            "parity": [{"engine": "native-cpu", "scenario": SCENARIO, "status": status}]}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _headline(text: str) -> str:
    """The verdict line (after the environment block the gate prints first)."""
    return next(line for line in text.splitlines() if line.startswith("gate: "))


def test_a_run_gated_against_itself_passes(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _bench())
    assert main(["gate", base, "--baseline", base]) == 0
    out = capsys.readouterr().out
    assert _headline(out).startswith("gate: PASS") and "1 without a baseline ratio" in out


def test_a_significant_slowdown_fails_and_names_the_op(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _bench(seed=0))
    cur = _write(tmp_path, "cur.json", _bench(lookup=12.5, seed=10))          # 1.25x slower
    assert main(["gate", cur, "--baseline", base]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("environment:")          # the environments' differences first
    rest = lines[lines.index(_headline(out)) + 2:]
    assert _headline(out).startswith("gate: FAIL: 1 regression(s)")   # then the summary
    regression = next(line for line in rest if line.lstrip().startswith("REGRESSION"))
    assert f"{SCENARIO} lookup (op 1" in regression and "95% CI" in regression
    assert "p=" in regression and "1.2" in regression
    # a threshold above the change lets it through
    assert main(["gate", cur, "--baseline", base, "--threshold", "1.40"]) == 0


def test_the_default_threshold_follows_the_measure():
    """Wall clock: 1.20x (what the measured same-code spread allows); simulated: 1.10x."""
    from lab.gate import DEFAULT_THRESHOLDS
    assert DEFAULT_THRESHOLDS == {"wall": 1.20, "simulated": 1.10}
    base, cur = _bench(seed=0), _bench(lookup=11.5, seed=10)                # 1.15x slower
    result = compare(cur, base)
    assert result.threshold == 1.20 and result.exit_code == 0
    assert compare(cur, base, threshold=1.10).regressions == 1
    assert compare(_simulated(), _simulated()).threshold == 1.10


def test_noise_of_the_same_distribution_passes(tmp_path, capsys):
    for seed in range(5):
        base = _write(tmp_path, "a.json", _bench(seed=100 + seed))
        cur = _write(tmp_path, "b.json", _bench(seed=200 + seed))
        assert main(["gate", cur, "--baseline", base]) == 0
    assert "REGRESSION native" not in capsys.readouterr().out


def test_speedup_is_improved_and_too_noisy_is_unstable():
    base = _bench(seed=0)
    fast = _bench(lookup=5.0, seed=3)
    result = compare(fast, base)
    verdicts = dict(zip(result.perf.op, result.perf.verdict))
    assert verdicts == {"assign_add": "ok", "lookup": "improved"} and result.exit_code == 0
    noisy = copy.deepcopy(base)
    noisy["results"][1]["ratio_samples"] = _samples(11.0, 4, n=12, spread=0.6)
    noisy["results"][1]["ratio_to_baseline"] = 11.0
    result = compare(noisy, base)
    assert dict(zip(result.perf.op, result.perf.verdict))["lookup"] == "unstable"
    # one of the two ops gated cannot be decided: more than a quarter, so INCONCLUSIVE (3)
    assert result.inconclusive and result.exit_code == 3
    text = render(result)
    assert _headline(text).startswith("gate: INCONCLUSIVE") and "Unstable" in text
    allowed = compare(noisy, base, allow_inconclusive=True)
    assert allowed.exit_code == 0 and _headline(render(allowed)).startswith(
        "gate: INCONCLUSIVE (allowed)")


def _simulated(seed=0):
    data = _bench(seed=seed, measure="simulated")
    for row in data["results"]:                   # counts: the op's own cost is compared
        row["cost_samples"] = [v * 1e5 for v in row["ratio_samples"]] or [5e4, 5e4]
        row["median_cost"] = float(np.median(row["cost_samples"]))
    return data


def test_simulated_runs_are_exact_on_their_cost():
    base = _simulated()
    same = compare(copy.deepcopy(base), base)
    assert same.exit_code == 0 and len(same.perf) == 3           # size has a cost too
    slower = copy.deepcopy(base)
    row = slower["results"][1]
    row["cost_samples"] = [v * 1.12 for v in row["cost_samples"]]
    row["median_cost"] *= 1.12
    row["ratio_samples"] = [v * 0.5 for v in row["ratio_samples"]]   # ratios are not used
    result = compare(slower, base)
    assert result.exit_code == 1 and result.regressions == 1
    assert "1.120x in cost (simulated" in render(result) and "exact" in render(result)
    nan_cost = copy.deepcopy(base)
    nan_cost["results"][0]["cost_samples"][0] = float("nan")
    with pytest.raises(GateUsageError, match="cost_samples"):
        compare(nan_cost, base)
    with pytest.raises(GateUsageError, match="compare like with like"):
        compare(_bench(seed=0), base)


MACHINE = {"machine": "x86_64", "processor": "AMD EPYC", "cpu_count_logical": 2,
           "memory_gb": 23.5, "hostname": "runner-1"}


def _timed(lookup_s=1e-3, lookup_ratio=10.0, seed=0, machine=MACHINE, rounds=10):
    """A bench run with the engine's own times and ten rounds of four samples per op."""
    data = _bench(lookup=lookup_ratio, seed=seed)
    data["machine"] = dict(machine)
    for i, row in enumerate(data["results"]):
        n = len(row["ratio_samples"])
        if not n:
            continue
        scale = lookup_s if row["op"] == "lookup" else 5e-3
        row["samples_s"] = _samples(scale, seed + 50 + i, n=n)
        row["sample_rounds"] = [j * rounds // n for j in range(n)]
    return data


def test_runs_of_one_machine_are_compared_on_the_engines_time():
    base = _timed()
    slower = _timed(lookup_s=1.3e-3, seed=20)            # the op itself: 1.3x the time...
    result = compare(slower, base)                       # ...while its ratio did not move
    assert result.basis == "time" and result.regressions == 1
    row = result.perf[result.perf.op == "lookup"].iloc[0]
    assert row.basis == "time" and row.replicates == "10 vs 10 round medians"
    text = render(result)
    assert "compared on the engine's own time" in text and "ms" in text
    # on the ratio, as asked, nothing moved
    assert compare(slower, base, basis="ratio").regressions == 0
    # another hostname is the same kind of machine (CI runners); another CPU is not
    assert compare(_timed(seed=5, machine=dict(MACHINE, hostname="runner-2")), base
                   ).basis == "time"
    other = compare(_timed(lookup_s=1.3e-3, seed=20, machine=dict(MACHINE, processor="Xeon")),
                    base)
    assert other.basis == "ratio" and other.regressions == 0
    assert "different machines" in render(other)


def test_time_basis_needs_the_engines_times(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _timed())
    untimed = _timed()
    for row in untimed["results"]:
        row.pop("samples_s", None)
    cur = _write(tmp_path, "cur.json", untimed)
    assert main(["gate", cur, "--baseline", base]) == 0          # auto: falls back to ratio
    assert "no samples_s" in capsys.readouterr().out
    assert main(["gate", cur, "--baseline", base, "--basis", "time"]) == 2
    assert "samples_s" in capsys.readouterr().err


def test_new_parity_failure_fails_even_when_faster(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _bench())
    broken = _write(tmp_path, "broken.json", _bench(lookup=2.0, status="fail"))
    assert main(["gate", broken, "--baseline", base]) == 1
    assert "1 new parity failure" in capsys.readouterr().out


def test_a_failure_that_already_failed_is_not_new():
    result = compare(_bench(status="fail"), _bench(status="fail"))
    assert result.new_failures == 0 and result.exit_code == 0


def _mutations():
    """Malformed current runs; each must exit 2 with one line, never pass or crash."""
    def results_of(f):
        def apply(d):
            f(d["results"][1])
        return apply
    return {
        "results not a list": lambda d: d.update(results={"a": 1}),
        "parity not a list": lambda d: d.update(parity="pass"),
        "row not an object": lambda d: d["results"].__setitem__(0, 7),
        "parity row not an object": lambda d: d["parity"].__setitem__(0, ["x"]),
        "missing engine": results_of(lambda r: r.pop("engine")),
        "op_index a string": results_of(lambda r: r.update(op_index="1")),
        "threads a bool": results_of(lambda r: r.update(threads=True)),
        "unknown measure": results_of(lambda r: r.update(measure="cpu")),
        "samples not a list": results_of(lambda r: r.update(ratio_samples="1,2")),
        "nan ratio": results_of(lambda r: r.update(ratio_to_baseline=float("nan"))),
        "zero ratio": results_of(lambda r: r.update(ratio_to_baseline=0)),
        "negative sample": results_of(lambda r: r["ratio_samples"].__setitem__(0, -1.0)),
        "nan sample": results_of(lambda r: r["ratio_samples"].__setitem__(0, float("nan"))),
        "inf sample": results_of(lambda r: r["ratio_samples"].__setitem__(0, float("inf"))),
        "string ratio": results_of(lambda r: r.update(ratio_to_baseline="12")),
        "ratio dropped": results_of(lambda r: r.update(ratio_to_baseline=None,
                                                       ratio_samples=[])),
        "duplicate row": lambda d: d["results"].append(copy.deepcopy(d["results"][1])),
        "time not a number": results_of(lambda r: r.update(samples_s=["0.1"] * 40)),
        "zero time": results_of(lambda r: r.update(samples_s=[0.0] * 40)),
        "negative round": results_of(lambda r: r.update(sample_rounds=[-1] * 40)),
        "round a float": results_of(lambda r: r.update(sample_rounds=[0.5] * 40)),
        "rounds not a list": results_of(lambda r: r.update(sample_rounds=3)),
        "rounds of other length": results_of(lambda r: r.update(sample_rounds=[0] * 39)),
        "old schema": lambda d: d.update(schema="hashlab-bench/1"),
        "400-digit ratio": results_of(lambda r: r.update(ratio_to_baseline=10 ** 400)),
        "400-digit sample": results_of(lambda r: r["ratio_samples"].__setitem__(0, 10 ** 400)),
        "400-digit time": results_of(lambda r: r.update(samples_s=[10 ** 400] * 40)),
        "schema missing": lambda d: d.pop("schema"),
    }


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_malformed_current_run_exits_2_with_one_line(tmp_path, capsys, name):
    base = _write(tmp_path, "base.json", _bench())
    bad = _bench()
    _mutations()[name](bad)
    path = _write(tmp_path, "bad.json", bad)
    assert main(["gate", path, "--baseline", base]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hashlab: gate:") and "Traceback" not in err


@pytest.mark.parametrize("payload", [
    b"{not json", b"\xff\xfe\x00garbage", b"[" * 100_000 + b"]" * 100_000, b"[]", b"null",
    b'"hashlab-bench/2"',
])
def test_unreadable_files_exit_2(tmp_path, capsys, payload):
    base = _write(tmp_path, "base.json", _bench())
    bad = tmp_path / "bad.json"
    bad.write_bytes(payload)
    assert main(["gate", str(bad), "--baseline", base]) == 2
    assert main(["gate", base, "--baseline", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err


@pytest.mark.parametrize("args", [["--threshold", "inf"], ["--threshold", "nan"],
                                  ["--threshold", "0.9"], ["--threshold", "1"],
                                  ["--alpha", "0"], ["--alpha", "1.5"], ["--alpha", "nan"]])
def test_bad_settings_exit_2(tmp_path, capsys, args):
    base = _write(tmp_path, "base.json", _bench())
    assert main(["gate", base, "--baseline", base, *args]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_usage_exits_2(tmp_path):
    base = _write(tmp_path, "base.json", _bench())
    assert main(["gate", str(tmp_path / "missing.json"), "--baseline", base]) == 2
    assert main(["gate", str(tmp_path), "--baseline", base]) == 2            # a folder
    other = copy.deepcopy(_bench())
    for r in other["results"] + other["parity"]:
        r["scenario"] = "something_else"
    assert main(["gate", _write(tmp_path, "other.json", other), "--baseline", base]) == 2
    assert main(["gate", base]) == 2                                   # no --baseline
    with pytest.raises(GateUsageError):
        compare(_bench(), _bench(), threshold=0.9)


def test_asv_mode_returns_asv_exit_status(monkeypatch):
    import lab.gate.asv_gate as asv_gate
    seen = {}

    class Done:
        returncode = 1

    def fake_run(cmd):
        seen["cmd"] = cmd
        return Done()
    monkeypatch.setattr(asv_gate.subprocess, "run", fake_run)
    assert main(["gate", "--asv", "HEAD~1", "HEAD", "--factor", "1.2"]) == 1
    assert seen["cmd"][-5:] == ["continuous", "--factor", "1.2", "HEAD~1", "HEAD"]


def test_a_baseline_result_missing_now_fails_naming_it(tmp_path, capsys):
    """A gate must not pass what it did not measure: an op, or every result, of the baseline
    missing from the current run fails (exit 1) and is named."""
    base = _write(tmp_path, "base.json", _bench())
    one_lost = _bench()
    del one_lost["results"][1]                                     # the lookup row
    assert main(["gate", _write(tmp_path, "cur.json", one_lost), "--baseline", base]) == 1
    out = capsys.readouterr().out
    assert "1 baseline result(s) missing" in _headline(out)
    assert f"MISSING native-cpu {SCENARIO} lookup (op 1" in out
    nothing = dict(_bench(), results=[])
    assert main(["gate", _write(tmp_path, "empty.json", nothing), "--baseline", base]) == 1
    assert "3 baseline result(s) missing" in capsys.readouterr().out
    no_parity = dict(_bench(), parity=[])
    result = compare(no_parity, _bench())
    assert result.exit_code == 1 and result.missing == [f"native-cpu {SCENARIO} (parity)"]


def test_simulated_counters_are_gated_one_by_one():
    """An extra dependent miss per id: +12% LL misses, which weighs +9% of the cost (under
    the cost's 1.10x): the LL counter's own threshold catches it, naming the counter."""
    def run(ll=100.0, instructions=3000.0, d1=20.0):
        data = _simulated()
        for row in data["results"]:
            n = len(row["cost_samples"])
            row["counter_samples"] = {"instructions": [instructions] * n, "d1_misses": [d1] * n,
                                      "ll_misses": [ll] * n, "branch_misses": [5] * n}
            cost = instructions + 10 * d1 + 100 * ll
            row["cost_samples"] = [cost] * n
            row["median_cost"] = cost
        return data
    base = run()
    assert compare(run(), base).exit_code == 0
    probe = compare(run(ll=112.0), base)
    assert probe.exit_code == 1
    row = probe.perf[probe.perf.verdict == "REGRESSION"].iloc[0]
    assert row.basis == "ll_misses" and abs(row.change - 1.12) < 1e-9
    assert "ll_misses 1.120x REGRESSED" in row.counters and "cost 1.091x," in row.counters
    assert "1.120x in ll_misses" in render(probe)
    # a large ratio on a counter that weighs nothing does not fail: 5 -> 6 branch misses
    # (+20%) on a call of 13,200 cycles is 0.1% of its cost
    few = run()
    for row in few["results"]:
        row["counter_samples"]["branch_misses"] = [6] * len(row["cost_samples"])
    assert compare(few, base).exit_code == 0
    # thresholds per counter
    assert compare(run(ll=112.0), base, counter_thresholds={"ll_misses": 1.2}).exit_code == 0
    with pytest.raises(GateUsageError, match="unknown counter"):
        compare(base, base, counter_thresholds={"cycles": 1.2})
    with pytest.raises(GateUsageError, match="ll_misses: must be a finite number > 1.0"):
        compare(base, base, counter_thresholds={"ll_misses": 0.5})
