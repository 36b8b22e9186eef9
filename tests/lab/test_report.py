"""The report: files, the page's structure, and charts a performance engineer can trust
(one colour per engine, like-for-like bars, readable log axes with a direction, a parity
matrix whose cell text agrees with its colour, error bars when the timing has them)."""
import dataclasses
import html
import json
import math
import os
import re

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd

from engines import tolerance
import pytest
from matplotlib.patches import Rectangle

from lab.engine_select import resolve
from lab.report import charts, style, writer
from lab.scenarios import IdSpec, OpSpec, Scenario, TableDef
from lab.suite import run_suite

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sweep():
    return Scenario(name="lookup_sweep", tables=(TableDef(config={"dim": 4}),),
                    ops=(OpSpec("lookup"),), prefill=64, ids=IdSpec(vocab=128), steps=2,
                    sweep={"batch_size": (16, 64), "dim": (4, 8)}).variants()


def _threads():
    return Scenario(name="threaded", tables=(TableDef(config={"dim": 4}),),
                    ops=(OpSpec("assign_add"), OpSpec("lookup")), batch_size=256,
                    ids=IdSpec(vocab=512), steps=2, sweep={"threads": (1, 2)}).variants()


_RUNS = {}


@pytest.fixture
def suite(broken_engines, storage_scenario, training_scenario):
    """One run for the whole module (the tests only read it)."""
    if "suite" not in _RUNS:
        choices, _ = resolve(["numpy", "native-cpu", "test-one-ulp-lookup"])
        result = run_suite([storage_scenario, training_scenario, *_sweep(), *_threads()],
                           choices, [("ghost", "not built here: run `make ghost`")],
                           quick=True)
        result.meta.update(profile="test", profile_description="tiny scenarios", load={
            "min": 1.5, "median": 2.5, "max": 3.0, "samples": 4})
        _RUNS["suite"] = result
    return _RUNS["suite"]


ORACLE = pd.DataFrame([{"optimizer": "adagrad", "max_abs_err": 1e-8, "max_rel_err": 1e-7,
                        "max_ulp": 2.0, "explanation": "rounding order"}])
RESIZED = ["checkpoint_4m: prefill 80,000 (catalog: 4,000,000)"]


def _asv_results(root):
    results = root / "vm"
    results.mkdir(parents=True)
    for i, commit in enumerate(["a" * 40, "b" * 40]):
        (results / f"{commit[:8]}-env.json").write_text(json.dumps({
            "commit_hash": commit, "date": 1_700_000_000_000 + i * 86_400_000,
            "result_columns": ["result", "params"],
            "results": {"bench_lookup.Lookup.time_lookup": [[0.01 + i * 0.001, None],
                                                             [["'numpy'", "'tfra'"]]]}}))
    return root


SHARDED_ENGINES = ("numpy", "native-cpu")


def sharded_rows(perf: pd.DataFrame) -> pd.DataFrame:
    """Timing rows of the sharded_lookup sweep over ps 0-4 for numpy and native-cpu, shaped
    like the runner's (the real sweep needs TensorFlow's cluster: tests/tfops/cluster);
    native-cpu at ps=4 is unstable."""
    template = perf.iloc[0].to_dict()
    rows = []
    for engine in SHARDED_ENGINES:
        for ps in (0, 1, 2, 4):
            median = (1e-3 if engine == "numpy" else 2.45e-4) * (1 + 0.2 * ps)
            rows.append({**template, "engine": engine, "scenario": f"sharded_lookup[ps={ps}]",
                         "base_scenario": "sharded_lookup", "op": "lookup", "op_index": 0,
                         "threads": 1, "n_ids": 2000, "batch_size": 2000, "median_s": median,
                         "ids_per_s": 2000 / median, "ci_low_s": median * 0.9,
                         "ci_high_s": median * 1.15, "ratio_to_baseline": median / 1e-4,
                         "ratio_ci_low": median / 1e-4 * 0.9,
                         "ratio_ci_high": median / 1e-4 * 1.15,
                         "unstable": engine == "native-cpu" and ps == 4,
                         "params": json.dumps({"ps": ps}), "parity": "pass", "measure": "wall"})
    return pd.DataFrame(rows)


