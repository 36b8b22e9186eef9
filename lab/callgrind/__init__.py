"""Callgrind client requests for the simulated cost mode (`lab.timing.simulated`).

`_toggle` is compiled from toggle.cc by the project's CMake build when valgrind's headers are
installed (scripts/setup-system.sh). `unavailable_reason()` says why the mode cannot run here.
"""
from __future__ import annotations

import shutil

try:
    from lab.callgrind import _toggle
except ImportError as exc:          # built without valgrind's headers
    _toggle = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = ""


def unavailable_reason() -> str | None:
    """None when `--measure simulated` can run here, else why not."""
    if _toggle is None:
        return ("lab.callgrind._toggle is not built (install valgrind with "
                f"scripts/setup-system.sh, then reinstall the package): {_IMPORT_ERROR}")
    if shutil.which("valgrind") is None:
        return "valgrind is not on PATH (scripts/setup-system.sh installs it)"
    return None


def measured_call(fn, label: str):
    """fn() counted alone by callgrind (dumped under `label`); a plain call elsewhere."""
    if _toggle is None:
        raise RuntimeError(unavailable_reason())
    return _toggle.measured_call(fn, label)


def on_valgrind() -> bool:
    return _toggle is not None and bool(_toggle.on_valgrind())
