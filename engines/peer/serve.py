"""The worker side of a peer engine: the request loop every worker script runs.

Loaded by file path inside the peer's venv (like protocol.py beside it), so it imports only
the standard library and protocol.py. A worker script builds a handler object lazily (its
heavy imports happen on the first request, after the pipe is up) and calls `main(factory)`.
Each public method `op(args, arrays) -> (header fields, arrays)` of the handler answers the
request of that name; its exception goes back to the engine as the reply's error and the loop
keeps serving. The reply's `seconds` times the op inside this process, so the engine can
separate IPC from the peer's own cost.
"""
from __future__ import annotations

import os
import time
import traceback

import protocol  # this directory's protocol.py (the worker put the directory on sys.path)


def serve(rfd: int, wfd: int, factory) -> None:
    handler = None
    while True:
        try:
            header, arrays = protocol.read_frame(rfd)
        except protocol.WorkerDied:
            return                                  # the engine closed the pipe
        op, rid = header.get("op"), header.get("id")
        reply = {"op": op, "id": rid, "ok": True}
        out = {}
        start = time.perf_counter()
        try:
            protocol.check_version(header)
            if op == "shutdown":
                protocol.write_frame(wfd, reply)
                return
            if handler is None:
                handler = factory()
            method = getattr(handler, op, None) if isinstance(op, str) and \
                not op.startswith("_") else None
            if method is None:
                raise ValueError(f"unknown op {op!r}")
            extra, out = method(header.get("args", {}), arrays)
            reply.update(extra)
        except Exception as exc:   # report to the engine, keep serving
            reply = {"op": op, "id": rid, "ok": False,
                     "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()}
            out = {}
        reply["seconds"] = time.perf_counter() - start
        protocol.write_frame(wfd, reply, out)


def main(factory) -> None:
    # Keep the protocol stream clean: the real stdout becomes a private fd and anything that
    # prints (TF, TFRA, torch, warnings) goes to stderr.
    wfd = os.dup(1)
    os.dup2(2, 1)
    serve(0, wfd, factory)
