"""The TFRA peer's own virtual environment (docs/toolchain.md, "The TFRA peer").

TFRA 0.8.1 needs TensorFlow <= 2.16.2 and Python <= 3.11 and fails to import next to our
TF 2.21, so it lives in a separate venv (default `.venvs/tfra` under the repository root) and
the engine talks to a worker process started with that venv's python.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

# Pins that install and import together (docs/toolchain.md): the full tensorflow package (with
# tensorflow-cpu TFRA fails on a CUDA symbol) and setuptools<82 (TFRA imports pkg_resources).
REQUIREMENTS = ("tensorflow==2.16.2", "tensorflow-recommenders-addons==0.8.1", "setuptools<82")
PYTHON_VERSION = (3, 11)   # TFRA 0.8.1 ships wheels for Python 3.9-3.11 only


def repo_root() -> str:
    """The source checkout this package runs from; the working directory when the package is
    installed (site-packages has no pyproject.toml beside it)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if os.path.exists(os.path.join(root, "pyproject.toml")) else os.getcwd()


def default_path() -> str:
    """`$HASHLAB_TFRA_VENV`, else `<repo>/.venvs/tfra`."""
    return os.environ.get("HASHLAB_TFRA_VENV") or os.path.join(repo_root(), ".venvs", "tfra")


def venv_python(path: str | None = None) -> str:
    path = path or default_path()
    sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
    return os.path.join(path, *sub)


def find_base_python() -> str:
    """A Python 3.11 interpreter to build the venv from: this one if it is 3.11, else
    `python3.11` on PATH. RuntimeError when there is none."""
    if sys.version_info[:2] == PYTHON_VERSION:
        return sys.executable
    name = "python%d.%d" % PYTHON_VERSION
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"TFRA needs Python {name[6:]} (its wheels stop at 3.11); install "
                           f"{name} and put it on PATH")
    return found


def create_env(path: str | None = None, log=print) -> str:
    """Create (or complete) the TFRA venv at `path` and return its python executable.

    Idempotent: an existing venv is reused and pip only installs what is missing. Raises
    RuntimeError with pip's output tail when an install step fails.
    """
    path = os.path.abspath(path or default_path())
    python = venv_python(path)
    start = time.monotonic()
    if not os.path.exists(python):
        log(f"creating venv {path}")
        _run([find_base_python(), "-m", "venv", path])
    log(f"installing {' '.join(REQUIREMENTS)} (about 2.4 GB)")
    _run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q",
          *REQUIREMENTS])
    log(f"TFRA venv ready at {path} ({time.monotonic() - start:.0f} s)")
    return python


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{tail}")
