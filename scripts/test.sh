#!/usr/bin/env bash
# The test suite, run against the package installed in .venv (not the source tree, so the
# compiled engine is the one under test): tests/ plus the conformance suite the package ships
# (engines.testing; pyproject's testpaths). Extra pytest arguments are passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/pytest -q -rs "$@"
