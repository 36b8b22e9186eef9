"""Shared test set-up. The conformance suite and its fixtures (`engine`, `numpy_engine`) live in
the package, engines/testing/conformance; pytest collects them from there (pyproject's
testpaths), on every engine, or on those named by `HASHLAB_ENGINES=numpy,native-cpu`."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
