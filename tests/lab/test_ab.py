"""`hashlab ab`: the paired statistics, the session's schedule, the worker protocol, build
specs, and the CLI's exit codes. Nothing here times anything: the measurement itself is
proven on real builds of the engine by `.ci/run` and `scripts/gate_power.py`
(docs/measurement.md)."""
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from lab.ab import builds, session
from lab.ab.builds import BuildError, BuildSpec
from lab.gate import paired
from lab.gate.compare import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS
from lab.timing.sampling import OpSamples


# ---- the paired statistics -----------------------------------------------------------------

def test_min_rounds_let_a_single_regression_reach_alpha():
    for n_ops in (1, 10, 20, 40):
        n = paired.min_rounds_for(n_ops, 0.01)
        assert 2 / 2 ** n * n_ops < 0.01 <= 2 / 2 ** (n - 1) * n_ops or n == 6


def test_a_consistent_paired_slowdown_is_significant_and_noise_is_not():
    rng = np.random.default_rng(1)
    base = np.exp(rng.normal(0, 0.3, 16))               # rounds differ a lot from each other
    slow = paired.compare_paired(paired.PairedRounds(tuple(base), tuple(base * 1.15 *
                                 np.exp(rng.normal(0, 0.02, 16)))))
    assert 1.12 < slow.change < 1.18 and slow.p < 1e-4 and slow.ci_low > 1.1
    same = paired.compare_paired(paired.PairedRounds(tuple(base), tuple(base * np.exp(
        rng.normal(0, 0.02, 16)))))
    assert 0.97 < same.change < 1.03 and same.p > 0.01
    assert "16 paired rounds, Wilcoxon" in same.replicates


def test_too_few_rounds_give_no_test():
    few = paired.compare_paired(paired.PairedRounds((1.0, 1.0, 1.0), (2.0, 2.0, 2.0)))
    assert few.change == 2.0 and math.isnan(few.p) and math.isnan(few.ci_low)
    identical = paired.compare_paired(paired.PairedRounds((1.0,) * 8, (1.0,) * 8))
    assert identical.change == 1.0 and identical.p == 1.0


def _session(changes: dict, rounds=16, missing=(), head_status="pass", seed=0):
    """A SessionResult with one scenario of three ops; head = base x changes[op]."""
    rng = np.random.default_rng(seed)
    samples = {"base": {}, "head": {}}
    for i, op in enumerate(("assign", "lookup", "size")):
        for side in ("base", "head"):
            if side == "head" and op in missing:
                continue
            rec = OpSamples(i, op, None if op == "size" else "dense_take", 32)
            for r in range(rounds):
                level = 1e-3 * math.exp(0.3 * math.sin(r))         # rounds drift together
                for _ in range(5):
                    factor = changes.get(op, 1.0) if side == "head" else 1.0
                    rec.engine.append(level * factor * math.exp(rng.normal(0, 0.01)))
                    rec.baseline.append(1e-4)
                    rec.rounds.append(r)
                    rec.n_ids.append(1000)
                    rec.nbytes.append(128_000)
                    rec.load.append(0.5)
            samples[side][("storage_ops", i)] = rec
    parity = {"base": [{"engine": "native-cpu", "scenario": "storage_ops", "status": "pass"}],
              "head": [{"engine": "native-cpu", "scenario": "storage_ops",
                        "status": head_status}]}
    return session.SessionResult(samples, {"base": {}, "head": {}}, parity, {}, [], 1.0,
                                 [0.5] * rounds)


class _Scenario:
    name, threads = "storage_ops", 1


def test_paired_gate_verdicts():
    same = paired.gate(_session({}), [_Scenario()], "native-cpu")
    assert same.exit_code == EXIT_PASS and same.not_gated == 1          # size: no baseline
    assert set(same.perf.verdict) == {"ok"} and set(same.perf.basis) == {"paired"}
    slow = paired.gate(_session({"assign": 1.3}), [_Scenario()], "native-cpu")
    verdicts = dict(zip(slow.perf.op, slow.perf.verdict))
    assert verdicts == {"assign": "REGRESSION", "lookup": "ok"} and slow.exit_code == EXIT_FAIL
    from lab.gate import render
    text = render(slow)
    assert "Wilcoxon signed-rank on the paired rounds" in text and "16 paired rounds" in text
    # a change within the threshold is significant but passes
    assert paired.gate(_session({"assign": 1.05}), [_Scenario()], "native-cpu").exit_code == 0


