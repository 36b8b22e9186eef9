"""A save killed before any one of its file-system steps leaves the old or the new
checkpoint, and the next save removes what it left (issue 11, defects 1 and 11;
docs/checkpoints.md). Deterministic and exhaustive for the Python implementation of the
protocol (engines/formats/shards.py, engines/model_checkpoint.py): _crash_points.py forks a
child per step and ends it there with os._exit. The random kill -9 test on every engine is
engines/testing/conformance/test_crash_safety.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_crash_points.py")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("case", ["resave_2_shards", "grow_1_to_4_shards",
                                  "shrink_3_to_2_shards", "over_a_checkpoint_without_manifest",
                                  "manager_exchange", "manager_journal"])
def test_crash_before_every_step_leaves_old_or_new(case):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, DRIVER, case], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["steps"] >= 8, result             # the save really has that many steps
    assert set(result["outcomes"]) <= {"old", "new"}, result
    assert result["outcomes"].get("old") and result["outcomes"].get("new"), result
    assert not result["problems"], "\n".join(result["problems"][:10])
