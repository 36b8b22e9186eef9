"""An A/B session: builds measured side by side in one time window, round by round.

One worker process per build (`lab.ab.worker`, started with that build's interpreter): the
base, and one or more heads (several candidates can share one base and one session). For
every round r and scenario s, every worker measures one round of s (a fresh engine and
tables, prefilled, warmed up, sampled as `hashlab bench` does): all prepare their tables (in
a balanced random order, seeded), then take their measured steps

- `interleaved` (default): one step (every op and its baseline once, a millisecond to a few
  tens) of each build in turn, in a fresh random order each pass, and never the same build
  twice in a row (`_step_orders`). All builds' samples of a round thus come from the same
  seconds of the machine's life: whatever the machine did then (another job, a slower clock,
  a neighbour evicting the cache) lands on all of them (randomized multiple interleaved
  trials, at the finest grain the ops allow);
- `duet` (one head only): in lockstep, both builds' steps at the same moment on the machine's
  cores (duet benchmarking), so both see the same interference.

Every worker is a fresh process each round (`restart_every`): a process keeps its memory
layout for life, and measured side by side, two processes of the same build differed by up
to 1.13x on a small op in every one of eight rounds (docs/measurement.md). A fresh pair per
round makes that a round-to-round effect, which the paired test then sees as noise instead
of a change.

Every op then has one paired replicate per round and head: base's and the head's median
times of that round (`lab.gate.paired`). The session also runs parity on every build (in
parallel), and keeps every build's samples with their rounds, so that each can be written as
an ordinary bench file (`hashlab gate` and the report read it).
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
BASE = "base"
REPLY_TIMEOUT_S = 1800.0            # one request (a round, a parity run) at most


class WorkerError(RuntimeError):
    """A worker died or answered an error (the message has its last words)."""


class WorkerProcess:
    """A build's worker: one JSON request per line in, one JSON reply per line out."""

    def __init__(self, arm: str, build: Build, stderr_path: str):
        self.arm, self.build = arm, build
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
            raise WorkerError(f"{self.arm} worker ({self.build.description}): {what}: "
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
        return (f"{self.arm} worker ({self.build.description}) {what}"
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
    """What an A/B session measured, per arm ("base" and each head's label): its per-op
    samples gathered over the rounds ({(scenario name, op index): OpSamples}, with their
    rounds), peak RSS per scenario, parity rows and worker facts; and the schedule."""
    samples: dict
    peaks: dict
    parity: dict
    workers: dict
    schedule: list             # [(round, scenario, order of the arms or "duet")]
    seconds: float
    load: list                 # 1-minute load average at the start of every round


def _orders(arms: list, n_rounds: int, rng: random.Random) -> list[tuple]:
    """The arms' order for each round: every arm first equally often (a rotation of a random
    order, then each rotation reversed: balanced; shuffled over the rounds)."""
    base = list(arms)
    rng.shuffle(base)
    cycle = [tuple(base[i:] + base[:i]) for i in range(len(base))]
    cycle += [order[::-1] for order in cycle]
    orders = [cycle[r % len(cycle)] for r in range(n_rounds)]
    rng.shuffle(orders)
    return orders


def run_session(builds: dict, scenarios, engine: dict, sampling: Sampling, rounds: int,
                mode: str = INTERLEAVED, seed: int = 0, parity: bool = True, log=print,
                workdir: str | None = None, restart_every: int = 1) -> SessionResult:
    """Measure `scenarios` on `engine` (`{"label", "name", "options", "imports"}`) in every
    build of `builds` ({"base": Build, head label: Build, ...}), `rounds` rounds each, side
    by side. `restart_every`: fresh worker processes every that many rounds (0: never)."""
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
    if rounds < 1:
        raise ValueError(f"rounds: must be >= 1, got {rounds}")
    arms = list(builds)
    if BASE not in builds or len(arms) < 2:
        raise ValueError("builds: a 'base' and at least one head are needed")
    if mode == DUET and len(arms) != 2:
        raise ValueError("duet: exactly one head (both builds run at the same time)")
    one_round = dataclasses.replace(sampling, rounds=1)
    rng = random.Random(seed)
    logs = tempfile.mkdtemp(prefix="hashlab-ab-", dir=workdir)
    workers: dict[str, WorkerProcess] = {}
    started = time.perf_counter()

    def start() -> dict:
        for w in workers.values():
            w.close()
        workers.update({arm: WorkerProcess(arm, builds[arm],
                                           os.path.join(logs, f"{arm}.stderr"))
                        for arm in arms})
        hello = {arm: w.call("hello") for arm, w in workers.items()}
        for arm, reply in hello.items():
            if reply.get("protocol") != 1:
                raise WorkerError(f"{arm}: worker protocol {reply.get('protocol')} is not 1")
        return hello

    try:
        hello = start()
        parity_rows = {arm: [] for arm in arms}
        if parity:
            log(f"ab: parity of {len(arms)} builds (in parallel)")
            for w in workers.values():
                w.send("parity", engine=engine, scenarios=[s.to_dict() for s in scenarios])
            parity_rows = {arm: w.receive("parity")["parity"] for arm, w in workers.items()}
        samples = {arm: {} for arm in arms}
        peaks = {arm: {} for arm in arms}
        orders = {s.name: _orders(arms, rounds, rng) for s in scenarios}
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
                replies = _round(workers, order, request, mode, rng)
                schedule.append((r, scenario.name, "duet" if mode == DUET else "-".join(order)))
                for arm, reply in replies.items():
                    _gather(samples[arm], peaks[arm], scenario.name, reply, r)
        return SessionResult(samples, peaks, parity_rows, hello, schedule,
                             time.perf_counter() - started, load)
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(logs, ignore_errors=True)


def _round(workers: dict, order: tuple, request: dict, mode: str,
           rng: random.Random | None = None) -> dict:
    """One round of one scenario in every build: all prepare (fresh tables, warm-up; in
    `order`), then take their measured steps in turn (interleaved: one step each, in a
    fresh order each pass, `_step_orders`) or in lockstep (duet: all at once), until every
    build's sampling rules are met; all take the same number of steps."""
    for arm in order:
        workers[arm].call("prepare", **request)
    done = {arm: False for arm in order}
    passes = _step_orders(order, rng or random.Random(0))
    while not all(done.values()):
        turn = next(passes)
        if mode == DUET:
            for arm in turn:
                workers[arm].send("step")
            for arm in turn:
                done[arm] = workers[arm].receive("step")["done"]
        else:
            for arm in turn:
                done[arm] = workers[arm].call("step")["done"]
    return {arm: workers[arm].call("result") for arm in order}


def _step_orders(arms: tuple, rng: random.Random):
    """Endless passes over the arms, each pass a random order whose first arm is never the
    previous pass's last: no build ever takes two steps in a row, so every build's step
    starts from caches the other builds' steps left, alike for all (with two builds this is
    strict alternation). A fixed order reversed every pass (A B C C B A ...) would give only
    the two end builds back-to-back steps on warm caches: measured, a 1.3x head start on a
    12 ms update with eight builds."""
    last = None
    while True:
        turn = list(arms)
        rng.shuffle(turn)
        if len(turn) > 1 and turn[0] == last:
            turn[0], turn[-1] = turn[-1], turn[0]
        last = turn[-1]
        yield turn


def _gather(samples: dict, peaks: dict, scenario: str, reply: dict, round_index: int) -> None:
    for op in reply["ops"]:
        rec = OpSamples(**op)
        key = (scenario, rec.index)
        mine = samples.setdefault(key, OpSamples(rec.index, rec.op, rec.kind, rec.row_width))
        mine.absorb(rec, round_index)
    peaks[scenario] = max(peaks.get(scenario, 0), int(reply.get("peak") or 0))
