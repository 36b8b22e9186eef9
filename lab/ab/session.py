"""An A/B session: two builds measured side by side in one time window, round by round.

One long-lived worker process per build (`lab.ab.worker`, started with that build's
interpreter). For every round r and scenario s, both workers measure one round of s (a
fresh engine and tables, prefilled, warmed up, sampled as `hashlab bench` does): both
prepare their tables (base first in half of the rounds, head first in the other half: a
balanced random order per scenario, seeded), then take their measured steps

- `interleaved` (default): alternately, one step (every op and its baseline once, a
  millisecond to a few tens) of one build, then one of the other, the build going first
  switching every step (A B B A ...). Both builds' samples of a round thus come from the same
  seconds of the machine's life: whatever the machine did then (another job, a slower clock,
  a neighbour evicting the cache) lands on both (randomized multiple interleaved trials, at
  the finest grain the ops allow);
- `duet`: in lockstep, both builds' steps at the same moment on the machine's cores (duet
  benchmarking), so both see the same interference.

Every op then has one paired replicate per round: base's and head's median times of that
round (`lab.gate.paired`). The session also runs parity on both builds (in parallel), and
returns both builds' results as ordinary bench results (what `hashlab bench --save` writes,
`sample_rounds` included), so `hashlab gate` and the report read them too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import select
import shutil
import subprocess
import tempfile
import time

from lab.ab.builds import Build
from lab.timing.sampling import OpSamples, Sampling

INTERLEAVED, DUET = "interleaved", "duet"
MODES = (INTERLEAVED, DUET)
SIDES = ("base", "head")
REPLY_TIMEOUT_S = 1800.0            # one request (a round, a parity run) at most


class WorkerError(RuntimeError):
    """A worker died or answered an error (the message has its last words)."""


class WorkerProcess:
    """A build's worker: one JSON request per line in, one JSON reply per line out."""

    def __init__(self, side: str, build: Build, stderr_path: str):
        self.side, self.build = side, build
        self.stderr_path = stderr_path
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if build.commit:
            env["HASHLAB_AB_COMMIT"] = build.commit
        self._err = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            [build.python, "-P", "-m", "lab.ab.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._err, cwd=tempfile.gettempdir(), env=env)
        self._buffer = b""

    def send(self, cmd: str, **fields) -> None:
        try:
            self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(self._died(f"could not send {cmd!r}: {exc}")) from exc

    def receive(self, what: str) -> dict:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(self._died(f"no answer to {what} in {REPLY_TIMEOUT_S:.0f} s"))
            ready, _, _ = select.select([fd], [], [], min(left, 5.0))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise WorkerError(self._died(f"exited during {what}"))
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(f"{self.side} worker ({self.build.description}): {what}: "
                              f"{reply.get('error')}\n{reply.get('traceback', '')}")
        return reply

    def call(self, cmd: str, **fields) -> dict:
        self.send(cmd, **fields)
        return self.receive(cmd)

    def _died(self, what: str) -> str:
        code = self.proc.poll()
        try:
            with open(self.stderr_path, "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            tail = ""
        return (f"{self.side} worker ({self.build.description}) {what}"
                f"{'' if code is None else f' (exit status {code})'}; its stderr ends:\n"
                f"{tail}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._err.close()


@dataclasses.dataclass
class SessionResult:
    """What an A/B session measured: per side, its per-op samples gathered over the rounds
    (OpSamples with their rounds), peak RSS, parity rows and worker facts; and the
    schedule."""
    samples: dict              # side -> {(scenario name, op index): OpSamples}
    peaks: dict                # side -> {scenario name: peak RSS bytes}
    parity: dict               # side -> [summary rows]
    workers: dict              # side -> hello reply
    schedule: list             # [(round, scenario, order or "duet")]
    seconds: float
    load: list                 # 1-minute load average at the start of every round


def _orders(n_rounds: int, rng: random.Random) -> list[tuple[str, str]]:
    """Which build goes first in each round: half base-first, half head-first, shuffled
    (ABBA, randomised); with an odd count the extra round's order is drawn too."""
    orders = [SIDES, SIDES[::-1]] * (n_rounds // 2)
    if n_rounds % 2:
        orders.append(rng.choice([SIDES, SIDES[::-1]]))
    rng.shuffle(orders)
    return orders


def run_session(builds: dict, scenarios, engine: dict, sampling: Sampling, rounds: int,
                mode: str = INTERLEAVED, seed: int = 0, parity: bool = True, log=print,
                workdir: str | None = None, restart_every: int = 1) -> SessionResult:
    """Measure `scenarios` on `engine` (`{"label", "name", "options", "imports"}`) in both
    `builds` ({"base": Build, "head": Build}), `rounds` rounds each, side by side.
    `restart_every`: fresh worker processes every that many rounds (see the module doc)."""
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
    if rounds < 1:
        raise ValueError(f"rounds: must be >= 1, got {rounds}")
    one_round = dataclasses.replace(sampling, rounds=1)
    rng = random.Random(seed)
    logs = tempfile.mkdtemp(prefix="hashlab-ab-", dir=workdir)
    workers: dict[str, WorkerProcess] = {}
    started = time.perf_counter()

    def start() -> dict:
        for w in workers.values():
            w.close()
        workers.update({side: WorkerProcess(side, builds[side],
                                            os.path.join(logs, f"{side}.stderr"))
                        for side in SIDES})
        hello = {side: w.call("hello") for side, w in workers.items()}
        for side, reply in hello.items():
            if reply.get("protocol") != 1:
                raise WorkerError(f"{side}: worker protocol {reply.get('protocol')} is not 1")
        return hello

    try:
        hello = start()
        parity_rows = {side: [] for side in SIDES}
        if parity:
            log("ab: parity of both builds (in parallel)")
            for side, w in workers.items():
                w.send("parity", engine=engine, scenarios=[s.to_dict() for s in scenarios])
            parity_rows = {side: w.receive("parity")["parity"] for side, w in workers.items()}
        samples = {side: {} for side in SIDES}
        peaks = {side: {} for side in SIDES}
        orders = {s.name: _orders(rounds, rng) for s in scenarios}
        schedule, load = [], []
        for r in range(rounds):
            if r and restart_every and r % restart_every == 0:
                start()
            load.append(os.getloadavg()[0])
            log(f"ab: round {r + 1}/{rounds} ({mode}; load {load[-1]:.2f})")
            for scenario in rng.sample(list(scenarios), len(scenarios)):
                request = {"engine": engine, "scenario": scenario.to_dict(),
                           "sampling": dataclasses.asdict(one_round)}
                order = orders[scenario.name][r]
                replies = _round(workers, order, request, mode)
                schedule.append((r, scenario.name, "duet" if mode == DUET else "-".join(order)))
                for side, reply in replies.items():
                    _gather(samples[side], peaks[side], scenario.name, reply, r)
        return SessionResult(samples, peaks, parity_rows, hello, schedule,
                             time.perf_counter() - started, load)
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(logs, ignore_errors=True)


def _round(workers: dict, order: tuple, request: dict, mode: str) -> dict:
    """One round of one scenario in both builds: both prepare (fresh tables, warm-up; in
    `order`), then take their measured steps alternately (interleaved: one step of one build,
    then one of the other, the first build switching every step) or in lockstep (duet: both
    at once), until both builds' sampling rules are met; both take the same number of
    steps."""
    for side in order:
        workers[side].call("prepare", **request)
    done = {side: False for side in order}
    turn = list(order)
    while not all(done.values()):
        if mode == DUET:
            for side in turn:
                workers[side].send("step")
            for side in turn:
                done[side] = workers[side].receive("step")["done"]
        else:
            for side in turn:
                done[side] = workers[side].call("step")["done"]
            turn.reverse()                         # A B B A A B ...: drift cancels
    return {side: workers[side].call("result") for side in order}


def _gather(samples: dict, peaks: dict, scenario: str, reply: dict, round_index: int) -> None:
    for op in reply["ops"]:
        rec = OpSamples(**op)
        key = (scenario, rec.index)
        mine = samples.setdefault(key, OpSamples(rec.index, rec.op, rec.kind, rec.row_width))
        mine.absorb(rec, round_index)
    peaks[scenario] = max(peaks.get(scenario, 0), int(reply.get("peak") or 0))