def report_perf(suite) -> pd.DataFrame:
    """The suite's timing rows with synthesised CIs (so which rows are unstable does not
    depend on the machine's load), plus a sharded sweep."""
    perf = with_ci(suite.perf)
    return pd.concat([perf, sharded_rows(perf)], ignore_index=True)


def unstable_counts(perf: pd.DataFrame) -> dict:
    """engine -> (unstable rows, rows) among the rows the report shows."""
    shown = perf[perf["parity"].isin(("pass", "known_divergence"))]
    return {e: (int(g["unstable"].sum()), len(g)) for e, g in shown.groupby("engine")}


@pytest.fixture
def report(suite, tmp_path_factory, monkeypatch):
    """(folder, write_report's answer, the result) of one report of `suite`, written once:
    with an oracle table, asv history, a resized scenario in its sizes, a sharded sweep, and
    timing rows whose stability does not depend on the machine (`report_perf`)."""
    if "report" not in _RUNS:
        root = tmp_path_factory.mktemp("report")
        monkeypatch.setattr(writer, "oracle_table", lambda: (ORACLE, None))
        result = dataclasses.replace(suite, perf=report_perf(suite), meta={
            **suite.meta, "resized": RESIZED,
            "sizes": [{"scenario": "checkpoint_4m[prefill=80000]", "prefill": 80_000,
                       "batch_size": 1024, "steps": 1, "warmup": 0, "threads": 1}]})
        written = writer.write_report(result, str(root / "out"),
                                      asv_results=str(_asv_results(root / "asv")))
        _RUNS["report"] = (root / "out", written, result)
    return _RUNS["report"]


@pytest.fixture
def no_oracle(monkeypatch):
    monkeypatch.setattr(writer, "oracle_table", lambda: (None, "TensorFlow is elsewhere"))


def with_ci(perf: pd.DataFrame) -> pd.DataFrame:
    """The timing runner's confidence-interval fields, synthesised (older bench JSON lacks
    them; the measurement runner adds them)."""
    perf = perf.copy()
    width = np.linspace(0.05, 0.5, len(perf))
    perf["ci_low_s"] = perf["median_s"] * (1 - width / 2)
    perf["ci_high_s"] = perf["median_s"] * (1 + width)
    perf["ratio_ci_low"] = perf["ratio_to_baseline"] * (1 - width / 2)
    perf["ratio_ci_high"] = perf["ratio_to_baseline"] * (1 + width)
    perf["unstable"] = width > 0.4
    perf["load_avg"] = 1.0
    perf["measure"] = "wall"
    return perf


def without_ci(perf: pd.DataFrame) -> pd.DataFrame:
    """The same rows as bench JSON written before the measurement runner recorded confidence
    intervals (reports must still read it)."""
    return perf.drop(columns=[c for c in CI_FIELDS if c in perf.columns])


CI_FIELDS = ("ci_low_s", "ci_high_s", "ratio_ci_low", "ratio_ci_high", "unstable")


class Captured:
    """Keeps the figures charts would have saved, to inspect what they draw."""

    def __init__(self, monkeypatch):
        self.figs = []
        real = charts._save
        monkeypatch.setattr(charts, "_save", lambda fig, path: (self.figs.append(fig),
                                                                real(fig, path)))


# ---- files and page ---------------------------------------------------------------------

def test_report_files_and_images(suite, report):
    out, written, _ = report
    for name in ("index.html", "report.md", "parity.csv", "perf.csv", "bench.json"):
        assert (out / name).stat().st_size > 0
    assert written["data"] == ["bench.json", "parity.csv", "perf.csv"]
    page = (out / "index.html").read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert {"parity_matrix.png", "thread_scaling.png", "batch_scaling.png", "history.png",
            "family_lookup_sweep.png", "family_tiny_training.png", "ps_scaling.png"} \
        <= set(images)
    assert set(images) == set(written["images"])
    for name in images:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name
        assert not os.path.isabs(name)
    csv = pd.read_csv(out / "parity.csv")
    assert csv[["scenario", "engine", "op", "status"]].astype(str).values.tolist() == \
        suite.parity_rows[["scenario", "engine", "op", "status"]].astype(str).values.tolist()
    assert "rounding order" in page                          # the oracle table
    md = (out / "report.md").read_text()
    assert "![parity_matrix.png](parity_matrix.png)" in md and "| engine |" in md


