"""Named, seeded, declarative workloads shared by the parity runner, the timing runner, the
asv suites and the report. See `model` (the dataclasses), `catalog` (the built-ins), `files`
(TOML/JSON) and `execute` (running one on an engine)."""
from __future__ import annotations

from lab.scenarios.catalog import ALL_OPTIMIZERS, catalog, names
from lab.scenarios.files import dump_json, load_file, parse_text
from lab.scenarios.model import (IdSpec, OpSpec, Scenario, ScenarioError, TableDef)

__all__ = ["ALL_OPTIMIZERS", "IdSpec", "OpSpec", "Scenario", "ScenarioError", "TableDef",
           "catalog", "dump_json", "load_file", "names", "parse_text", "select"]


def select(wanted=None, quick: bool = False, scenarios=None) -> list[Scenario]:
    """Concrete scenarios (sweeps expanded, `--quick` applied) from `scenarios` (default: the
    catalog), keeping those whose name or base name is in `wanted` (all when None)."""
    pool = list(catalog() if scenarios is None else scenarios)
    if wanted:
        known = {s.name for s in pool} | {s.base_name for s in pool}
        unknown = [w for w in wanted if w not in known and not any(
            v.name == w for s in pool for v in s.resolved(quick))]
        if unknown:
            raise ScenarioError(f"unknown scenario(s) {unknown}; known: {sorted(known)}")
    out = []
    for s in pool:
        for v in s.resolved(quick):
            if not wanted or {s.name, s.base_name, v.name} & set(wanted):
                out.append(v)
    return out