def test_paired_gate_fails_on_missing_ops_and_new_parity_failures():
    lost = paired.gate(_session({}, missing=("lookup",)), [_Scenario()], "native-cpu")
    assert lost.exit_code == EXIT_FAIL and any("lookup" in m for m in lost.missing)
    broken = paired.gate(_session({}, head_status="fail"), [_Scenario()], "native-cpu")
    assert broken.exit_code == EXIT_FAIL and broken.new_failures == 1


# ---- the session's schedule ----------------------------------------------------------------

class _FakeWorker:
    """Records what the session asks; a round is done after `steps` steps."""

    def __init__(self, side, log, steps):
        self.side, self.log, self.steps, self.taken = side, log, steps, 0
        self.pending = []

    def call(self, cmd, **fields):
        self.send(cmd, **fields)
        return self.receive(cmd)

    def send(self, cmd, **fields):
        self.log.append((self.side, "send", cmd))
        self.pending.append(cmd)

    def receive(self, what):
        cmd = self.pending.pop(0)
        assert cmd == what
        self.log.append((self.side, "recv", cmd))
        if cmd == "prepare":
            self.taken = 0
            return {"ok": True}
        if cmd == "step":
            self.taken += 1
            return {"ok": True, "done": self.taken >= self.steps}
        return {"ok": True, "ops": [], "peak": 0, "taken": self.taken}


def test_interleaved_steps_alternate_until_both_are_done():
    log = []
    workers = {"base": _FakeWorker("base", log, 3), "head": _FakeWorker("head", log, 5)}
    replies = session._round(workers, ("base", "head"), {}, session.INTERLEAVED)
    assert replies["base"]["taken"] == replies["head"]["taken"] == 5     # the slower one's
    steps = [arm for arm, kind, cmd in log if cmd == "step" and kind == "send"]
    assert len(steps) == 10 and all(a != b for a, b in zip(steps, steps[1:]))   # alternate
    # never two requests in flight: send and receive alternate
    kinds = [kind for _, kind, cmd in log if cmd == "step"]
    assert kinds == ["send", "recv"] * 10


def test_duet_steps_run_in_lockstep():
    log = []
    workers = {"base": _FakeWorker("base", log, 4), "head": _FakeWorker("head", log, 2)}
    session._round(workers, ("head", "base"), {}, session.DUET)
    events = [(side, kind) for side, kind, cmd in log if cmd == "step"]
    for i in range(0, len(events), 4):          # both sent, then both received
        assert {e[1] for e in events[i:i + 2]} == {"send"}
        assert {e[1] for e in events[i + 2:i + 4]} == {"recv"}
    assert workers["base"].taken == workers["head"].taken == 4


def test_round_orders_are_balanced():
    import random
    orders = session._orders(["base", "head"], 16, random.Random(3))
    assert orders.count(("base", "head")) == orders.count(("head", "base")) == 8
    assert orders != session._orders(["base", "head"], 16, random.Random(4))
    three = session._orders(["base", "head1", "head2"], 12, random.Random(5))
    for arm in ("base", "head1", "head2"):           # each arm first and last equally often
        assert sum(o[0] == arm for o in three) == sum(o[-1] == arm for o in three) == 4


def test_no_build_ever_steps_twice_in_a_row():
    """Back-to-back steps of one build run on its own warm caches: with a fixed order
    reversed every pass, the two end builds got them and the others never did (a measured
    1.3x head start). Every pass is a fresh random order, and none starts with the build
    that ended the pass before; every build leads equally often in the long run."""
    import random
    log = []
    arms = ("base", "head1", "head2", "head3")
    workers = {a: _FakeWorker(a, log, 400) for a in arms}
    session._round(workers, arms, {}, session.INTERLEAVED, random.Random(7))
    steps = [arm for arm, kind, cmd in log if cmd == "step" and kind == "send"]
    assert len(steps) == 1600 and all(a != b for a, b in zip(steps, steps[1:]))
    firsts = [steps[i] for i in range(0, len(steps), 4)]
    assert {a: firsts.count(a) for a in arms} == pytest.approx(
        {a: 100 for a in arms}, abs=30)


