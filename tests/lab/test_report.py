import dataclasses
import html
import os
import re

import pandas as pd
import pytest

from lab.engine_select import resolve
from lab.report import writer
from lab.scenarios import IdSpec, OpSpec, Scenario, TableDef
from lab.suite import run_suite

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sweep():
    return Scenario(name="lookup_sweep", tables=(TableDef(config={"dim": 4}),),
                    ops=(OpSpec("lookup"),), prefill=64, ids=IdSpec(vocab=128), steps=2,
                    sweep={"batch_size": (16, 64), "dim": (4, 8)}).variants()


@pytest.fixture
def suite(broken_engines, storage_scenario, training_scenario):
    choices, _ = resolve(["numpy", "test-one-ulp-lookup"])
    return run_suite([storage_scenario, training_scenario, *_sweep()], choices,
                     [("ghost", "not built here")], quick=True)


def test_report_files_images_and_parity_tables(suite, tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "oracle_table", lambda: (None, "TensorFlow is elsewhere"))
    out = tmp_path / "rep"
    written = writer.write_report(suite, str(out), asv_results=str(tmp_path / "no-asv"))
    for name in ("index.html", "report.md", "parity.csv", "perf.csv"):
        assert (out / name).stat().st_size > 0
    page = (out / "index.html").read_text()

    images = re.findall(r"<img src='([^']+)'", page)
    assert {"parity_matrix.png", "throughput.png", "speedup.png",
            "batch_scaling.png"} <= set(images)
    for name in images:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name
        assert not os.path.isabs(name)
    # charts with nothing to show say why instead of drawing
    assert "no asv results found" in page and "thread_scaling.png" in written["notes"]
    assert "TensorFlow is elsewhere" in page

    # the CSV is exactly the runner's rows
    csv = pd.read_csv(out / "parity.csv")
    rows = suite.parity_rows
    assert len(csv) == len(rows)
    assert csv[["scenario", "engine", "op", "status"]].astype(str).values.tolist() == \
        rows[["scenario", "engine", "op", "status"]].astype(str).values.tolist()
    # the HTML parity table shows every engine x scenario status of the runner
    cells = re.findall(r"<tr>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*"
                       r"<td class=\"status-(\w+)\">", page)
    shown = {(html.unescape(e), html.unescape(s)): st for e, s, st in cells}
    for r in suite.parity_summary.itertuples():
        assert shown[(r.engine, r.scenario)] == r.status
    assert shown[("test-one-ulp-lookup", "tiny_storage")] == "fail"
    assert shown[("ghost", "tiny_storage")] == "skipped"


def test_performance_only_for_pairs_that_passed(suite, tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "oracle_table", lambda: (None, "skipped in tests"))
    writer.write_report(suite, str(tmp_path), asv_results=str(tmp_path))
    perf = pd.read_csv(tmp_path / "perf.csv")
    assert set(perf.parity) <= {"pass", "known_divergence"}
    assert not ((perf.engine == "test-one-ulp-lookup") & (perf.scenario == "tiny_storage")
                ).any()
    assert (perf.engine == "numpy").any()
    md = (tmp_path / "report.md").read_text()
    assert "| engine | scenarios | pass |" in md and "![parity_matrix.png]" in md


def test_oracle_table_section_and_history(suite, tmp_path, monkeypatch):
    oracle = pd.DataFrame([{"optimizer": "adagrad", "max_abs_err": 1e-8, "max_rel_err": 1e-7,
                            "max_ulp": 2.0, "explanation": "rounding order"}])
    monkeypatch.setattr(writer, "oracle_table", lambda: (oracle, None))
    results = tmp_path / "asv" / "vm"
    results.mkdir(parents=True)
    for i, commit in enumerate(["a" * 40, "b" * 40]):
        (results / f"{commit[:8]}-env.json").write_text(pd.Series({
            "commit_hash": commit, "date": 1_700_000_000_000 + i * 86_400_000,
            "result_columns": ["result", "params"],
            "results": {"bench_lookup.Lookup.time_lookup": [[0.01 + i * 0.001, None],
                                                             [["'numpy'", "'tfra'"]]]},
        }).to_json())
    written = writer.write_report(suite, str(tmp_path / "r"), asv_results=str(tmp_path / "asv"))
    page = (tmp_path / "r" / "index.html").read_text()
    assert "rounding order" in page and "history.png" in written["images"]
    assert (tmp_path / "r" / "history.png").read_bytes()[:8] == PNG_MAGIC


def test_summary_table_counts(suite):
    summary = writer.summary_table(suite).set_index("engine")
    assert summary.loc["numpy", "fail"] == 0 and summary.loc["numpy", "pass"] == 6
    assert summary.loc["test-one-ulp-lookup", "fail"] >= 1
    assert summary.loc["ghost", "skipped"] == 6
    assert dataclasses.is_dataclass(suite)
