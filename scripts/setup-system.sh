#!/usr/bin/env bash
# System packages the project needs on a Debian machine: protoc 3.21 (Debian's protobuf-compiler)
# regenerates engines/protos in the currency test. Everything else comes from pip.
set -euo pipefail
if ! command -v protoc >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
fi
protoc --version