def test_charts_with_nothing_to_draw_say_why(suite, tmp_path, no_oracle):
    no_threads = dataclasses.replace(suite, perf=suite.perf[suite.perf["threads"] == 1])
    (tmp_path / "family_gone.png").write_bytes(PNG_MAGIC)
    (tmp_path / "thread_scaling.png").write_bytes(PNG_MAGIC)
    written = writer.write_report(no_threads, str(tmp_path), asv_results=str(tmp_path))
    page = (tmp_path / "index.html").read_text()
    assert "no asv results found" in page and "history.png" in written["notes"]
    assert "TensorFlow is elsewhere" in page
    assert "thread_scaling.png" in written["notes"]
    # a second run into the same folder removes the charts it did not draw
    assert not (tmp_path / "thread_scaling.png").exists()
    assert not (tmp_path / "family_gone.png").exists()


def test_page_summary_first_engines_not_run_once_no_raw_markdown(report):
    page = (report[0] / "index.html").read_text()
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert headings[0] == "Summary" and headings[1] == "Engines not run"
    summary = page.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    assert "ghost" not in summary and "native-cpu" in summary
    # the unavailable engine and its reason: once, in its own section
    assert page.count("not built here") == 1 and page.count(">ghost<") == 1
    assert "<code>make ghost</code>" in page
    text = re.sub(r"<[^>]+>", "", page.split("<body>")[1])
    assert "`" not in html.unescape(text), "raw Markdown backticks in the HTML"
    assert "**" not in text
    # every table sits in its own scrolling box
    assert page.count("<table") == page.count("<div class='scroll")


def test_what_ran_at_which_size_is_on_the_page(report):
    page = (report[0] / "index.html").read_text()
    assert RESIZED[0] in page
    assert "<td>checkpoint_4m[prefill=80000]</td><td>80,000</td>" in page
    assert "tiny scenarios" in page                          # the profile's description


def test_column_names_carry_units_and_direction(suite):
    perf = writer.perf_view(without_ci(suite.perf_passing()))
    assert "median time (ms) ↓ lower is better" in perf.columns
    assert "throughput (M ids/s) ↑ higher is better" in perf.columns
    assert "time ÷ baseline (×) ↓ lower is better" in perf.columns
    assert "spread: IQR (ms)" in perf.columns            # no CI fields: the IQR instead
    ci = writer.perf_view(with_ci(without_ci(suite.perf_passing())))
    assert "95% CI of the median (ms)" in ci.columns and "unstable" in ci.columns
    assert "95% CI of the ratio (×)" in ci.columns and set(ci["timed by"]) == {"wall"}
    assert writer.load_from_rows(with_ci(suite.perf))["median"] == 1.0
    assert writer.load_from_rows(without_ci(suite.perf).drop(columns="load_avg",
                                                             errors="ignore")) is None
    summary = writer.summary_table(suite)
    assert any("ulp" in c and "lower is better" in c for c in summary.columns)
    assert any("speedup over numpy" in c and "higher is better" in c for c in summary.columns)


def test_known_divergences_show_the_declared_bound_beside_the_measured_error(
        suite, monkeypatch):
    """Issue 20, rows 8 and 9: the failures-and-divergences table puts each pair's measured
    worst error beside the bound its engine declared, and the page's tolerance text reads
    engines.tolerance.MAX_ULP."""
    summary = suite.parity_summary.copy()
    summary.loc[summary.engine == "test-one-ulp-lookup", "status"] = "known_divergence"
    summary.loc[summary.engine == "test-one-ulp-lookup", "bound"] = "2 ulp per step"
    view = writer.parity_view(dataclasses.replace(suite, parity_summary=summary),
                              ("known_divergence",))
    assert {"worst error (ulp) ↓ lower is better", "worst rel. error",
            "declared bound"} <= set(view.columns)
    assert set(view["declared bound"]) == {"2 ulp per step"}
    monkeypatch.setattr(tolerance, "MAX_ULP", 7)
    texts = [p for _, paragraphs, _ in writer._sections(
        suite, pd.DataFrame(), "", suite.perf, pd.DataFrame(), [], {}, [], None, "")
        for p in paragraphs]
    assert any("within 7 ulp" in t for t in texts)