# ---- the worker protocol -------------------------------------------------------------------

def test_worker_serves_a_round_and_survives_errors(tmp_path):
    from lab.ab import worker
    from lab.scenarios.profiles import profile_scenarios
    scenario = next(s for s in profile_scenarios("gate") if s.name == "storage_ops")
    scenario = scenario.quick_version()
    spec = {"label": "numpy", "name": "numpy", "options": {}, "imports": []}
    sampling = {"min_samples": 3, "max_samples": 3, "cap_s": 10.0, "floor": 3,
                "warmup_s": 0.0}
    requests = [{"cmd": "hello"}, {"cmd": "step"},
                {"cmd": "prepare", "engine": spec, "scenario": scenario.to_dict(),
                 "sampling": sampling},
                {"cmd": "step"}, {"cmd": "step"}, {"cmd": "step"}, {"cmd": "result"},
                {"cmd": "bogus"}, {"cmd": "exit"}, {"cmd": "hello"}]
    replies = []
    worker.serve(io.StringIO("\n".join(json.dumps(r) for r in requests)), replies.append,
                 str(tmp_path))
    replies = [json.loads(r) for r in replies]
    assert len(replies) == 8                                   # nothing after "exit"
    hello, early, prepared, s1, s2, s3, result, bogus = replies
    assert hello["ok"] and hello["protocol"] == 1 and hello["engines_file"].endswith(".py")
    assert not early["ok"] and "no round prepared" in early["error"]
    assert prepared["ok"] and [s1["done"], s2["done"], s3["done"]] == [False, False, True]
    ops = {op["op"]: op for op in result["ops"]}
    assert set(ops) == {"assign", "assign_add", "lookup", "lookup_entry", "size"}
    assert all(len(op["engine"]) == 3 for op in ops.values())
    assert not bogus["ok"]
    assert not list(tmp_path.iterdir())                        # the round's files are gone


def test_a_dead_worker_is_reported_with_its_last_words(tmp_path):
    build = builds.Build(sys.executable, "a test build")
    w = session.WorkerProcess("head", build, str(tmp_path / "err"))
    try:
        w.proc.kill()
        w.proc.wait()
        with pytest.raises(session.WorkerError, match="head worker .a test build."):
            w.call("hello")
    finally:
        w.close()


# ---- build specs ---------------------------------------------------------------------------

def test_build_specs(tmp_path):
    assert BuildSpec.parse("HEAD+a.patch+b/c.patch") == BuildSpec("HEAD", ("a.patch",
                                                                           "b/c.patch"))
    assert str(BuildSpec.parse("main+x.patch")) == "main+x.patch"
    for bad in ("+x.patch", "HEAD+", "HEAD++x.patch"):
        with pytest.raises(BuildError, match="expected REF"):
            BuildSpec.parse(bad)
    assert BuildSpec("current").kind == "current"
    assert BuildSpec(sys.executable).kind == "python"
    assert BuildSpec("main").kind == "ref"
    current = builds.ensure(BuildSpec("current"))
    assert current.python == sys.executable
    with pytest.raises(BuildError, match="not to `current`"):
        patch = tmp_path / "x.patch"
        patch.write_text("")
        builds.ensure(BuildSpec("current", (str(patch),)))
    with pytest.raises(BuildError, match="no such file"):
        builds.ensure(BuildSpec("HEAD", (str(tmp_path / "missing.patch"),)))


def test_a_ref_outside_a_checkout_or_unknown_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BuildError, match="not a git checkout"):
        builds.ensure(BuildSpec("HEAD"))
    root = builds.repo_root(os.path.dirname(__file__))
    monkeypatch.chdir(root)
    with pytest.raises(BuildError, match="neither `current`"):
        builds.ensure(BuildSpec("no-such-ref-anywhere"))


def test_a_patch_that_does_not_apply_names_itself(tmp_path, monkeypatch):
    root = builds.repo_root(os.path.dirname(__file__))
    monkeypatch.chdir(root)
    patch = tmp_path / "stale.patch"
    patch.write_text("--- a/README.md\n+++ b/README.md\n@@ -1,1 +1,1 @@\n-no such line\n"
                     "+x\n")
    with pytest.raises(BuildError, match="patch .*stale.patch does not apply"):
        builds.ensure(BuildSpec("HEAD", (str(patch),)), cache=str(tmp_path / "cache"))
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]   # nothing left


