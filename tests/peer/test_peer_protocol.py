"""The peer engines' pipe protocol and worker supervision (engines/peer/). Runs without TFRA
or torch: fake workers run with this interpreter, and the real workers answer protocol errors
before they import their peer."""
from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest

from engines.peer import protocol
from engines.peer.client import WorkerClient
from engines.peer.protocol import ProtocolError, WorkerDied, WorkerError
from engines.tfra.engine import TfraEngine
from engines.torchrec.engine import TorchrecEngine

PEERS = [TfraEngine, TorchrecEngine]

PROTOCOL_PY = protocol.__file__


def test_frame_round_trip_with_several_dtypes():
    arrays = {
        "ids": np.array([-(2 ** 63), -1, 0, 2 ** 63 - 1], np.int64),
        "rows": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "f64": np.array([[np.pi]], np.float64),
        "flags": np.array([True, False]),
        "u8": np.arange(5, dtype=np.uint8),
        "i32": np.array([], np.int32).reshape(0, 3),
        "scalar": np.array(2.5, np.float16),
        "strided": np.arange(20, dtype=np.int16)[::3],
    }
    frame = protocol.encode({"op": "x", "id": 9, "args": {"a": [1, "b"]}}, arrays)
    header, out = protocol.decode(frame[8:])
    assert header["v"] == protocol.PROTOCOL_VERSION and header["args"] == {"a": [1, "b"]}
    assert list(out) == list(arrays)
    for name, arr in arrays.items():
        assert out[name].dtype == arr.dtype and out[name].shape == arr.shape
        np.testing.assert_array_equal(out[name], arr)


def test_frame_over_a_pipe():
    r, w = os.pipe()
    try:
        protocol.write_frame(w, {"op": "ping", "id": 1}, {"a": np.ones((2, 2), np.float32)})
        header, out = protocol.read_frame(r, timeout=5)
    finally:
        os.close(r)
        os.close(w)
    assert header["op"] == "ping" and out["a"].sum() == 4


@pytest.mark.parametrize("cut", [3, 20, -1])
def test_malformed_frames_are_rejected(cut):
    body = protocol.encode({"op": "x", "id": 1}, {"a": np.ones(4, np.float64)})[8:]
    with pytest.raises(ProtocolError):
        protocol.decode(body[:cut] if cut > 0 else body + b"\0")


def test_reader_with_deadline_reports_a_silent_peer():
    r, w = os.pipe()
    try:
        with pytest.raises(WorkerDied, match="did not answer"):
            protocol.read_frame(r, timeout=0.3)
        with pytest.raises(WorkerDied, match="exited"):
            protocol.read_frame(r, timeout=5, alive=lambda: False)
    finally:
        os.close(r)
        os.close(w)


def fake_worker(tmp_path, body: str) -> str:
    """A worker script speaking the protocol (loaded by path, as the real worker does)."""
    path = tmp_path / "fake_worker.py"
    path.write_text(textwrap.dedent(f"""
        import importlib.util, os, sys, time
        spec = importlib.util.spec_from_file_location("protocol", {PROTOCOL_PY!r})
        protocol = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(protocol)
        def reply(header, **extra):
            protocol.write_frame(1, dict(op=header["op"], id=header["id"], ok=True,
                                         seconds=0.0, **extra))
        while True:
            header, arrays = protocol.read_frame(0)
            if header["op"] == "shutdown":
                sys.exit(0)
    """) + textwrap.indent(textwrap.dedent(body), "    "))
    return str(path)


HELLO = """
if header["op"] == "hello":
    reply(header, tf="fake", tfra="fake")
    continue
"""


def test_handshake_reports_versions(tmp_path):
    script = fake_worker(tmp_path, HELLO + "reply(header, size=len(arrays['ids']))\n")
    client = WorkerClient(sys.executable, script, timeout=10)
    try:
        assert client.versions == {"tf": "fake", "tfra": "fake"}
        header, _ = client.request("size", arrays={"ids": np.arange(3)})
        assert header["size"] == 3 and client.last_ipc_seconds >= 0
    finally:
        client.close()
    assert not client.alive()


