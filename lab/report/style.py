"""How the report draws things everywhere: one colour per engine in every chart, and log axes
whose ticks can be read (1-2-5 or 1-3 steps, written as 2k, 10M, 0.5×) rather than bare
powers of 10.
"""
from __future__ import annotations

import math
import zlib

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402

# Fixed colours for the built-in engines; anything else (test engines, engines with options
# such as `tensorflow:kernels=tf`) gets a colour that depends only on its label, so the same
# engine looks the same in every chart of every report.
ENGINE_COLORS = {
    "numpy": "#7f7f7f",
    "native-cpu": "#1f77b4",
    "native-gpu": "#2ca02c",
    "tensorflow": "#ff7f0e",
    "tfra": "#9467bd",
    "torchrec": "#b5179e",
    "tf-native": "#8c564b",
}
_SPARE = ("#e377c2", "#17becf", "#bcbd22", "#d62728", "#393b79", "#637939",
          "#843c39")

# Every value axis and column says which way is better.
HIGHER, LOWER = "higher is better", "lower is better"
UP, DOWN = f"↑ {HIGHER}", f"↓ {LOWER}"

STATUS_COLORS = {"pass": "#4caf50", "known_divergence": "#ff9800", "fail": "#e53935",
                 "skipped": "#d0d0d0"}


def engine_color(label: str):
    if label in ENGINE_COLORS:
        return ENGINE_COLORS[label]
    base = label.split(":", 1)[0]
    h = zlib.crc32(label.encode())
    if base in ENGINE_COLORS and base != label:
        # an option variant of a built-in engine: its colour, darkened by a stable amount
        r, g, b = mcolors.to_rgb(ENGINE_COLORS[base])
        k = 0.55 + 0.25 * ((h % 7) / 6)
        return (r * k, g * k, b * k)
    return _SPARE[h % len(_SPARE)]


def _si(value: float) -> str:
    """2000 -> '2k', 1.5e7 -> '15M', 0.02 -> '0.02'."""
    if value == 0:
        return "0"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _times(value: float) -> str:
    return f"{_si(value)}×" if value >= 1000 else f"{value:g}×"


_FORMATS = {"si": _si, "times": _times, "plain": lambda v: f"{v:g}"}
_STEPS = (1, 2, 5)


def _step_below(x: float) -> float:
    e = math.floor(math.log10(x))
    for s in reversed(_STEPS):
        if s * 10 ** e <= x * (1 + 1e-9):
            return s * 10 ** e
    return 5 * 10 ** (e - 1)


def _step_above(x: float) -> float:
    e = math.floor(math.log10(x))
    for s in _STEPS + (10,):
        if s * 10 ** e >= x * (1 - 1e-9):
            return s * 10 ** e
    return 10 ** (e + 1)


def log_axis(ax, which: str = "y", fmt: str = "si", values=()) -> None:
    """A log axis with labelled ticks at 1-2-5 steps. `values`: the data (error-bar ends
    included); the limits are widened to the nearest 1-2-5 steps around them, so even a
    narrow range shows at least two labelled ticks."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if finite:
        lo, hi = _step_below(min(finite)), _step_above(max(finite))
        if lo == hi:
            hi = _step_above(hi * 1.01)
        (ax.set_ylim if which == "y" else ax.set_xlim)(lo, hi)
        decades = math.log10(hi / lo)
    else:
        decades = 3
    # as many labelled ticks as fit without overlapping: 1-2-5, then 1-3, then 10^k
    subs = (1.0, 2.0, 5.0) if decades <= 2.01 else (1.0, 3.0) if decades <= 3.5 else (1.0,)
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _pos: _FORMATS[fmt](v)))
    axis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs="auto"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
