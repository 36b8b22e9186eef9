"""The TorchRec peer's own virtual environment (docs/toolchain.md, "The TorchRec peer").

PyTorch, FBGEMM and TorchRec are kept out of our venv (torch alone is about 700 MB, and
FBGEMM's binary works with one torch release only), so they live in a separate venv built by
`hashlab env create torchrec` (engines/peer/venv.py: where it is looked for, how it is built).
"""
from __future__ import annotations

from engines.peer.venv import PeerVenv

# Versions that install and load together on Python 3.11, CPU only (docs/toolchain.md):
# - torch 2.13.0: pip takes the CPU wheel (a newer or unpinned torch is a multi-GB CUDA build);
# - fbgemm-gpu-cpu 1.8.0 is built against torch 2.13 (1.9.0 fails to load its operators:
#   undefined torch::autograd symbols);
# - torchrec 1.8.0 with --no-deps: its metadata asks for `fbgemm-gpu`, the CUDA build, which
#   would replace the CPU one; its other requirements are installed in the first step.
VENV = PeerVenv(
    name="torchrec", title="TorchRec",
    installs=(("torch==2.13.0", "fbgemm-gpu-cpu==1.8.0", "tensordict==0.15.3",
               "torchmetrics==1.0.3", "tqdm", "pyre-extensions", "numpy"),
              ("--no-deps", "torchrec==1.8.0")),
    size="about 1 GB", python_version=(3, 11),
    python_why="the pinned torch 2.13.0 CPU wheel is taken for Python 3.11")
