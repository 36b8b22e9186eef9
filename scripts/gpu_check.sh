#!/usr/bin/env bash
# The GPU check, in one command on the H200 machine (python3.12, no network, no TensorFlow):
#   bash scripts/gpu_check.sh            # versions, build, tests, benchmark; < 10 minutes
# Env: OUT (results folder; else .), GPU_CHECK_SIZES (default 64M,128M), GPU_CHECK_DIMS
# (default 32,64), GPU_CHECK_SKIP_TESTS=1, GPU_CHECK_SKIP_BENCH=1, PYTHON (default python3).
# Wheels in ./.whl (carry it along: it is git-ignored) supply what the image lacks: crc32c
# (run time) and the pinned nanobind / scikit-build-core (build time, used over the image's).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-$PWD}
SITE=${GPU_CHECK_SITE:-/tmp/hashlab-site}
STATUS=0
section() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%T)"; }
note_fail() { echo "!!! $1"; STATUS=1; }

section "machine"
nvidia-smi || echo "(nvidia-smi failed)"
command -v nvcc >/dev/null && nvcc --version | tail -2 || echo "(no nvcc on PATH)"
$PY - <<'PYEOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("numpy", "google.protobuf", "crc32c", "cupy", "torch", "nanobind",
             "scikit_build_core", "pytest", "hypothesis", "xdist"):
    try:
        mod = importlib.import_module(name)
        print(f"  {name:18} {getattr(mod, '__version__', 'present')}")
    except Exception as exc:
        print(f"  {name:18} MISSING ({exc.__class__.__name__}: {exc})")
PYEOF

section "python dependencies"
rm -rf "$SITE" && mkdir -p "$SITE"
if ! $PY -c "import crc32c" 2>/dev/null; then
  if ls .whl/crc32c-*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
      .whl/crc32c-*.whl && echo "crc32c installed from .whl into $SITE"
  else
    echo "crc32c is missing and no .whl/crc32c-*.whl was carried: checkpoint tests will fail"
  fi
fi
if ! $PY -c "import google.protobuf" 2>/dev/null; then
  echo "protobuf is missing on this machine: the engines cannot load their configs; stopping."
  exit 2
fi
$PY -c "import google.protobuf as p; v = tuple(int(x) for x in p.__version__.split('.')[:2]); \
print('protobuf', p.__version__, 'OK' if v >= (4, 25) else 'TOO OLD: generated code needs >= 4.25')"

TOOLS="$SITE-build-tools"
rm -rf "$TOOLS" && mkdir -p "$TOOLS"
BUILD_PATH=""
if ls .whl/nanobind-*.whl .whl/scikit_build_core-*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$TOOLS" \
    .whl/nanobind-*.whl .whl/scikit_build_core-*.whl && BUILD_PATH="$TOOLS"
  echo "build tools from .whl: $(ls .whl | grep -E 'nanobind|scikit' | tr '\n' ' ')"
fi

section "build (HASHLAB_CUDA=ON, into $SITE)"
start=$(date +%s)
if PYTHONPATH="$BUILD_PATH" HASHLAB_CUDA=ON $PY -m pip install --no-build-isolation --no-deps \
     --no-cache-dir --target "$SITE" . > /tmp/gpu_check_build.log 2>&1; then
  echo "built in $(( $(date +%s) - start )) s"
else
  tail -60 /tmp/gpu_check_build.log
  cp /tmp/gpu_check_build.log "$OUT_DIR/" 2>/dev/null
  echo "BUILD FAILED after $(( $(date +%s) - start )) s"
  exit 3
fi
# The installed package, never the source tree's engines/ (which has no compiled modules).
export PYTHONPATH="$SITE" PYTHONSAFEPATH=1
$PY -c "import engines; import sys; f = engines.__file__; print('engines from', f); \
sys.exit(0) if f.startswith('$SITE') else print('!!! WARNING: not the package just built')"
$PY -c "import engines; \
[print(f'  {i.name:11} {\"available\" if i.available else \"unavailable: \" + i.reason}') \
 for i in engines.available() if i.name in ('numpy', 'native-cpu', 'native-gpu')]"

if [ "${GPU_CHECK_SKIP_TESTS:-0}" != "1" ]; then
  section "tests: conformance (numpy, native-cpu, native-gpu) + tests/gpu"
  XDIST=""
  $PY -c "import xdist" 2>/dev/null && XDIST="-n 8"
  # The conformance suite (stateful test included) ships in the package: --pyargs engines.testing.
  HASHLAB_ENGINES=numpy,native-cpu,native-gpu HASHLAB_STATEFUL_ENGINE=native-gpu \
    timeout 270 $PY -m pytest -q -rs -p no:cacheprovider $XDIST \
      --junitxml="$OUT_DIR/gpu_check_tests.xml" \
      --pyargs engines.testing tests/gpu 2>&1 | tail -60
  rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || note_fail "tests exited with $rc (124 = timeout)"
fi

if [ "${GPU_CHECK_SKIP_BENCH:-0}" != "1" ]; then
  section "benchmark"
  timeout 210 $PY scripts/gpu_check.py --sizes "${GPU_CHECK_SIZES:-64M,128M}" \
    --dims "${GPU_CHECK_DIMS:-32,64}"
  rc=$?
  [ "$rc" = 0 ] || note_fail "benchmark exited with $rc (124 = timeout)"
fi

section "done"
exit $STATUS
