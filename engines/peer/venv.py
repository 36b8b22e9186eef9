"""A peer engine's own virtual environment (docs/toolchain.md, "Peer environments").

A peer whose packages cannot live next to ours (TFRA needs TF <= 2.16; TorchRec brings PyTorch
and FBGEMM) runs in a separate venv, and its engine talks to a worker process started with that
venv's python. Each peer describes its venv once, as a `PeerVenv` in `engines/<peer>/env.py`;
`hashlab env create NAME` builds it. The venv is looked for only where it was configured:
`$HASHLAB_<NAME>_VENV`, else the path `hashlab env create NAME --path P` recorded, else
`.venvs/NAME` in the source checkout this package runs from. Never in the current directory:
an installed `hashlab` must not run whatever `./.venvs/NAME/bin/python` happens to be there.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
import time

# `hashlab env create NAME` -> the module whose VENV describes that environment.
ENVIRONMENTS = {"tfra": "engines.tfra.env", "torchrec": "engines.torchrec.env"}


def environment(name: str) -> "PeerVenv":
    """The PeerVenv called `name`. ValueError for an unknown name; ImportError when its module
    cannot be imported."""
    if name not in ENVIRONMENTS:
        raise ValueError(f"name: unknown environment {name!r}; known: {sorted(ENVIRONMENTS)}")
    return importlib.import_module(ENVIRONMENTS[name]).VENV


def checkout_root() -> str | None:
    """The source checkout this package runs from (a pyproject.toml beside `engines/`), or
    None when the package is installed."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if os.path.isfile(os.path.join(root, "pyproject.toml")) else None


def config_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".config")
    return os.path.join(base, "hashlab")


@dataclasses.dataclass(frozen=True)
class PeerVenv:
    """One peer's venv: where it lives and the pip installs that build it."""
    name: str                                 # the engine's name and `hashlab env create NAME`
    title: str                                # for messages: "TFRA", "TorchRec"
    installs: tuple[tuple[str, ...], ...]     # `pip install` argument lists, run in order
    size: str                                 # what the installs weigh, for the log line
    python_version: tuple[int, int] = (3, 11)
    python_why: str = ""                      # why that Python (for the error without one)

    @property
    def env_var(self) -> str:
        return f"HASHLAB_{self.name.upper()}_VENV"

    def config_file(self) -> str:
        """Where `hashlab env create NAME --path P` records P."""
        return os.path.join(config_dir(), f"{self.name}-venv")

    def recorded_path(self) -> str | None:
        try:
            with open(self.config_file(), encoding="utf-8") as f:
                path = f.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return path if path and os.path.isabs(path) else None

    def default_path(self) -> str | None:
        """`$HASHLAB_<NAME>_VENV`, else the recorded path, else `<checkout>/.venvs/NAME`; None
        when no location is configured (an installed package without either)."""
        configured = os.environ.get(self.env_var) or self.recorded_path()
        if configured:
            return os.path.abspath(configured)
        root = checkout_root()
        return os.path.join(root, ".venvs", self.name) if root else None

    def python(self, path: str | None = None) -> str | None:
        """The venv's python executable (which may not exist yet), or None without a
        location."""
        path = path or self.default_path()
        if path is None:
            return None
        sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
        return os.path.join(path, *sub)

    def find_base_python(self) -> str:
        """A Python of the wanted version to build the venv from: this one if it matches, else
        `pythonX.Y` on PATH. RuntimeError when there is none."""
        if sys.version_info[:2] == self.python_version:
            return sys.executable
        name = "python%d.%d" % self.python_version
        found = shutil.which(name)
        if not found:
            why = f" ({self.python_why})" if self.python_why else ""
            raise RuntimeError(f"{self.title} needs Python {name[6:]}{why}; install {name} "
                               f"and put it on PATH")
        return found

    def create(self, path: str | None = None, log=print) -> str:
        """Create (or complete) the venv at `path` (default: default_path()) and return its
        python executable. An explicit path is recorded (config_file()), so later runs find it.

        Idempotent: an existing venv is reused and pip only installs what is missing. Raises
        RuntimeError with pip's output tail when an install step fails, or when no path is
        given and none is configured.
        """
        target = path or self.default_path()
        if target is None:
            raise RuntimeError(f"no location for the {self.title} venv: pass --path, or set "
                               f"{self.env_var}")
        target = os.path.abspath(target)
        python = self.python(target)
        start = time.monotonic()
        if not os.path.exists(python):
            log(f"creating venv {target}")
            run([self.find_base_python(), "-m", "venv", target])
        for step, args in enumerate(self.installs):
            if step == 0:
                log(f"installing {self.title}'s packages ({self.size})")
            log("  pip install " + " ".join(args))
            run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *args])
        if path is not None:
            self._record(target)
        log(f"{self.title} venv ready at {target} ({time.monotonic() - start:.0f} s)")
        return python

    def _record(self, path: str) -> None:
        config = self.config_file()
        os.makedirs(os.path.dirname(config), exist_ok=True)
        with open(config, "w", encoding="utf-8") as f:
            f.write(path + "\n")


def run(cmd: list[str]) -> None:
    """Run one install command; RuntimeError with its output tail when it fails."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{tail}")
