"""Named selections of the catalog (`hashlab bench --profile NAME`).

A profile picks catalog scenarios (or single sweep variants, by their full name), may resize
them with `overrides` (base scenario name -> field overrides, in the form of a scenario's
`quick`), and names the engines it is meant for. Add a profile by adding an entry to PROFILES.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from lab.scenarios import select
from lab.scenarios.catalog import catalog
from lab.scenarios.model import Scenario, ScenarioError


@dataclasses.dataclass(frozen=True)
class Profile:
    description: str
    scenarios: tuple                                  # catalog or variant names
    engines: tuple | None = None                      # default engines (--engines wins)
    quick: bool = False        # select from the `--quick` catalog (names are of its variants)
    overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "gate": Profile(
        description="The CI gate: every op family (storage ops, optimizer updates with and "
                    "without dedup, lookups, entries, save/restore, the hash filter, fused "
                    "ops) at sizes where one call takes about 0.1-30 ms on native-cpu, one "
                    "thread. About 2-3 minutes on a 2-core machine, parity included.",
        scenarios=("storage_ops", "monolith_optimize[threads=1,dedup=True]",
                   "lookup_sweep[batch_size=10000,dim=32]", "optimizer_sweep[optimizer=adam]",
                   "checkpoint_1m", "hash_filter_admission", "fused_multi_table"),
        engines=("native-cpu",),
        overrides={"storage_ops": {"steps": 3},
                   "monolith_optimize": {"batch_size": 100_000, "steps": 2},
                   "lookup_sweep": {"steps": 3},
                   "optimizer_sweep": {"steps": 2},
                   "checkpoint_1m": {"prefill": 100_000},
                   "fused_multi_table": {"steps": 2}}),
}


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ScenarioError(f"unknown profile {name!r}; known: {sorted(PROFILES)}")
    return PROFILES[name]


def profile_scenarios(name: str) -> list[Scenario]:
    """The concrete scenarios of a profile (overrides applied, sweeps expanded). A profile
    fixes its own sizes, so there is no `--quick` on top of it."""
    prof = profile(name)
    pool = [s.with_overrides(prof.overrides.get(s.name, {})) for s in catalog()]
    unknown = sorted(set(prof.overrides) - {s.name for s in pool})
    if unknown:
        raise ScenarioError(f"profile {name!r}: overrides for unknown scenario(s) {unknown}")
    return select(list(prof.scenarios), quick=prof.quick, scenarios=pool)
