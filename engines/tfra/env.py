"""The TFRA peer's own virtual environment (docs/toolchain.md, "The TFRA peer").

TFRA 0.8.1 needs TensorFlow <= 2.16.2 and Python <= 3.11 and fails to import next to our
TF 2.21, so it lives in a separate venv (engines/peer/venv.py: where it is looked for, how it
is built).
"""
from __future__ import annotations

from engines.peer.venv import PeerVenv

# Pins that install and import together (docs/toolchain.md): the full tensorflow package (with
# tensorflow-cpu TFRA fails on a CUDA symbol) and setuptools<82 (TFRA imports pkg_resources).
VENV = PeerVenv(
    name="tfra", title="TFRA",
    installs=(("tensorflow==2.16.2", "tensorflow-recommenders-addons==0.8.1",
               "setuptools<82"),),
    size="about 2.4 GB", python_version=(3, 11),
    python_why="TFRA 0.8.1 ships wheels for Python 3.9-3.11 only")
