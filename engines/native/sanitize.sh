#!/usr/bin/env bash
# Build the native CPU engine with AddressSanitizer + UndefinedBehaviorSanitizer into its own
# build dir (build/sanitize, never the wheel's) and run the native tests plus a subset of the
# conformance suite against that build. Exit status: pytest's.
#
#   engines/native/sanitize.sh [extra pytest args]      PYTHON=/path/to/python to choose one
#
# Python itself is not instrumented, so libasan is LD_PRELOADed; leak checking is off (the
# interpreter keeps objects alive at exit on purpose). The sanitized module is put in
# sys.modules by a tiny pytest plugin before anything imports engines.native._native_cpu.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=$(command -v "${PYTHON:-python}")
# Absolute, but not symlink-resolved: a venv's python must stay the venv's (it has nanobind).
case "$PY" in /*) ;; *) PY="$PWD/$PY" ;; esac
BUILD=${HASHLAB_SANITIZE_BUILD:-$ROOT/build/sanitize}
CXX=${CXX:-g++}

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHASHLAB_SANITIZE=ON \
  -DHASHLAB_CUDA=OFF -DPython_EXECUTABLE="$PY" -DCMAKE_CXX_COMPILER="$CXX" \
  > "$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" --target _native_cpu -j "$(nproc)"
SO=$(ls "$BUILD"/engines/native/_native_cpu*.so | head -n1)

cat > "$BUILD/hashlab_sanitized.py" <<PLUGIN
"""pytest plugin: load the sanitized _native_cpu before any test imports the installed one."""
import importlib.util
import sys

import engines.native

_spec = importlib.util.spec_from_file_location("engines.native._native_cpu", "$SO")
_mod = importlib.util.module_from_spec(_spec)
sys.modules["engines.native._native_cpu"] = _mod
_spec.loader.exec_module(_mod)
engines.native._native_cpu = _mod
PLUGIN

# libstdc++ is preloaded too: ASan resolves __cxa_throw at startup, and python (a C program)
# would otherwise load libstdc++ only later, with the first C++ extension.
LIBASAN=$("$CXX" -print-file-name=libasan.so)
LIBSTDCXX=$("$CXX" -print-file-name=libstdc++.so)
export LD_PRELOAD="$LIBASAN:$LIBSTDCXX${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export HASHLAB_ENGINES=native-cpu
export PYTHONPATH="$BUILD${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
"$PY" -c "import sys; sys.path.insert(0, '$BUILD'); import hashlab_sanitized, engines.native._native_cpu as m; \
assert m.__file__ == '$SO', m.__file__; print('sanitized module:', m.__file__)"
# The conformance modules are named as modules (--pyargs): the suite ships in engines/testing.
CONFORMANCE=engines.testing.conformance
exec "$PY" -m pytest -p hashlab_sanitized -q -p no:cacheprovider --pyargs tests/native \
  $CONFORMANCE.test_table_ops $CONFORMANCE.test_bad_input $CONFORMANCE.test_checkpoint_format \
  $CONFORMANCE.test_optimizer_vectors $CONFORMANCE.test_model_checkpoints \
  $CONFORMANCE.test_stateful_vs_numpy "$@"
