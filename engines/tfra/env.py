"""The TFRA peer's own virtual environment (docs/toolchain.md, "The TFRA peer").

TFRA 0.8.1 needs TensorFlow <= 2.16.2 and Python <= 3.11 and fails to import next to our
TF 2.21, so it lives in a separate venv and the engine talks to a worker process started with
that venv's python. The venv is looked for only where it was configured: `$HASHLAB_TFRA_VENV`,
else the path `hashlab env create tfra --path P` recorded, else `.venvs/tfra` in the source
checkout this package runs from. Never in the current directory: an installed `hashlab` must
not run whatever `./.venvs/tfra/bin/python` happens to be there.
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


ENV_VAR = "HASHLAB_TFRA_VENV"


def checkout_root() -> str | None:
    """The source checkout this package runs from (a pyproject.toml beside `engines/`), or
    None when the package is installed."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if os.path.isfile(os.path.join(root, "pyproject.toml")) else None


def config_file() -> str:
    """Where `hashlab env create tfra --path P` records P."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".config")
    return os.path.join(base, "hashlab", "tfra-venv")


def recorded_path() -> str | None:
    try:
        with open(config_file(), encoding="utf-8") as f:
            path = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return path if path and os.path.isabs(path) else None


def default_path() -> str | None:
    """`$HASHLAB_TFRA_VENV`, else the recorded path, else `<checkout>/.venvs/tfra`; None when
    no location is configured (an installed package without either)."""
    configured = os.environ.get(ENV_VAR) or recorded_path()
    if configured:
        return os.path.abspath(configured)
    root = checkout_root()
    return os.path.join(root, ".venvs", "tfra") if root else None


def venv_python(path: str | None = None) -> str | None:
    path = path or default_path()
    if path is None:
        return None
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
    """Create (or complete) the TFRA venv at `path` (default: default_path()) and return its
    python executable. An explicit path is recorded (config_file()), so later runs find it.

    Idempotent: an existing venv is reused and pip only installs what is missing. Raises
    RuntimeError with pip's output tail when an install step fails, or when no path is given
    and none is configured.
    """
    target = path or default_path()
    if target is None:
        raise RuntimeError(f"no location for the TFRA venv: pass --path, or set {ENV_VAR}")
    target = os.path.abspath(target)
    python = venv_python(target)
    start = time.monotonic()
    if not os.path.exists(python):
        log(f"creating venv {target}")
        _run([find_base_python(), "-m", "venv", target])
    log(f"installing {' '.join(REQUIREMENTS)} (about 2.4 GB)")
    _run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q",
          *REQUIREMENTS])
    if path is not None:
        _record(target)
    log(f"TFRA venv ready at {target} ({time.monotonic() - start:.0f} s)")
    return python


def _record(path: str) -> None:
    config = config_file()
    os.makedirs(os.path.dirname(config), exist_ok=True)
    with open(config, "w", encoding="utf-8") as f:
        f.write(path + "\n")


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{tail}")
