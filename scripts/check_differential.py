"""The differential-profile acceptance (issue 21), checked on a `hashlab ab` session's ab.json:

    hashlab ab HEAD HEAD+scripts/regression_zoo/gradient_probe.patch --measure simulated \
        --out reports/ci-diffprof
    python -P scripts/check_differential.py reports/ci-diffprof/ab.json

The zoo's gradient_probe patch adds a second hash probe per id to the native engine's
gradient path only (the update loop of Table::apply_gradients; results unchanged). The gate
must flag apply ops and no lookup op, and for every apply op it flags, name the probing
function (the update loop, whose C++ name contains `Table::apply_gradients`) among the three
functions whose inclusive cost grew most. Exit 0 when it does, 1 (saying what is wrong)
otherwise. `.ci/run` runs it in every CI run.
"""
from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

ZOO = Path(__file__).resolve().parent / "regression_zoo" / "zoo.toml"
PROBING = "Table::apply_gradients"


def check(ab: dict, head: str = "head") -> list[str]:
    """The failures (empty: the acceptance holds), after printing what the gate found."""
    affects = set(tomllib.loads(ZOO.read_text())["gradient_probe"]["affects"])
    verdicts = ab["heads"][head]["verdicts"]
    flagged = [v for v in verdicts if v["verdict"] == "REGRESSION"]
    diffs = {(d["scenario"], d["op"], d["op_index"]): d
             for d in ab["heads"][head].get("differential", [])}
    problems = []
    lookups = [v for v in flagged if "lookup" in v["op"]]
    if lookups:
        problems.append("lookup ops flagged: " + ", ".join(f"{v['scenario']} {v['op']}"
                                                           for v in lookups))
    others = [v for v in flagged if v["op"] not in affects and "lookup" not in v["op"]]
    if others:
        problems.append("ops outside the patch's reach flagged: "
                        + ", ".join(f"{v['scenario']} {v['op']}" for v in others))
    applied = [v for v in flagged if v["op"] in affects]
    if not applied:
        problems.append("no apply op flagged")
    for v in applied:
        d = diffs.get((v["scenario"], v["op"], v["op_index"]))
        top = [f["name"] for f in (d or {}).get("functions", [])[:3]]
        where = next((i for i, name in enumerate(top, 1) if PROBING in name), None)
        print(f"{v['scenario']} {v['op']} (op {v['op_index']}): {v['change']:.3f}x in "
              f"{v['basis']}; top grown: " + "; ".join(top))
        if where is None:
            problems.append(f"{v['scenario']} {v['op']}: the probing function ({PROBING}) is "
                            f"not among the top three grown functions: {top}")
    return problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(json.loads(Path(argv[0]).read_text()))
    for p in problems:
        print(f"FAIL: {p}")
    if not problems:
        print("differential profiles: the gate names the probing function among the top three "
              "for every apply op it flags, and flags no lookup op")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
