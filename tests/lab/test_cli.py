"""Every `hashlab` subcommand: exit codes and the files it writes (tiny scenarios only)."""
import json
import os
import sys

import pandas as pd
import pytest

from lab.cli import main

SCENARIO_TOML = """
name = "cli_tiny"
batch_size = 32
prefill = 16
steps = 2
warmup = 0
[ids]
kind = "zipf"
vocab = 64
[[tables]]
config = { dim = 4, optimizer = "adagrad" }
[[ops]]
op = "apply_gradients"
[[ops]]
op = "lookup"
"""


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SCENARIO_TOML)
    return str(path)


def test_engines(capsys):
    assert main(["engines"]) == 0
    assert "numpy" in capsys.readouterr().out
    assert main(["engines", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert any(i["name"] == "numpy" and i["available"] for i in infos)


def test_run_scenario_file_keeps_its_results_in_a_folder(scenario_file, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", scenario_file, "--engines", "numpy", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "cli_tiny" in captured.out and "pass" in captured.out
    folder = tmp_path / "reports" / "run" / "tiny"            # named after tiny.toml
    assert f"wrote {os.path.join('reports', 'run', 'tiny', 'bench.json')}" in captured.out
    assert "-> reports/run/tiny" in captured.err
    data = json.loads((folder / "bench.json").read_text())
    assert data["parity"][0]["status"] == "pass"
    assert {r["op"] for r in data["results"]} == {"apply_gradients", "lookup"}
    parity = pd.read_csv(folder / "parity.csv")
    assert set(parity["status"]) == {"pass"} and set(parity["op"]) == {"apply_gradients",
                                                                      "lookup"}
    perf = pd.read_csv(folder / "perf.csv")
    assert sorted(perf["op"]) == ["apply_gradients", "lookup"]
    assert list(perf.columns) == list(pd.DataFrame(data["results"]).columns)
    # --out chooses the folder (made with its parents)
    other = tmp_path / "a" / "b"
    assert main(["run", scenario_file, "--engines", "numpy", "--no-timing", "--no-progress",
                 "--out", str(other)]) == 0
    assert sorted(p.name for p in other.iterdir()) == ["bench.json", "parity.csv", "perf.csv"]
    (tmp_path / "a" / "b" / "index.html").write_text("a report's page")
    assert main(["run", scenario_file, "--engines", "numpy", "--out", str(other)]) == 2
    assert "holds a `hashlab report` page" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["run", scenario_file, "--engines", "numpy", "--out",
                 str(tmp_path / "file" / "x")]) == 2
    assert "cannot make the folder" in capsys.readouterr().err


class _LongErrorTable:
    """Wraps a numpy table; lookup fails with a long message ending in a long path."""

    PATH = "/tmp/hashlab-parity-0123456789/ref-abcdefgh/t0/step-000001/checkpoint-shard-00003"

    def __init__(self, table):
        self._table = table

    def __getattr__(self, name):
        return getattr(self._table, name)

    def lookup(self, ids):
        raise FileNotFoundError(f"the table could not read its checkpoint: not found at "
                                f"{self.PATH}")


def test_run_notes_whole_in_files_and_cut_on_a_word_in_print(scenario_file, tmp_path,
                                                            capsys):
    import engines
    from engines.reference.numpy_engine import NumpyEngine

    class LongErrorEngine(NumpyEngine):
        name = "test-long-error"

        def create_table(self, *args, **kwargs):
            return _LongErrorTable(super().create_table(*args, **kwargs))
    engines.register(LongErrorEngine.name, lambda **opts: LongErrorEngine(**opts))
    try:
        assert main(["run", scenario_file, "--engines", LongErrorEngine.name, "--no-timing",
                     "--no-progress", "--out", str(tmp_path / "r")]) == 1
    finally:
        engines.unregister(LongErrorEngine.name)
    printed = capsys.readouterr().out
    full = f"not found at {_LongErrorTable.PATH}"
    bench = json.loads((tmp_path / "r" / "bench.json").read_text())
    note = bench["parity"][0]["note"]
    assert note.startswith("error: FileNotFoundError: the table") and full in note
    parity = pd.read_csv(tmp_path / "r" / "parity.csv")
    assert full in parity.loc[parity["status"] == "fail", "note"].iloc[0]
    # the printed table: shortened where a word ends, with an ellipsis
    row = next(line for line in printed.splitlines() if "test-long-error" in line)
    shown = row.split(" fail ", 1)[1].split(None, 1)[1]     # after status and max_ulp
    assert shown.endswith(" …") and len(shown) <= 60
    words = shown[:-2].split()
    assert words == note.split()[:len(words)], (shown, note)


def test_run_json_file_and_parity_failure_exit_1(tmp_path, broken_engines):
    from lab import scenarios
    (s,) = scenarios.parse_text(SCENARIO_TOML, "toml")
    path = tmp_path / "tiny.json"
    path.write_text(scenarios.dump_json([s]))
    assert main(["run", str(path), "--engines", "test-skipping-apply", "--no-timing",
                 "--no-progress", "--out", str(tmp_path / "r")]) == 1
    assert json.loads((tmp_path / "r" / "bench.json").read_text())["parity"][0]["status"] \
        == "fail"                                       # written before exiting 1


def test_run_bad_usage_exit_2(scenario_file, tmp_path):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nbatch = 3\n')
    assert main(["run", str(bad)]) == 2
    assert main(["run", scenario_file, "--engines", "no-such-engine"]) == 2
    assert main(["run", scenario_file, "--scenarios", "other", "--engines", "numpy"]) == 2
    assert main(["frobnicate"]) == 2


def test_bench_quick_saves_json(tmp_path, capsys):
    out = tmp_path / "b" / "bench.json"
    assert main(["bench", "--quick", "--engines", "numpy", "--scenarios", "monolith_lookup",
                 "--save", str(out), "--no-progress"]) == 0
    assert "Timing" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["schema"] == "hashlab-bench/2" and data["quick"] is True
    assert {"machine", "git", "engines", "results", "parity", "created", "measure",
            "load_avg", "sampling"} <= set(data)
    row = data["results"][0]
    assert {"engine", "scenario", "op", "threads", "median_s", "ratio_to_baseline",
            "parity", "ci_low_s", "ci_high_s", "ratio_ci_low", "ratio_ci_high", "samples_s",
            "ratio_samples", "unstable", "load_avg", "measure"} <= set(row)
    assert row["measure"] == "wall" and len(row["samples_s"]) == row["repeats"]
    # one run gated against itself: nothing changed (a --quick run's few samples may leave
    # most ops too noisy to decide: INCONCLUSIVE, accepted here)
    assert main(["gate", str(out), "--baseline", str(out), "--allow-inconclusive"]) == 0
    assert "0 REGRESSION," in capsys.readouterr().out


def test_report_writes_the_directory(tmp_path, monkeypatch):
    from lab.report import writer
    monkeypatch.setattr(writer, "oracle_table", lambda: (None, "not in this test"))
    out = tmp_path / "reports" / "tiny"
    assert main(["report", "--quick", "--engines", "numpy", "native-cpu", "--scenarios",
                 "zipf_training", "--out", str(out), "--asv-results", str(tmp_path),
                 "--no-progress"]) == 0
    for name in ("index.html", "report.md", "parity.csv", "perf.csv", "bench.json",
                 "parity_matrix.png", "family_zipf_training.png"):
        assert (out / name).exists(), name
    meta = json.loads((out / "bench.json").read_text())
    assert meta["profile"] == "quick" and meta["load"]["samples"] >= 2
    assert meta["sizes"] == [{"scenario": "zipf_training", "prefill": 0, "batch_size": 2000,
                              "steps": 4, "warmup": 1, "threads": 1}]


def test_report_never_silently_replaces_another_kind_of_run(tmp_path, monkeypatch):
    from lab.report import writer
    from lab.scenarios import profiles
    monkeypatch.setattr(writer, "oracle_table", lambda: (None, "not in this test"))
    common = ["--scenarios", "ttl_eviction", "--out", str(tmp_path / "r"), "--no-oracle",
              "--no-progress", "--asv-results", str(tmp_path)]
    base = ["--engines", "numpy", *common]
    assert main(["report", "--quick", *base]) == 0
    assert main(["report", "--quick", *base]) == 0                 # the same kind: refreshed
    assert main(["report", *base]) == 2                            # the default profile
    assert main(["report", "--quick", "--engines", "numpy", "native-cpu", *common]) == 2
    assert main(["report", *base, "--overwrite"]) == 0
    assert json.loads((tmp_path / "r" / "bench.json").read_text())["profile"] == "default"
    assert main(["report", "--quick", "--full", *base]) == 2
    assert main(["report", "--profile", "nope", *base]) == 2
    # each profile has a folder of its own
    folders = [profiles.rules(n)["out"] for n in profiles.names()]
    assert len(set(folders)) == len(folders)


def test_report_gate_profile_has_a_folder_of_its_own(tmp_path, monkeypatch, capsys):
    from lab.commands import report
    from lab.scenarios import profiles
    monkeypatch.chdir(tmp_path)
    assert "gate (reports/gate)" in report.description()
    # The gate's ten rounds per op would take most of a minute here: what is checked is
    # where the report goes and that it runs, so one short round.
    monkeypatch.setitem(profiles.PROFILES["gate"], "sampling",
                        {"rounds": 1, "min_samples": 3, "cap_s": 0.05, "warmup_s": 0.0})
    assert main(["report", "--profile", "gate", "--scenarios", "storage_ops", "--no-oracle",
                 "--no-progress", "--asv-results", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "-> reports/gate" in err
    folder = tmp_path / "reports" / "gate"
    for name in ("index.html", "report.md", "bench.json", "parity.csv", "perf.csv"):
        assert (folder / name).exists(), name
    meta = json.loads((folder / "bench.json").read_text())
    assert meta["profile"] == "gate"
    assert {e["label"] for e in meta["engines"]} == set(profiles.rules("gate")["engines"])
    # a profile without a folder (none today) is a usage error, never a traceback
    monkeypatch.setitem(profiles.PROFILES["gate"], "out", None)
    assert main(["report", "--profile", "gate"]) == 2
    err = capsys.readouterr().err
    assert "has no folder of its own; pass --out DIR" in err and "Traceback" not in err


def test_bad_engines_or_scenarios_are_refused_before_the_run_is_announced(
        tmp_path, monkeypatch, capsys, scenario_file):
    monkeypatch.chdir(tmp_path)
    for argv in (["report", "--engines", "no-such-engine"],
                 ["report", "--quick", "--engines", "numpy", "no-such-engine"],
                 ["report", "--scenarios", "no_such_scenario"],
                 ["run", scenario_file, "--engines", "no-such-engine"],
                 ["run", scenario_file, "--scenarios", "other", "--engines", "numpy"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("hashlab: ") and err.count("\n") == 1, (argv, err)
        assert "->" not in err and f"hashlab {argv[0]}:" not in err, (argv, err)
    assert not (tmp_path / "reports").exists()          # nothing written either


def test_report_profiles_resize_and_say_so():
    from lab.scenarios import profiles
    profiles.check()
    default = {s.name: s for s in profiles.catalog_for("default")}
    full = {s.name: s for s in profiles.catalog_for("full")}
    resized = [n for n in default if n not in full]
    assert resized and all("[" in n for n in resized)
    for name in resized:
        s = default[name]
        assert s.prefill < full[s.base_name].prefill
        assert s.params and name == f"{s.base_name}[" + ",".join(
            f"{k}={v}" for k, v in s.params.items()) + "]"
    notes = profiles.resize_notes("default")
    assert len(notes) == len(resized) and all("catalog:" in n for n in notes)
    assert all(s.steps == full[s.base_name].steps for s in default.values())
    quick = profiles.catalog_for("quick")
    assert [s.name for s in quick] == list(full)
    assert [s.to_dict() for s in quick] == [s.quick_version().to_dict()
                                            for s in profiles.catalog_for("full")]


@pytest.mark.parametrize("name,title", [("tfra", "TFRA"), ("torchrec", "TorchRec")])
def test_env_create(monkeypatch, tmp_path, capsys, name, title):
    from engines.peer.venv import PeerVenv
    made = []

    def create(self, path=None):
        made.append((self.name, path))
        return str(tmp_path / "bin/python")
    monkeypatch.setattr(PeerVenv, "create", create)
    assert main(["env", "create", name]) == 0
    assert main(["env", "create", name, "--path", str(tmp_path)]) == 0
    assert made == [(name, None), (name, str(tmp_path))]
    assert f"{title} environment ready" in capsys.readouterr().out

    def broken(self, path=None):
        raise RuntimeError("pip failed")
    monkeypatch.setattr(PeerVenv, "create", broken)
    assert main(["env", "create", name]) == 1
    assert "pip failed" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, f"engines.{name}.env", None)     # not importable
    assert main(["env", "create", name]) == 2
    assert "not importable" in capsys.readouterr().err
    assert main(["env", "create", "other"]) == 2


def _sweep(n):
    return "[" + ", ".join(str(i + 1) for i in range(n)) + "]"


HOSTILE_SCENARIOS = {
    "ids not a table": 'name = "x"\nids = 5\n',
    "tables not a list": 'name = "x"\ntables = 5\n',
    "vocab a string": 'name = "x"\n[ids]\nvocab = "many"\n',
    "steps a float": 'name = "x"\nsteps = 1e9\n',
    "steps too many": 'name = "x"\nsteps = 1000000000\n',
    "batch too large": 'name = "x"\nbatch_size = 100000000000\n',
    "prefill too large": 'name = "x"\nprefill = 100000000\nbatch_size = 4000000\n',
    "prefill memory": 'name = "x"\nprefill = 10000000\n[[tables]]\n'
                      'config = { dim = 1024, optimizer = "sgd" }\n',
    "work too large": 'name = "x"\nbatch_size = 4000000\nsteps = 1000\n',
    "sweep 199^3": (f'name = "x"\n[sweep]\nbatch_size = {_sweep(199)}\n'
                    f'threads = {_sweep(199)}\nsteps = {_sweep(199)}\n'),
    "nshards 99999": 'name = "x"\n[[ops]]\nop = "save"\nnshards = 99999\n',
    "table name ../../x": 'name = "x"\n[[tables]]\nname = "../../x"\n'
                          'config = { dim = 4, optimizer = "sgd" }\n',
    "table name /abs": 'name = "x"\n[[tables]]\nname = "/abs"\n'
                       'config = { dim = 4, optimizer = "sgd" }\n',
    "op table ../x": 'name = "x"\n[[ops]]\nop = "lookup"\ntable = "../x"\n',
    "table config nested": 'name = "x"\n[[tables]]\nconfig = { dim = { a = 1 } }\n',
    "learning_rates a string": 'name = "x"\n[[tables]]\nlearning_rates = "0.1"\n'
                               'config = { dim = 4, optimizer = "sgd" }\n',
    "enable_dedup a string": 'name = "x"\n[[ops]]\nop = "apply_gradients"\n'
                             'enable_dedup = "yes"\n',
    "filter capacity huge": 'name = "x"\n[[tables]]\nconfig = { dim = 4, optimizer = "sgd" }'
                            '\nhash_filter = { capacity = 1000000000000 }\n',
    "unknown filter key": 'name = "x"\n[[tables]]\nconfig = { dim = 4, optimizer = "sgd" }'
                          '\nhash_filter = { size = 10 }\n',
    "clock past uint32": 'name = "x"\nsteps = 100\nseconds_per_step = 100000000\n',
    "deep nesting": 'name = "x"\nparams = { a = ' + "[" * 5000 + "]" * 5000 + " }\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SCENARIOS))
def test_hostile_scenario_files_exit_2_with_one_line(tmp_path, capsys, name):
    path = tmp_path / "bad.toml"
    path.write_text(HOSTILE_SCENARIOS[name])
    assert main(["run", str(path), "--engines", "numpy", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hashlab: ") and "Traceback" not in err


@pytest.mark.parametrize("payload,suffix", [
    (b'name = "\xff\xfe"\n', ".toml"),
    (b"[" * 200_000 + b"]" * 200_000, ".json"),
    (b'{"scenarios": [' + b"[" * 3000 + b"]" * 3000 + b"]}", ".json"),
    (b"x" * (2 << 20), ".toml"),
    (b'{"name": "x", "ops": [{"op": "lookup", "batch": 1.5}]}', ".json"),
    (b'{"name": "x", "tags": "abc"}', ".json"),
])
def test_unreadable_scenario_files_exit_2(tmp_path, capsys, payload, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(payload)
    assert main(["run", str(path), "--engines", "numpy", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_checkpoints_stay_inside_the_run_folder(tmp_path, training_scenario):
    import engines
    from lab.scenarios.execute import ScenarioExecution
    ex = ScenarioExecution(training_scenario, engines.get("numpy"), str(tmp_path / "run"))
    assert ex._checkpoint_path("t0", 1, 2).startswith(str((tmp_path / "run").resolve()))
    for name in ("../../x", "/abs", "a/b", "../x"):
        with pytest.raises(ValueError, match="outside the run folder"):
            ex._checkpoint_path(name, 0, 0)


def test_bench_and_report_exit_1_on_parity_failure_after_writing(tmp_path, broken_engines,
                                                                monkeypatch):
    from lab.report import writer
    monkeypatch.setattr(writer, "oracle_table", lambda: (None, "not in this test"))
    bench = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--engines", "test-skipping-apply", "--scenarios",
                 "zipf_training", "--save", str(bench), "--no-progress",
                 "--time-cap", "0.2"]) == 1
    assert json.loads(bench.read_text())["parity"][0]["status"] == "fail"
    out = tmp_path / "report"
    assert main(["report", "--quick", "--engines", "test-skipping-apply", "--scenarios",
                 "zipf_training", "--out", str(out), "--asv-results", str(tmp_path),
                 "--no-progress"]) == 1
    for name in ("index.html", "report.md", "parity.csv", "bench.json"):
        assert (out / name).exists(), name


def test_bench_profile_and_measure_options(tmp_path, capsys):
    assert main(["bench", "--profile", "gate", "--scenarios", "storage_ops"]) == 2
    assert main(["bench", "--profile", "gate", "--quick"]) == 2
    assert main(["bench", "--profile", "nope"]) == 2
    assert main(["bench", "--quick", "--time-cap", "0", "--engines", "numpy"]) == 2
    assert main(["bench", "--measure", "cpu"]) == 2
    assert capsys.readouterr().err.count("Traceback") == 0
