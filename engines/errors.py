"""The errors every part of hashtable-lab raises (the bottom of the import graph: this module
imports nothing of ours, so formats/, config and every engine can use it without a cycle)."""
from __future__ import annotations


class EngineUnavailable(RuntimeError):
    """The engine cannot be used here; `reason` says why (not built, no CUDA device, ...)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or does not fit the table.

    The native modules raise this very type (their C++ CheckpointFailure is translated to it),
    so callers catch one class whichever engine they use."""


class CheckpointWarning(UserWarning):
    """A save succeeded (its commit point passed: the new checkpoint is the one on disk), but
    a clean-up step after it failed, e.g. removing an older save's files. What was left and
    why is in the message (docs/checkpoints.md, "Save"). Native engines warn with this type
    too."""
