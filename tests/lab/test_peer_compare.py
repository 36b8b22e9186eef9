"""lab.peer_compare: the cases, the interleaving of configurations, the rows and the skips
(timings are measured, never asserted)."""
from __future__ import annotations

import json

import pytest

import engines
from engines.registry import register, unregister
from lab import peer_compare


@pytest.fixture
def unavailable_engine():
    def factory(**options):
        raise engines.EngineUnavailable("no such peer here")
    register("test-missing-peer", factory)
    yield "test-missing-peer"
    unregister("test-missing-peer")


def test_rows_per_engine_thread_count_and_op(monkeypatch, unavailable_engine):
    order = []
    real_sample = peer_compare.Case.sample

    def sample(case):
        order.append((case.table.engine_name, case.op))
        real_sample(case)
    monkeypatch.setattr(peer_compare.Case, "sample", sample)
    rows, skipped = peer_compare.compare(["numpy", "native-cpu", unavailable_engine],
                                         threads=(1, 2), repeats=2, shape="quick")
    assert skipped == {unavailable_engine: "no such peer here"}
    got = {(r["engine"], r["threads"], r["op"]) for r in rows}
    assert got == {("numpy", None, op) for op in ("lookup", "adagrad_apply", "insert")} | \
        {("native-cpu", n, op) for n in (1, 2) for op in ("lookup", "adagrad_apply", "insert")}
    # interleaved: round 1 of every configuration before round 2 of any
    per_round = len(order) // 2
    assert order[:per_round] == order[per_round:] and per_round == 9
    lookup, apply_, insert = peer_compare.SHAPES["quick"][0], peer_compare.SHAPES["quick"][1], \
        peer_compare.SHAPES["quick"][3]
    for r in rows:
        assert r["n_ids"] == {"lookup": lookup, "adagrad_apply": apply_, "insert": insert}[r["op"]]
        assert r["repeats"] == 2 and r["q1_ms"] <= r["median_ms"] <= r["q3_ms"]
        assert r["ratio_q1"] <= r["ratio_to_take"] <= r["ratio_q3"] and r["ratio_to_take"] > 0
        assert r["worker_median_ms"] is None                     # in-process engines
    text = peer_compare.format_rows(rows)
    assert text.count("\n") == len(rows) and "x dense take" in text


def test_cases_do_what_they_say():
    """lookup reads the prefilled ids, apply trains 4 occurrences per id, insert adds new ids
    every call."""
    from lab.timing.baseline import Baselines
    eng = engines.get("numpy")
    cases = {c.op: c for c in peer_compare.build_cases(eng, "quick", Baselines("/tmp"))}
    lookup_n, apply_n, distinct, insert_n = peer_compare.SHAPES["quick"]
    assert cases["lookup"].table.size() == lookup_n
    assert cases["adagrad_apply"].table.size() == distinct
    cases["adagrad_apply"].call()
    assert cases["adagrad_apply"].table.size() == distinct      # nothing new
    for k in range(1, 3):
        cases["insert"].call()
        assert cases["insert"].table.size() == k * insert_n


def test_main_strict_and_json(tmp_path, capsys, unavailable_engine):
    out = tmp_path / "peers.json"
    assert peer_compare.main(["--engines", "native-cpu", unavailable_engine, "--quick",
                              "--threads", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "load average" in printed and f"{unavailable_engine}: skipped" in printed
    data = json.loads(out.read_text())
    assert data["skipped"] == {unavailable_engine: "no such peer here"} and data["rows"]
    assert peer_compare.main(["--engines", unavailable_engine, "--quick", "--strict"]) == 1
    with pytest.raises(SystemExit):
        peer_compare.main(["--threads", "0"])
