#!/usr/bin/env bash
# The Debian 12 (bookworm) packages the project needs; everything else comes from pip
# (pyproject.toml extras pinned by constraints.txt). Installs only what is missing, so it is
# quick to re-run. Needs root or sudo.
set -euo pipefail

PACKAGES=(
  g++ make                 # the native engine's C++ code
  cmake ninja-build        # scikit-build-core's build (CMake >= 3.25: bookworm has 3.25)
  python3.11 python3.11-dev python3.11-venv   # the interpreter, its headers, venv
  protobuf-compiler        # protoc 3.21: the protobuf currency test regenerates engines/protos
  git                      # reports and bench JSON record the commit
  chromium fonts-dejavu-core   # headless browser: the test that renders the report page
  valgrind                 # callgrind (+ its headers for lab.callgrind): bench --measure simulated
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
python3.11 --version
cmake --version | head -1
protoc --version
valgrind --version
