"""Runs each tests/tfops/cluster/ file in a fresh Python process (one in-process cluster per
process), with a deadline, and reports its pytest output when it fails."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from engines.testing.helpers import TFOPS_CLUSTER_ENV

pytest.importorskip("tensorflow", reason="tensorflow is not installed (`tf` extra)")

HERE = pathlib.Path(__file__).parent
CHILD_TIMEOUT_S = 1200
FILES = sorted(p.name for p in (HERE / "cluster").glob("test_*.py"))


@pytest.mark.parametrize("name", FILES)
def test_in_own_process(name):
    env = dict(os.environ, **{TFOPS_CLUSTER_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
           str(HERE / "cluster" / name)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, cwd=HERE.parent.parent)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name} did not finish within {CHILD_TIMEOUT_S} s:\n"
                    f"{(exc.stdout or b'')[-4000:]}")
    tail = (proc.stdout + proc.stderr)[-8000:]
    assert proc.returncode == 0, f"{name} failed (exit {proc.returncode}):\n{tail}"
    assert " passed" in proc.stdout, tail