def test_summary_counts_only_engines_that_ran(suite):
    # (which rows are unstable, and so the speedup's text, depends on the machine's load
    # here: test_summary_says_how_many_timings_are_unstable_and_leaves_them_out checks both)
    summary = writer.summary_table(suite)
    engines = [e.split(" ")[0] for e in summary["engine"]]
    assert engines == ["numpy", "native-cpu", "test-one-ulp-lookup"]
    rows = dict(zip(engines, summary.to_dict("records")))
    assert rows["numpy"]["fail"] == 0 and rows["numpy"]["pass"] == 7
    assert rows["numpy"]["could not run"] == 1                 # the 2-thread variant
    assert rows["test-one-ulp-lookup"]["fail"] >= 1
    assert rows["native-cpu"]["pass"] == 8 and rows["native-cpu"]["could not run"] == 0
    speed = [c for c in summary.columns if c.startswith("speedup")][0]
    assert re.fullmatch(r"[\d.]+× \([\d.]+–[\d.]+× over \d+ stable ops?(; \d+ unstable left "
                        r"out)?\)|— \(all \d+ ops unstable\)", rows["native-cpu"][speed])
    not_run = writer.not_run(suite)
    assert not_run.values.tolist() == [["ghost", "not built here: run `make ghost`"]]
    grouped = writer.could_not_run(suite)
    assert grouped.values.tolist()[0][:3] == ["numpy", "threads not declared", 1]


def _expected_speedup(perf: pd.DataFrame, engine: str, reference: str = "numpy") -> str:
    """The summary's speedup text, computed here from the rows: reference time over engine
    time for each single-threaded op both timed, over the pairs where neither is unstable."""
    one = perf[(perf["threads"] == 1) & (perf["n_ids"] > 0)
               & perf["parity"].isin(("pass", "known_divergence"))]
    ref = {(r.scenario, r.op_index): r for r in one[one["engine"] == reference].itertuples()}
    ratios, pairs = [], 0
    for r in one[one["engine"] == engine].itertuples():
        base = ref.get((r.scenario, r.op_index))
        if base is not None:
            pairs += 1
            if not (r.unstable or base.unstable):
                ratios.append(base.median_s / r.median_s)
    if not ratios:
        return f"— (all {pairs} ops unstable)"
    gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    n = len(ratios)
    left = f"; {pairs - n} unstable left out" if pairs > n else ""
    return (f"{gm:.3g}× ({min(ratios):.3g}–{max(ratios):.3g}× over {n} stable "
            f"op{'s' * (n != 1)}{left})")


def test_summary_says_how_many_timings_are_unstable_and_leaves_them_out(suite):
    result = dataclasses.replace(suite, perf=report_perf(suite))
    summary = writer.summary_table(result).set_index("engine")
    speed = [c for c in summary.columns if c.startswith("speedup")][0]
    assert "stable" in speed
    counts = unstable_counts(result.perf)
    assert any(k for k, _ in counts.values()) and any(k < n for k, n in counts.values())
    for label, row in summary.iterrows():
        k, n = counts[label.split(" ")[0]]
        assert row[writer.UNSTABLE_COLUMN] == f"{k} of {n}", label
    text = summary.loc["native-cpu", speed]
    assert text == _expected_speedup(result.perf, "native-cpu")
    assert "unstable left out" in text                  # the data has both kinds
    k, n = (sum(v[i] for v in counts.values()) for i in (0, 1))
    sentence = writer.unstable_sentence(result.perf_passing(), 0.05)
    assert sentence.startswith(f"{k} of {n} timing rows are unstable") and "±5%" in sentence
    # every timing unstable: no headline number at all
    shaky = dataclasses.replace(result, perf=result.perf.assign(unstable=True))
    summary = writer.summary_table(shaky).set_index("engine")
    assert summary.loc["native-cpu", speed].startswith("— (all ")
    assert summary.loc["native-cpu", writer.UNSTABLE_COLUMN] == \
        f"{counts['native-cpu'][1]} of {counts['native-cpu'][1]}"
    # every timing stable: every op counts, and the sentence says so
    steady = dataclasses.replace(result, perf=result.perf.assign(unstable=False))
    summary = writer.summary_table(steady).set_index("engine")
    assert summary.loc["native-cpu", speed] == _expected_speedup(steady.perf, "native-cpu")
    assert writer.unstable_sentence(steady.perf_passing()).startswith(f"All {n} timing rows")
    # timing data from before the runner flagged stability: said so, every op used
    old = dataclasses.replace(result, perf=without_ci(result.perf))
    summary = writer.summary_table(old).set_index("engine")
    assert summary.loc["native-cpu", writer.UNSTABLE_COLUMN] == "not recorded"
    assert re.fullmatch(r"[\d.]+× \([\d.]+–[\d.]+× over \d+ ops\)",
                        summary.loc["native-cpu", speed])
    assert "no stability flag" in writer.unstable_sentence(old.perf_passing())


