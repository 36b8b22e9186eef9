"""docs/scenarios.md and `hashlab scenarios`: the documented format is the real one, and every
catalog scenario prints as a TOML file that `hashlab run` loads back unchanged."""
import dataclasses
import pathlib
import re

import pytest

from lab import scenarios
from lab.cli import build_parser, main
from lab.scenarios.model import ID_KINDS, OP_ARGS, IdSpec, Scenario, TableDef

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_doc_example_prefills_and_runs(tmp_path, capsys):
    block = re.search(r"```toml\n(.*?)```", _doc(), re.S).group(1)
    (example,) = scenarios.parse_text(block, "toml")
    assert example.prefill > 0
    path = tmp_path / "my.toml"
    path.write_text(block)
    assert main(["run", str(path), "--engines", "numpy", "--no-timing", "--no-progress",
                 "--out", str(tmp_path / "results")]) == 0
    printed = capsys.readouterr().out
    assert example.name in printed and "pass" in printed


def test_doc_names_every_field_id_kind_and_op():
    doc = _doc()
    names = ({f.name for f in dataclasses.fields(Scenario)} - {"params"}
             | {f.name for f in dataclasses.fields(TableDef)}
             | {f.name for f in dataclasses.fields(IdSpec)}
             | set(ID_KINDS) | set(OP_ARGS)
             | {arg for args in OP_ARGS.values() for arg in args})
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"docs/scenarios.md does not describe {missing}"


def test_run_help_points_to_the_doc(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    assert "docs/scenarios.md" in capsys.readouterr().out


def test_scenarios_lists_the_catalog(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in scenarios.names():
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), name
    assert main(["scenarios", "no_such_scenario"]) == 2


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("name", scenarios.names())
def test_every_catalog_scenario_round_trips_through_printed_toml(name, quick, tmp_path,
                                                                   capsys):
    argv = ["scenarios", name] + (["--quick"] if quick else [])
    assert main(argv) == 0
    path = tmp_path / f"{name}.toml"
    path.write_text(capsys.readouterr().out)
    (loaded,) = scenarios.load_file(str(path))        # what `hashlab run FILE` reads
    (original,) = [s for s in scenarios.catalog() if s.name == name]
    if quick:
        original = original.quick_version()
    assert loaded.to_dict() == original.to_dict()
    # the variants `hashlab run` executes are the catalog's own, at both sizes
    for size in (False, True):
        assert [v.to_dict() for v in loaded.resolved(size)] == \
            [v.to_dict() for v in original.resolved(size)]


def test_a_printed_scenario_runs(tmp_path, capsys):
    assert main(["scenarios", "hash_filter_admission", "--quick"]) == 0
    path = tmp_path / "filter.toml"
    path.write_text(capsys.readouterr().out)
    assert main(["run", str(path), "--engines", "numpy", "native-cpu", "--no-timing",
                 "--no-progress", "--out", str(tmp_path / "results")]) == 0
