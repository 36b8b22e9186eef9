#!/usr/bin/env bash
# System packages the project needs on a Debian machine: protoc 3.21 (Debian's protobuf-compiler)
# regenerates engines/protos in the currency test; valgrind (with its headers, which the build
# needs for lab.callgrind) runs `hashlab bench --measure simulated`. Everything else comes from
# pip.
set -euo pipefail
missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
{ command -v valgrind >/dev/null 2>&1 && [ -f /usr/include/valgrind/callgrind.h ]; } \
  || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
protoc --version
valgrind --version