def test_summary_of_page_and_markdown_count_the_unstable_rows(report):
    out, written, result = report
    counts = unstable_counts(result.perf)
    k, n = (sum(v[i] for v in counts.values()) for i in (0, 1))
    assert written["unstable"].startswith(f"{k} of {n} timing rows are unstable")
    page = (out / "index.html").read_text()
    summary = page.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    text = html.unescape(re.sub(r"<[^>]+>", "", summary))
    assert written["unstable"].replace("`", "") in text
    md = (out / "report.md").read_text()
    md_summary = md.split("## Summary")[1].split("\n## ")[0]
    assert written["unstable"] in md_summary
    assert writer.UNSTABLE_COLUMN in md_summary and writer.UNSTABLE_COLUMN in summary
    for engine, (k, n) in counts.items():
        assert f"{k} of {n}" in md_summary, engine


# ---- charts -----------------------------------------------------------------------------

def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() != 0]


def _labelled_ticks(ax, which):
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    return [t for t, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels())
            if lo <= t <= hi and label.get_text()]


def test_one_colour_per_engine_everywhere(suite, tmp_path, monkeypatch):
    cap = Captured(monkeypatch)
    perf = suite.perf_passing()
    charts.family(perf, "lookup_sweep", str(tmp_path / "f.png"))
    charts.batch_scaling(perf, str(tmp_path / "b.png"))
    charts.thread_scaling(perf, str(tmp_path / "t.png"), {"cpu_count_logical": 2}, None)
    colours = {}
    for fig in cap.figs:
        for ax in fig.axes:
            for line in ax.get_lines():
                engine = str(line.get_label()).split(":")[0]
                if engine in ("numpy", "native-cpu", "test-one-ulp-lookup"):
                    colours.setdefault(engine, set()).add(mcolors.to_hex(line.get_color()))
        legend_handles = fig.legends[0].legend_handles if fig.legends else []
        for h in legend_handles:
            colours.setdefault(h.get_label(), set()).add(mcolors.to_hex(h.get_facecolor()))
    for engine, seen in colours.items():
        if engine in ("numpy", "native-cpu", "test-one-ulp-lookup"):
            assert seen == {mcolors.to_hex(style.engine_color(engine))}, engine
    assert style.engine_color("native-cpu") == style.ENGINE_COLORS["native-cpu"]
    assert style.engine_color("tensorflow:kernels=tf") != style.engine_color("tensorflow")
    assert style.engine_color("x-engine") == style.engine_color("x-engine")


def test_family_chart_one_bar_per_run_never_a_median(suite, tmp_path, monkeypatch):
    cap = Captured(monkeypatch)
    perf = suite.perf_passing()
    assert charts.family(perf, "lookup_sweep", str(tmp_path / "f.png")) is None
    fig = cap.figs[0]
    rows = perf[(perf["base_scenario"] == "lookup_sweep") & (perf["threads"] == 1)]
    throughput_ax = fig.axes[0]
    assert len(_bars(throughput_ax)) == len(rows)            # one bar per timed run
    widths = sorted(round(b.get_width()) for b in _bars(throughput_ax))
    assert widths == sorted(round(v) for v in rows["ids_per_s"])
    labels = [t.get_text() for t in throughput_ax.get_yticklabels()]
    assert "batch_size=16, dim=4" in labels and "batch_size=64, dim=8" in labels
    for ax in fig.axes:
        assert "better" in ax.get_xlabel(), ax.get_xlabel()
        assert ax.get_xscale() == "log" and len(_labelled_ticks(ax, "x")) >= 2


