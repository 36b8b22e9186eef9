"""The machine's load while a run lasts: a background thread samples the 1-minute load
average, so the report can say how busy the cores were (thread scaling depends on it)."""
from __future__ import annotations

import os
import statistics
import threading


class LoadSampler:
    """`with LoadSampler() as load: ...`, then `load.summary()`."""

    def __init__(self, every_s: float = 5.0):
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def _sample(self) -> None:
        try:
            self.samples.append(os.getloadavg()[0])
        except OSError:                      # not available on this platform
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> "LoadSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def summary(self) -> dict | None:
        """{'min', 'median', 'max', 'samples'} of the 1-minute load average, or None."""
        if not self.samples:
            return None
        return {"min": min(self.samples), "median": statistics.median(self.samples),
                "max": max(self.samples), "samples": len(self.samples)}
