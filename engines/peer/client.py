"""A peer engine's side of the worker connection: start, handshake, request, detect death."""
from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import threading
import time

import numpy as np

from engines.peer import protocol
from engines.peer.protocol import ProtocolError, WorkerDied, WorkerError

# Reply header fields that are the protocol's own; the rest of the handshake reply is versions.
_FRAME_FIELDS = frozenset({"v", "op", "id", "ok", "seconds", "arrays", "pid"})


class WorkerClient:
    """One worker process. `request()` is serialised by a lock; every read has a deadline
    and checks that the process is alive, so a dead or hung worker raises WorkerDied (with
    the tail of its stderr) instead of blocking forever. `label` names the worker in errors
    ("TFRA worker"); `env` adds to the environment the worker starts with."""

    def __init__(self, python: str, script: str, timeout: float = 600.0,
                 start_timeout: float = 180.0, label: str = "peer worker",
                 env: dict[str, str] | None = None):
        self.timeout = timeout
        self.label = label
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._dropped: list[int] = []   # tables collected since the last request
        self._log = tempfile.TemporaryFile()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                   **(env or {}))
        self.proc = subprocess.Popen([python, script], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, env=env)
        self.last_worker_seconds = 0.0
        self.last_ipc_seconds = 0.0
        try:
            reply, _ = self.request("hello", timeout=start_timeout)
        except BaseException:
            self.close()
            raise
        self.versions = {k: v for k, v in reply.items() if k not in _FRAME_FIELDS}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self, lines: int = 15) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def _died(self, why: str) -> WorkerDied:
        code = self.proc.poll()
        status = f"exit code {code}" if code is not None else "still running, not answering"
        tail = self.stderr_tail()
        return WorkerDied(f"{self.label} (pid {self.proc.pid}) {why} ({status})"
                          + (f"; its stderr ends with:\n{tail}" if tail else ""))

    def forget_table(self, table_id: int) -> None:
        """Drop a table on the worker at the next request. Safe from a finalizer: garbage
        collection runs them at any allocation, also in the middle of request() on this very
        thread, so this does no I/O and takes no lock (list.append is atomic)."""
        self._dropped.append(table_id)

    def request(self, op: str, args: dict | None = None,
                arrays: dict[str, np.ndarray] | None = None,
                timeout: float | None = None) -> tuple[dict, dict[str, np.ndarray]]:
        """Send one request; return the reply (header, arrays). Raises WorkerError with the
        worker's message when the op failed there, WorkerDied, or ProtocolError."""
        with self._lock:
            while self._dropped:
                try:
                    self._exchange("drop_table", {"table": self._dropped.pop()}, None, 30.0)
                except WorkerError:
                    pass        # best effort: freeing a table must not fail another request
            return self._exchange(op, args, arrays, timeout)

    def _exchange(self, op, args, arrays, timeout) -> tuple[dict, dict[str, np.ndarray]]:
        """One request and its reply; the caller holds the lock."""
        if not self.alive():
            raise self._died("is not running")
        rid = next(self._ids)
        start = time.perf_counter()
        try:
            protocol.write_frame(self.proc.stdin.fileno(),
                                 {"op": op, "id": rid, "args": args or {}}, arrays)
            header, out = protocol.read_frame(self.proc.stdout.fileno(),
                                              timeout=timeout or self.timeout,
                                              alive=self.alive)
        except (BrokenPipeError, WorkerDied) as exc:
            if self.alive():       # hung: do not leave it holding the pipe
                self.proc.kill()
                self.proc.wait()
            raise self._died(f"died during {op!r}: {exc}") from None
        total = time.perf_counter() - start
        protocol.check_version(header)
        if header.get("id") != rid or header.get("op") != op:
            raise ProtocolError(f"reply {header.get('op')!r}#{header.get('id')} does not "
                                f"answer request {op!r}#{rid}")
        if not header.get("ok"):
            raise WorkerError(f"{self.label} failed {op!r}: {header.get('error')}\n"
                              f"{header.get('traceback', '')}".rstrip())
        self.last_worker_seconds = float(header.get("seconds", 0.0))
        self.last_ipc_seconds = max(0.0, total - self.last_worker_seconds)
        return header, out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                with self._lock:
                    protocol.write_frame(self.proc.stdin.fileno(), {"op": "shutdown", "id": 0})
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()


__all__ = ["WorkerClient", "WorkerDied", "WorkerError", "ProtocolError"]
