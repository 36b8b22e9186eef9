"""`hashlab explain`: the README's first explain command runs from the checkout, writes its
JSON, page and flame graphs, and headless Chromium draws every SVG; the HTML report links an
explanation made beside it."""
import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
from svg_render import CHROMIUM, colours, screenshot

from lab.explain import counted
from lab.timing import simulated

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_explain_command() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(m.group(1) for m in re.finditer(r"^(hashlab explain [^#\n]*)", readme, re.M))
    return shlex.split(line)


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    if simulated.unavailable_reason():
        pytest.skip(f"simulated mode unavailable: {simulated.unavailable_reason()}")
    out = tmp_path_factory.mktemp("explain")
    cmd = readme_explain_command()
    assert cmd[:3] == ["hashlab", "explain", "monolith_lookup"]
    done = subprocess.run([sys.executable, "-P", "-m", "lab.cli", *cmd[1:], "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return out, done.stdout, json.loads((out / "explain.json").read_text())


def test_the_readme_command_explains_every_op(explained):
    out, stdout, data = explained
    assert data["schema"] == "hashlab-explain/1" and data["scenario"] == "monolith_lookup"
    assert [v["scenario"] for v in data["variants"]] == ["monolith_lookup[threads=1]",
                                                        "monolith_lookup[threads=2]"]
    for variant in data["variants"]:
        (eng,) = variant["engines"]
        assert eng["engine"] == "native-cpu" and not eng["count_error"]
        assert not eng["sample_error"] and not eng["memory_error"]
        ops = {o["op"]: o for o in eng["ops"]}
        assert set(ops) == {"assign_add", "lookup"}
        look = ops["lookup"]["counted"]
        assert look["unit"] == "id" and look["units_per_call"] == 10_000
        mine, base = look["engine"]["per_unit"], look["baseline_figures"]["per_unit"]
        for figure in counted.FIGURES:
            assert mine[figure] > 0 and figure in base
        assert mine["instructions"] > base["instructions"]      # a hash table does more
        assert any("Table::lookup" in f["name"] for f in look["top_functions"][:3])
        assert all(":" in f["where"] for f in look["top_functions"][:1])
        assert ops["assign_add"]["counted"]["unit"] == "row"
        assert ops["lookup"]["wall"]["calls"] >= 3 and ops["lookup"]["wall"]["engine_s"] > 0
        assert ops["lookup"]["memory"]["mem_peak_bytes"] >= 10_000 * 32 * 4
        assert (out / eng["wall_svg"]).exists() and (out / look["svg"]).exists()
    assert "per id" in stdout and "LL misses" in stdout and "wall-clock flame graph" in stdout
    assert (out / "index.html").read_text().count("<img ") == len(list(out.glob("*.svg")))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (scripts/setup-system.sh "
                                             "installs it)")
def test_its_flame_graphs_render_in_headless_chromium(explained):
    out, _, _ = explained
    svgs = sorted(out.glob("*.svg"))
    assert len(svgs) == 6                  # per variant: a wall-clock graph, one per op counted
    for svg in svgs:
        png = svg.with_suffix(".png")
        screenshot(str(svg), str(png))
        drawn = colours(str(png))
        frames = {tuple(int(x) for x in re.findall(r"\d+", fill)) for fill in
                  re.findall(r'fill="(rgb\([^)]*\))"', svg.read_text())}
        assert len(drawn & frames) >= 5, svg.name


def test_the_report_links_an_explanation_beside_it(tmp_path):
    import pandas as pd

    from lab.report.writer import explanation_links
    from lab.suite import SuiteResult
    (tmp_path / "explain" / "monolith_lookup").mkdir(parents=True)
    (tmp_path / "explain" / "monolith_lookup" / "index.html").write_text("<html></html>")
    perf = pd.DataFrame({"base_scenario": ["monolith_lookup", "storage_ops"]})
    result = SuiteResult(pd.DataFrame(), pd.DataFrame(), perf, [], {"scenarios": []})
    links = explanation_links(result, str(tmp_path / "latest"))
    assert links == [("monolith_lookup", "../explain/monolith_lookup/index.html")]
