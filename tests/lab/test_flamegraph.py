"""Flame graph SVGs: well-formed, a frame per node with its share in its title, the
differential colours (grown red, shrunk blue), and drawn by headless Chromium."""
import re
import xml.etree.ElementTree as ET

import pytest

from lab.explain import flamegraph
from svg_render import CHROMIUM, colours, screenshot

NS = "{http://www.w3.org/2000/svg}"
BASE = {"main;lookup;probe": 40.0, "main;lookup;copy": 40.0, "main;<setup> & \"x\"": 20.0}
HEAD = {"main;lookup;probe": 80.0, "main;lookup;copy": 20.0, "main;<setup> & \"x\"": 20.0}


def _frames(svg: str) -> dict:
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter(NS + "g"):
        title = g.find(NS + "title").text
        rect = g.find(NS + "rect")
        out[title.split(":")[0]] = (title, rect.get("fill"), float(rect.get("width")))
    return out


def test_plain_graph_has_a_frame_per_function_with_its_share():
    svg = flamegraph.render(BASE, "t", "cycles")
    frames = _frames(svg)
    assert set(frames) == {"all", "main", "lookup", "probe", "copy", '<setup> & "x"'}
    assert "(80.00%)" in frames["lookup"][0] and "(100.00%)" in frames["main"][0]
    assert frames["probe"][2] == pytest.approx(frames["copy"][2])
    assert frames["main"][2] == pytest.approx(1180, rel=1e-3)


def test_differential_graph_colours_growth_red_and_shrinkage_blue():
    frames = _frames(flamegraph.render(HEAD, "t", "cycles", base=BASE))
    red = re.fullmatch(r"rgb\(250,(\d+),\1\)", frames["probe"][1])
    blue = re.fullmatch(r"rgb\((\d+),\1,250\)", frames["copy"][1])
    assert red and blue and int(red.group(1)) < 100        # the largest change: deep red
    assert frames["<setup> & \"x\""][1] == "rgb(250,250,250)"   # unchanged: white
    assert "base 40, +40 (2.000x)" in frames["probe"][0]
    assert "(1.200x)" in frames["all"][0]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (scripts/setup-system.sh "
                                             "installs it)")
def test_chromium_draws_them(tmp_path):
    for name, svg in (("plain", flamegraph.render(BASE, "t", "cycles")),
                      ("diff", flamegraph.render(HEAD, "t", "cycles", base=BASE))):
        path = tmp_path / f"{name}.svg"
        path.write_text(svg)
        png = tmp_path / f"{name}.png"
        screenshot(str(path), str(png), height=300)
        seen = colours(str(png))
        wanted = {tuple(int(x) for x in re.findall(r"\d+", fill))
                  for fill in re.findall(r'fill="(rgb\([^)]*\))"', svg)}
        assert len(seen & wanted) >= 3, (name, sorted(wanted)[:5])