def test_table_collected_during_a_request_is_dropped_without_deadlock(tmp_path, monkeypatch):
    """A table's finalizer runs at any allocation, also inside request() on the same thread
    (found in CI: the stateful test hung for an hour in a lookup whose json.dumps collected a
    table). The drop waits for the next request instead of nesting one."""
    import threading
    import weakref
    log = tmp_path / "ops.txt"
    script = fake_worker(tmp_path, HELLO + f"""
with open({str(log)!r}, "a") as f:
    f.write(header["op"] + " " + str(header["args"].get("table", "")) + "\\n")
reply(header)
""")
    client = WorkerClient(sys.executable, script, timeout=10)

    class Table:
        pass

    tables = [Table()]
    weakref.finalize(tables[0], client.forget_table, 7)
    real_write = protocol.write_frame

    def write_frame_collecting(fd, header, arrays=None):
        tables.clear()                       # the finalizer runs here, mid-request
        return real_write(fd, header, arrays)

    monkeypatch.setattr(protocol, "write_frame", write_frame_collecting)
    done = threading.Event()
    runner = threading.Thread(target=lambda: (client.request("lookup", {"table": 1}),
                                              client.request("size", {"table": 1}),
                                              done.set()), daemon=True)
    try:
        runner.start()
        runner.join(timeout=30)
        assert done.is_set(), "request() deadlocked on a finalizer"
        assert log.read_text().split("\n")[:3] == ["lookup 1", "drop_table 7", "size 1"]
    finally:
        monkeypatch.undo()
        client.close()


def test_version_mismatch_is_an_error(tmp_path):
    script = fake_worker(tmp_path, """
protocol.write_frame(1, dict(v=999, op=header["op"], id=header["id"], ok=True))
""")
    with pytest.raises(ProtocolError, match="version mismatch.*999"):
        WorkerClient(sys.executable, script, timeout=10)


@pytest.mark.parametrize("peer", PEERS, ids=lambda p: p.name)
def test_real_worker_rejects_another_protocol_version(peer):
    """A worker script answers a wrong-version request with an error and keeps serving; it
    needs neither its peer's packages (TensorFlow, torch) nor our package for that."""
    import subprocess
    proc = subprocess.Popen([sys.executable, peer.worker_script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        protocol.write_frame(proc.stdin.fileno(), {"v": 0, "op": "hello", "id": 5})
        header, _ = protocol.read_frame(proc.stdout.fileno(), timeout=30, alive=lambda: proc.poll() is None)
        assert header["ok"] is False and "version mismatch" in header["error"]
        protocol.write_frame(proc.stdin.fileno(), {"op": "shutdown", "id": 6})
        header, _ = protocol.read_frame(proc.stdout.fileno(), timeout=30)
        assert header["ok"] and proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
        proc.stdout.close()


def test_worker_error_comes_back_with_its_message(tmp_path):
    script = fake_worker(tmp_path, HELLO + """
protocol.write_frame(1, dict(op=header["op"], id=header["id"], ok=False,
                             error="KeyError: no table 42", traceback="Traceback: here"))
""")
    client = WorkerClient(sys.executable, script, timeout=10)
    try:
        with pytest.raises(WorkerError, match="no table 42"):
            client.request("lookup")
        assert client.alive()                                # an op error is not a death
    finally:
        client.close()


def test_dead_worker_is_detected(tmp_path):
    script = fake_worker(tmp_path, HELLO + """
sys.stderr.write("fatal: simulated crash\\n"); sys.stderr.flush()
os._exit(7)
""")
    client = WorkerClient(sys.executable, script, timeout=60)
    try:
        with pytest.raises(WorkerDied, match=r"(?s)exit code 7.*simulated crash"):
            client.request("lookup")
        with pytest.raises(WorkerDied, match="not running"):
            client.request("lookup")
    finally:
        client.close()


def test_hung_worker_times_out_and_is_killed(tmp_path):
    script = fake_worker(tmp_path, HELLO + "time.sleep(3600)\n")
    client = WorkerClient(sys.executable, script, timeout=0.5)
    try:
        with pytest.raises(WorkerDied, match="did not answer"):
            client.request("lookup")
        assert not client.alive()
    finally:
        client.close()


def test_worker_that_never_starts(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('cannot import tensorflow_recommenders_addons')\n")
    with pytest.raises(WorkerDied, match="cannot import tensorflow_recommenders_addons"):
        WorkerClient(sys.executable, str(script), timeout=10)


@pytest.mark.parametrize("peer", PEERS, ids=lambda p: p.name)
def test_probe_without_venv(monkeypatch, tmp_path, peer):
    import engines
    monkeypatch.setenv(peer.venv.env_var, str(tmp_path / "nowhere"))
    info = {i.name: i for i in engines.available()}[peer.name]
    assert not info.available
    assert f"{peer.name} venv not found at" in info.reason
    assert f"hashlab env create {peer.name}" in info.reason