def test_a_patch_is_applied_even_inside_the_checkout(tmp_path):
    """The build cache lives inside the checkout, where a plain `git apply` patches paths of
    the enclosing repository and silently skips the others: the export must carry the
    patch. (Found the hard way: a whole study of unpatched "regressions".)"""
    root = builds.repo_root(os.path.dirname(__file__))
    commit = builds._resolve(root, "HEAD")
    inside = os.path.join(root, ".hashlab", f"test-export-{os.getpid()}")
    patch = os.path.join(ZOO, "extra_probe.patch")
    try:
        builds.export(root, commit, [patch], os.path.join(inside, "src"))
        with open(os.path.join(inside, "src", "engines", "native", "src", "table.cc")) as f:
            assert "ZOO: a second probe" in f.read()
    finally:
        import shutil
        shutil.rmtree(inside, ignore_errors=True)


ZOO = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "regression_zoo")


def test_every_zoo_patch_applies_to_this_tree():
    """The regression zoo (scripts/regression_zoo) must keep applying as the engine changes:
    a patch that no longer applies fails here, in every CI run."""
    import tomllib
    root = builds.repo_root(os.path.dirname(__file__))
    with open(os.path.join(ZOO, "zoo.toml"), "rb") as f:
        zoo = tomllib.load(f)
    assert len(zoo) >= 6
    for name, entry in zoo.items():
        path = os.path.join(ZOO, entry["patch"])
        out = subprocess.run(["git", "apply", "--check", path], cwd=root, capture_output=True,
                             text=True)
        assert out.returncode == 0, f"{name}: {out.stderr}"
        assert entry["affects"] and entry["what"]


# ---- the command ---------------------------------------------------------------------------

def test_ab_usage_errors_exit_2(capsys, tmp_path):
    from lab.cli import main
    assert main(["ab", "HEAD", "--rounds", "3"]) == 2
    assert "--rounds must be >= 6" in capsys.readouterr().err
    assert main(["ab", "no-such-ref-anywhere", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hashlab: ab:") and err.count("\n") == 1
    assert main(["ab", "current", "--counter-threshold", "ll_misses"]) == 2
    assert main(["ab", "HEAD", f"HEAD+{tmp_path}/missing.patch"]) == 2
    assert "missing.patch: no such file" in capsys.readouterr().err


def test_exit_codes_are_documented():
    assert (EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE) == (0, 1, 3)
    from lab.commands import ab
    assert "3 inconclusive" in ab.__doc__


def test_a_sessions_bench_files_regate_paired(tmp_path, capsys):
    """The bench files an A/B session writes are ordinary bench files that carry their
    session: `hashlab gate` pairs them again by itself, at any threshold."""
    import lab.ab as ab
    from lab.cli import main
    from lab.scenarios.profiles import profile_scenarios
    from lab.suite import sampling_for
    scenario = next(s for s in profile_scenarios("gate") if s.name == "storage_ops")
    result = _session({"assign": 1.3})
    result.workers = {"base": {"machine": {}}, "head": {"machine": {}}}
    build = builds.Build(sys.executable, "test")
    files = {}
    for arm in ("base", "head"):
        data = ab._bench_json(arm, result, [scenario], "native-cpu", build,
                              sampling_for("gate"), "gate", "interleaved", "s1")
        files[arm] = tmp_path / f"{arm}.json"
        files[arm].write_text(json.dumps(data))
    assert main(["gate", str(files["head"]), "--baseline", str(files["base"])]) == 1
    out = capsys.readouterr().out
    assert "paired round by round" in out and "REGRESSION native-cpu storage_ops assign" in out
    assert main(["gate", str(files["head"]), "--baseline", str(files["base"]),
                 "--threshold", "1.5"]) == 0
    # files of two different sessions cannot be paired
    other = json.loads(files["base"].read_text())
    other["ab"]["session"] = "s2"
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["gate", str(files["head"]), "--baseline", str(tmp_path / "other.json"),
                 "--basis", "paired"]) == 2
    assert "one `hashlab ab` session" in capsys.readouterr().err
