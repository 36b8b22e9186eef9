import copy
import json

import pytest

from lab.cli import main
from lab.gate import GateUsageError, compare


def _bench(ratio_lookup=10.0, ratio_apply=50.0, status="pass"):
    def row(op, idx, ratio):
        return {"engine": "native-cpu", "scenario": "monolith_lookup[threads=1]", "op": op,
                "op_index": idx, "threads": 1, "median_s": ratio * 1e-4,
                "ratio_to_baseline": ratio}
    return {"schema": "hashlab-bench/1", "machine": {}, "git": {"commit": None},
            "results": [row("assign_add", 0, ratio_apply), row("lookup", 1, ratio_lookup)],
            "parity": [{"engine": "native-cpu", "scenario": "monolith_lookup[threads=1]",
                        "status": status}]}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_synthetic_slowdown_fails_the_gate(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _bench())
    cur = _write(tmp_path, "cur.json", _bench(ratio_lookup=12.0))       # 1.2x slower
    assert main(["gate", cur, "--baseline", base]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "1.200x" in out and "gate: FAIL" in out
    # a looser threshold lets the same change through
    assert main(["gate", cur, "--baseline", base, "--threshold", "1.25"]) == 0


def test_speedup_and_noise_pass(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _bench())
    fast = _write(tmp_path, "fast.json", _bench(ratio_lookup=5.0, ratio_apply=52.0))
    assert main(["gate", fast, "--baseline", base]) == 0
    out = capsys.readouterr().out
    assert "faster" in out and "gate: PASS" in out


def test_new_parity_failure_fails_even_when_faster(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _bench())
    broken = _write(tmp_path, "broken.json", _bench(ratio_lookup=2.0, status="fail"))
    assert main(["gate", broken, "--baseline", base]) == 1
    assert "1 new parity failure" in capsys.readouterr().out


def test_a_failure_that_already_failed_is_not_new():
    result = compare(_bench(status="fail"), _bench(status="fail"))
    assert result.new_failures == 0 and result.exit_code == 0


def test_bad_usage_exits_2(tmp_path):
    base = _write(tmp_path, "base.json", _bench())
    assert main(["gate", str(tmp_path / "missing.json"), "--baseline", base]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["gate", str(bad), "--baseline", base]) == 2
    other = copy.deepcopy(_bench())
    for r in other["results"] + other["parity"]:
        r["scenario"] = "something_else"
    assert main(["gate", _write(tmp_path, "other.json", other), "--baseline", base]) == 2
    assert main(["gate", base]) == 2                                   # no --baseline
    assert main(["gate", _write(tmp_path, "x.json", {"schema": "nope"}), "--baseline",
                 base]) == 2
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
