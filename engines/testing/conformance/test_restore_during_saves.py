"""A process that restores a checkpoint while another process saves over it gets one whole
committed version, every time, and never an error blaming the files (issue 20, row 1;
docs/checkpoints.md, "Readers during a save"): the serving process that reloads while the
trainer saves.

A writer process saves two versions A and B of a 20,000-entry table over one basename in a
loop; a reader process restores it again and again, until the writer has saved 40 times (it
was seen replacing the manifest 80 times) and the reader restored at least 50 times. The
writer is killed with SIGKILL and restarted while the reader runs (a crash in the middle of a
save), and killed once more at the end; a restore must then give A or B, and the next save
must remove what the killed one left.

Saves and restores per engine: HASHLAB_CONCURRENT_SAVES and HASHLAB_CONCURRENT_RESTORES
(default 40 and 50; 8 and 12 for tensorflow and tf-native, whose processes take long to start
TensorFlow). HASHLAB_CRASH_REPORT=<file> appends one JSON line per engine (restores, versions
seen, errors, writer kills, manifest replacements seen, generation reached).
"""
from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from engines.testing.conformance import _save_loop_child as child
from engines.testing.helpers import require

pytestmark = [pytest.mark.conformance_area("checkpoints"), pytest.mark.slow]

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_save_loop_child.py")
SLOW_START = {"tensorflow", "tf-native"}
START_TIMEOUT_S = 600
STALL_TIMEOUT_S = 600           # a restore, or a writer's first saves, taking longer is a hang


def _counts(engine) -> tuple[int, int]:
    """(saves, restores) at least."""
    slow = engine.name in SLOW_START
    return (int(os.environ.get("HASHLAB_CONCURRENT_SAVES", 8 if slow else 40)),
            int(os.environ.get("HASHLAB_CONCURRENT_RESTORES", 12 if slow else 50)))


def _start(engine_param, role: str, base: str) -> subprocess.Popen:
    spec = {"engine": engine_param.spec.name, "options": engine_param.options, "role": role,
            "base": base}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, CHILD, json.dumps(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _expect_line(proc, what: str) -> None:
    line = ""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 1.0)[0]:
            line = proc.stdout.readline()
            break
    if line.strip() != what:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"child did not print {what}: {line!r}\n{err[-3000:]}")


def _generation(base: str) -> int:
    try:
        with open(base + ".manifest", "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return 0
    return int(lines[2].split()[1]) if len(lines) > 2 and lines[2].startswith(b"generation ") \
        else 0


def _manifest_version(base: str):
    try:
        st = os.stat(base + ".manifest")
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _wait_for_saves(writer, base: str, saves: int) -> None:
    """Until the writer has replaced the manifest often enough for `saves` saves (two
    replacements each: pending, then committed), so that the reader starts while saves are
    under way."""
    last, changes = _manifest_version(base), 0
    deadline = time.monotonic() + STALL_TIMEOUT_S
    while changes < 2 * saves:
        if writer.poll() is not None or time.monotonic() > deadline:
            writer.kill()
            _, err = writer.communicate()
            pytest.fail(f"the writer did not save: {err[-3000:]}")
        now = _manifest_version(base)
        if now != last:
            last, changes = now, changes + 1
        time.sleep(0.001)


def _kill(proc) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


def test_restore_while_another_process_saves(engine, engine_param, tmp_path):
    require(engine, op=("save", "restore"))
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    base = str(tmp_path / "t")
    versions = {child.digest(child.build(engine, v)): v for v in ("A", "B")}
    assert len(versions) == 2
    child.build(engine, "A").save(base, nshards=child.NSHARDS)
    saves, min_restores = _counts(engine)
    kills_during = 1 if engine.name in SLOW_START else 3
    writer = _start(engine_param, "writer", base)
    reader = _start(engine_param, "reader", base)
    seen = collections.Counter()
    errors = []
    try:
        _expect_line(writer, "SAVING")
        _expect_line(reader, "READY")
        _wait_for_saves(writer, base, 2)
        reader.stdin.write("GO\n")
        reader.stdin.flush()
        last, changes, restores = _manifest_version(base), 0, 0
        quiet_since = time.monotonic()
        while changes < 2 * saves or restores < min_restores:
            if select.select([reader.stdout], [], [], 0.001)[0]:
                line = reader.stdout.readline()
                if not line:
                    _, err = reader.communicate()
                    pytest.fail(f"reader stopped after {restores} restores: {err[-3000:]}")
                result = json.loads(line)
                restores += 1
                quiet_since = time.monotonic()
                if "error" in result:
                    errors.append(f"restore {restores}: {result['error']}")
                    seen["error"] += 1
                else:
                    seen[versions.get(result["digest"], "other")] += 1
            elif time.monotonic() - quiet_since > STALL_TIMEOUT_S:
                pytest.fail(f"no restore finished in {STALL_TIMEOUT_S} s")
            now = _manifest_version(base)
            if now != last:
                last, changes = now, changes + 1
            # Kill the writer wherever it is (mid-save, most of the time) and start another.
            if seen["writer kills"] < kills_during and \
                    changes >= 2 * saves * (seen["writer kills"] + 1) // (kills_during + 1):
                _kill(writer)
                seen["writer kills"] += 1
                writer = _start(engine_param, "writer", base)
        reader.stdin.write("STOP\n")
        reader.stdin.flush()
        out, err = reader.communicate(timeout=STALL_TIMEOUT_S)
        for line in out.splitlines():          # restores that ended after the STOP
            result = json.loads(line)
            restores += 1
            if "error" in result:
                errors.append(f"restore {restores}: {result['error']}")
                seen["error"] += 1
            else:
                seen[versions.get(result["digest"], "other")] += 1
    finally:
        for proc in (reader, writer):
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    seen["writer kills"] += 1                          # the last one, above
    table = child.build(engine, None)
    table.restore(base)                                # after a kill at any moment: A or B
    final = versions.get(child.digest(table), "other")
    generation = _generation(base)
    child.build(engine, "B").save(base, nshards=child.NSHARDS)
    hidden = sorted(n for n in os.listdir(tmp_path) if n.startswith("."))
    row = {"engine": engine.name, "options": engine_param.options, "restores": restores,
           "A": seen["A"], "B": seen["B"], "other": seen["other"], "errors": seen["error"],
           "writer_kills": seen["writer kills"], "manifest_replacements": changes,
           "generation": generation, "final": final}
    report = os.environ.get("HASHLAB_CRASH_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"test": "restore_during_saves", **row}) + "\n")
    assert not errors and not seen["other"], f"{row}\n" + "\n".join(errors[:10])
    assert seen["A"] + seen["B"] == restores, row
    assert final in ("A", "B"), row
    assert not hidden, f"leftovers after the next save: {hidden}"
