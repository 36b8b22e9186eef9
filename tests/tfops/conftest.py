"""tests/tfops/cluster/ holds tests that start an in-process TensorFlow cluster. TensorFlow
cannot shut its servers down (and connects the eager context once), so each of those files runs
in its own process, started by test_cluster.py; they are collected only there."""
from __future__ import annotations

import os

from engines.testing.helpers import TFOPS_CLUSTER_ENV

collect_ignore_glob = [] if os.environ.get(TFOPS_CLUSTER_ENV) == "1" else ["cluster/*"]