def test_cost_and_speedup_bars_start_at_one(suite, tmp_path, monkeypatch):
    cap = Captured(monkeypatch)
    charts.family(suite.perf_passing(), "tiny_training", str(tmp_path / "f.png"))
    fig = cap.figs[0]
    cost_axes = [ax for ax in fig.axes if "÷" in ax.get_xlabel()]
    speed_axes = [ax for ax in fig.axes if "speedup" in ax.get_xlabel()]
    assert cost_axes and speed_axes
    for ax in cost_axes + speed_axes:
        assert all(math.isclose(b.get_x(), 1.0) for b in _bars(ax))
        assert any(math.isclose(x, 1.0) for line in ax.get_lines()
                   for x in np.atleast_1d(line.get_xdata()))


def test_error_bars_and_unstable_marks_when_the_timing_has_them(suite, tmp_path,
                                                                 monkeypatch):
    cap = Captured(monkeypatch)
    perf = with_ci(suite.perf_passing())
    charts.family(perf, "lookup_sweep", str(tmp_path / "f.png"))
    fig = cap.figs[0]
    assert any(c.__class__.__name__ == "LineCollection" for c in fig.axes[0].collections)
    assert any(b.get_hatch() for ax in fig.axes for b in _bars(ax))
    assert "95% confidence interval" in fig._suptitle.get_text()
    cap.figs.clear()
    charts.family(without_ci(suite.perf_passing()), "lookup_sweep", str(tmp_path / "g.png"))
    fig = cap.figs[0]
    assert not any(b.get_hatch() for ax in fig.axes for b in _bars(ax))
    assert "no confidence intervals" in fig._suptitle.get_text()


def test_thread_scaling_names_cores_and_load(suite, tmp_path, monkeypatch):
    cap = Captured(monkeypatch)
    why = charts.thread_scaling(suite.perf_passing(), str(tmp_path / "t.png"),
                                {"cpu_count_logical": 2, "cpu_count_physical": 2},
                                {"min": 1.5, "median": 2.5, "max": 3.0, "samples": 4})
    assert why is None
    ax = cap.figs[0].axes[0]
    text = " ".join(t.get_text() for t in ax.texts)
    assert "2 logical CPUs" in text and "1.5–3.0" in text and "busy" in text
    assert "higher is better" in ax.get_ylabel()
    assert len(_labelled_ticks(ax, "y")) >= 2


def test_parity_matrix_engines_that_ran_and_text_matches_colour(suite, tmp_path,
                                                                 monkeypatch):
    cap = Captured(monkeypatch)
    ran = writer.ran_engines(suite)
    assert charts.parity_matrix(suite.parity_summary, str(tmp_path / "p.png"), ran=ran) \
        is None
    ax = cap.figs[0].axes[0]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert columns == ["native-cpu", "test-one-ulp-lookup"]      # no numpy, no ghost
    texts = {(round(t.get_position()[0] - 0.5), round(t.get_position()[1] - 0.5)):
             t.get_text() for t in ax.texts}
    expected = {mcolors.to_hex(c): s for s, c in style.STATUS_COLORS.items()}
    seen = set()
    for patch in ax.patches:
        status = expected[mcolors.to_hex(patch.get_facecolor())]
        text = texts[(round(patch.get_x()), round(patch.get_y()))]
        seen.add(status)
        assert {"pass": lambda t: t == "exact" or t.startswith("≤"),
                "fail": lambda t: t.startswith("FAIL"),
                "known_divergence": lambda t: t.startswith("known"),
                "skipped": lambda t: t.startswith("not run")}[status](text), (status, text)
    assert {"pass", "fail"} <= seen


def test_ps_chart_as_written_uses_the_engine_colours(report):
    """The PS-scaling PNG of the report, read back: each engine's own colour is drawn (numpy
    grey, native-cpu blue), and none of matplotlib's default cycle that the chart used to
    take (orange for the second engine, green, red) appears."""
    import matplotlib.image as mpimg
    out, written, _ = report
    assert "ps_scaling.png" in written["images"]
    pixels = (mpimg.imread(out / "ps_scaling.png")[..., :3] * 255).round().astype(int)
    colours = {mcolors.to_hex(c / 255) for c in np.unique(pixels.reshape(-1, 3), axis=0)}
    for engine in SHARDED_ENGINES:
        assert mcolors.to_hex(style.engine_color(engine)) in colours, engine
    for default in ("#ff7f0e", "#2ca02c", "#d62728"):
        assert default not in colours, default


