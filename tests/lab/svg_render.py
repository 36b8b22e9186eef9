"""Rendering an SVG file in headless Chromium, for the tests that check that flame graphs
show (a screenshot with the frames' colours in it)."""
from __future__ import annotations

import os
import shutil
import subprocess

CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(c)), None)


def screenshot(svg: str, png: str, width: int = 1200, height: int = 800) -> None:
    """A PNG of `svg` as headless Chromium draws it."""
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={png}",
                    f"--window-size={width},{height}", "file://" + os.path.abspath(svg)],
                   check=True, capture_output=True, timeout=180)


def colours(png: str) -> set:
    """The distinct RGB colours of a PNG."""
    import matplotlib.image
    pixels = (matplotlib.image.imread(png)[..., :3] * 255).round().astype(int)
    return {tuple(p) for p in pixels.reshape(-1, 3)}
