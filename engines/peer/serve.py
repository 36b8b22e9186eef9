"""The worker side of a peer engine: the request loop every worker script runs.

Loaded by file path inside the peer's venv (like protocol.py beside it), so it imports only
the standard library and protocol.py. A worker script builds a handler object lazily (its
heavy imports happen on the first request, after the pipe is up) and calls `main(factory)`.
Each public method `op(args, arrays) -> (header fields, arrays)` of the handler answers the
request of that name; its exception goes back to the engine as the reply's error and the loop
keeps serving. The reply's `seconds` times the op inside this process, so the engine can
separate IPC from the peer's own cost.

`TableHost` is the handler part every peer shares: its tables by id and the table requests
(engines/peer/engine.py sends them); a peer adds `hello` and `make_table`, and its table
class implements `lookup(ids)`, `assign(ids, values, add)`,
`apply_gradients(ids, grads, enable_dedup, lr)` and `size()`.
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


class TableHost:
    """The tables of one worker, by id, and the requests on them."""

    def __init__(self):
        self.tables = {}
        self.next_table = 0

    def make_table(self, args):
        raise NotImplementedError

    def create_table(self, args, arrays):
        tid = self.next_table
        self.tables[tid] = self.make_table(args)
        self.next_table += 1
        return {"table": tid}, {}

    def drop_table(self, args, arrays):
        self.tables.pop(int(args["table"]), None)
        return {}, {}

    def _table(self, args):
        tid = int(args["table"])
        if tid not in self.tables:
            raise KeyError(f"no table {tid} in this worker")
        return self.tables[tid]

    def lookup(self, args, arrays):
        return {}, {"values": self._table(args).lookup(arrays["ids"])}

    def assign(self, args, arrays):
        self._table(args).assign(arrays["ids"], arrays["values"], add=bool(args.get("add")))
        return {}, {}

    def apply_gradients(self, args, arrays):
        self._table(args).apply_gradients(arrays["ids"], arrays["grads"],
                                          bool(args["enable_dedup"]), float(args["lr"]))
        return {}, {}

    def size(self, args, arrays):
        return {"size": int(self._table(args).size())}, {}

    def crash(self, args, arrays):
        os._exit(int(args.get("code", 3)))        # tests: a worker dying mid-request