def test_log_axis_always_has_two_labelled_ticks():
    import matplotlib.pyplot as plt
    for lo, hi in ((1.1, 1.3), (0.7, 3.0), (2e3, 9e7), (5e5, 3e7), (1e-3, 1e4)):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [lo, hi])
        style.log_axis(ax, "y", "si", [lo, hi])
        fig.canvas.draw()
        ticks = _labelled_ticks(ax, "y")
        assert 2 <= len(ticks) <= 12, (lo, hi, ticks)
        plt.close(fig)


# ---- the page in a real browser -----------------------------------------------------------

_PROBE = """<script>
window.addEventListener("load", () => {
  const page = document.documentElement;
  const out = {
    pageWidth: page.clientWidth, scrollWidth: page.scrollWidth,
    images: [...document.images].map(i => ({src: i.getAttribute("src"),
                                            ok: i.complete && i.naturalWidth > 0})),
    tables: [...document.querySelectorAll("table")].map(t => {
      const box = t.parentElement;
      return {boxRight: box.getBoundingClientRect().right, tableWidth: t.scrollWidth,
              boxWidth: box.clientWidth, boxScrolls: getComputedStyle(box).overflowX};
    })};
  // the Summary section as the reader sees it: its paragraphs and its table
  const heading = [...document.querySelectorAll("h2")].find(h => h.textContent === "Summary");
  const paragraphs = [];
  let table = null;
  for (let el = heading.nextElementSibling; el && el.tagName !== "H2";
       el = el.nextElementSibling) {
    if (el.tagName === "P") paragraphs.push(el.innerText);
    table = table || el.querySelector("table");
  }
  out.summary = {paragraphs,
                 head: [...table.querySelectorAll("thead th")].map(th => th.innerText),
                 rows: [...table.querySelectorAll("tbody tr")].map(
                   tr => [...tr.children].map(td => td.innerText))};
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium():
    import shutil
    for name in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _render(page_dir, width: int, tmp_path) -> dict:
    """Load the page in headless Chromium at `width` CSS pixels; what the probe measured."""
    import subprocess
    probe = page_dir / f"probe-{width}.html"
    probe.write_text((page_dir / "index.html").read_text().replace("</body>",
                                                                    _PROBE + "</body>"))
    env = dict(os.environ, TMPDIR=str(tmp_path), HOME=str(tmp_path))
    try:
        done = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / f'chromium-{width}'}", "--hide-scrollbars",
             f"--window-size={width},900", "--virtual-time-budget=15000", "--dump-dom",
             probe.as_uri()], capture_output=True, text=True, timeout=180, env=env)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output; chromium said: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium here "
                    "(scripts/setup-system.sh installs Debian's chromium)")
@pytest.mark.parametrize("width", [1280, 700])
def test_page_in_a_real_browser_images_load_and_tables_stay_inside(report, width, tmp_path):
    seen = _render(report[0], width, tmp_path)
    assert seen["images"] and all(i["ok"] for i in seen["images"]), seen["images"]
    assert {i["src"] for i in seen["images"]} == set(report[1]["images"])
    # nothing widens the page: wide tables scroll inside their own box
    assert seen["scrollWidth"] <= seen["pageWidth"], seen
    assert seen["tables"]
    for t in seen["tables"]:
        assert t["boxRight"] <= seen["pageWidth"] + 0.5, t
        assert t["boxScrolls"] == "auto", t
    if width == 700:       # at this width some table is wider than its box, and scrolls
        assert any(t["tableWidth"] > t["boxWidth"] for t in seen["tables"])
    # the summary, as rendered, says how many timing rows are unstable, per engine and in all
    counts = unstable_counts(report[2].perf)
    k, n = (sum(v[i] for v in counts.values()) for i in (0, 1))
    assert any(p.startswith(f"{k} of {n} timing rows are unstable")
               for p in seen["summary"]["paragraphs"]), seen["summary"]["paragraphs"]
    column = seen["summary"]["head"].index(writer.UNSTABLE_COLUMN)
    shown = {row[0].split(" ")[0]: row[column] for row in seen["summary"]["rows"]}
    assert shown == {e: f"{counts[e][0]} of {counts[e][1]}" if e in counts else "—"
                     for e in writer.ran_engines(report[2])}
