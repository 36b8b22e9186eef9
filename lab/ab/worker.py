"""One build's worker process in an A/B run: `python -P -m lab.ab.worker`, started by
`lab.ab.session` with the build's own interpreter, so everything it measures (the engine,
the API layer, the lab's call path) is that build's code.

It reads one JSON request per line on stdin and answers one JSON line on stdout (anything
else the process prints goes to stderr):

- `{"cmd": "hello"}` -> the protocol version, where `engines` was imported from, the commit;
- `{"cmd": "parity", "engine": SPEC, "scenarios": [...]}` -> the parity summary rows;
- `{"cmd": "prepare", "engine": SPEC, "scenario": {...}, "sampling": {...}}` -> builds a
  fresh engine and tables, prefills and warms them up (one round, not yet measured);
- `{"cmd": "step"}` -> one measured step of it (every op and its baseline once), and
  whether the round's sampling rules are met (`{"done": ...}`);
- `{"cmd": "result"}` -> the round's raw samples of every op; its tables go;
- `{"cmd": "exit"}`.

SPEC is `{"label", "name", "options", "imports"}` (imports: modules to import first, e.g. one
registering a test-only engine). Errors answer `{"ok": false, "error": ...}`; the worker stays
up.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

PROTOCOL = 1


class Worker:
    def __init__(self, root: str):
        self.root = root
        self.choices: dict[str, object] = {}
        self.pending = None                     # (sampler, round folder) once prepared
        self.takes: dict = {}                   # dense-take inputs, reused across rounds

    def choice(self, spec: dict):
        from lab.engine_select import resolve
        for module in spec.get("imports", ()):
            importlib.import_module(module)
        label = spec["label"]
        if label not in self.choices:
            usable, unusable = resolve([label])
            if not usable:
                raise RuntimeError(f"engine {label} is not usable in this build: "
                                   f"{unusable[0][1]}")
            self.choices[label] = usable[0]
        return self.choices[label]

    def hello(self, msg: dict) -> dict:
        import engines
        from lab.timing import machine_info
        return {"protocol": PROTOCOL, "engines_file": os.path.realpath(engines.__file__),
                "python": sys.version.split()[0], "pid": os.getpid(),
                "commit": os.environ.get("HASHLAB_AB_COMMIT"), "machine": machine_info()}

    def parity(self, msg: dict) -> dict:
        from lab import parity
        from lab.scenarios import Scenario
        choice = self.choice(msg["engine"])
        scenarios = [Scenario.from_dict(d) for d in msg["scenarios"]]
        summary = parity.summarize(parity.run_parity(scenarios, [choice], []))
        rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                for r in summary.to_dict(orient="records")]
        return {"parity": rows}

    def prepare(self, msg: dict) -> dict:
        from lab.scenarios import Scenario
        from lab.timing.runner import round_sampler
        from lab.timing.sampling import Sampling
        self._drop()
        choice = self.choice(msg["engine"])
        scenario = Scenario.from_dict(msg["scenario"])
        folder = tempfile.mkdtemp(prefix="round-", dir=self.root)
        started = time.perf_counter()
        try:
            sampler = round_sampler(scenario, choice, folder, Sampling(**msg["sampling"]),
                                    takes=self.takes)
            sampler.prepare()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.pending = (sampler, folder)
        return {"seconds": time.perf_counter() - started}

    def step(self, msg: dict) -> dict:
        """One measured step of the prepared round."""
        if self.pending is None:
            raise RuntimeError("step: no round prepared")
        return {"done": self.pending[0].step()}

    def result(self, msg: dict) -> dict:
        """The prepared round's samples; the round's tables and files go."""
        if self.pending is None:
            raise RuntimeError("result: no round prepared")
        try:
            ops, peak = self.pending[0].result()
        finally:
            self._drop()
        return {"ops": [dataclasses.asdict(ops[i]) for i in sorted(ops)], "peak": peak}

    def _drop(self) -> None:
        if self.pending is not None:
            _, folder = self.pending
            self.pending = None
            shutil.rmtree(folder, ignore_errors=True)


def serve(requests, answer, root: str) -> None:
    worker = Worker(root)
    handlers = {"hello": worker.hello, "parity": worker.parity, "prepare": worker.prepare,
                "step": worker.step, "result": worker.result}
    for line in requests:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg.get("cmd") == "exit":
            break
        try:
            handler = handlers[msg.get("cmd")]
            reply = {"ok": True, **handler(msg)}
        except Exception as exc:              # reported to the session, which decides
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()[-4000:]}
        answer(json.dumps(reply))
    worker._drop()


def main() -> int:
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())   # stray prints must not break replies
    sys.stdout = sys.stderr

    def answer(text: str) -> None:
        channel.write(text + "\n")
        channel.flush()

    root = tempfile.mkdtemp(prefix="hashlab-ab-worker-")
    try:
        serve(sys.stdin, answer, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
