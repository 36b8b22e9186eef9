"""Named selections of the catalog at named sizes: what `hashlab report` (and other commands)
run by default, with `--full` or with `--quick`.

`PROFILES` maps a profile name to plain rules:

- `description`: one paragraph for people (the README and the report show it).
- `out`: the report folder this profile writes by default; each profile has its own, so one
  kind of run never overwrites another.
- `quick`: apply every scenario's own `quick` overrides (its smoke-test size).
- `scenarios`: catalog names, or single sweep variants by their full name, to run (None: the
  whole catalog).
- `resize`: catalog name -> field overrides, in the form a scenario's `quick` takes. A resized
  scenario is renamed `name[field=value,...]`, so no table or chart passes it off as the
  full-size one, and the report lists every resize (`rename: False` keeps the catalog names:
  the gate compares runs of its own profile only).
- `engines`: the engines it is meant for when the command gets no `--engines` (None: all).
- `sampling`: overrides of the wall-clock `lab.timing.Sampling` settings (e.g. `rounds`).
- `ab`: what `hashlab ab` does differently with this profile: `rounds`, `alpha`, and
  `sampling` overrides applied on top of `sampling`.
- `memory`: also measure each op's memory (peak and bytes allocated, `lab.timing.memory`) in
  a pass after the timing, for the gate to compare (`hashlab bench --no-memory` leaves it
  out).

Add a profile by adding an entry; `rules(name)` fills in the keys it leaves out.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from lab.scenarios.catalog import catalog
from lab.scenarios.model import Scenario, ScenarioError

DEFAULT = "default"

# The reference engines save and restore a checkpoint entry by entry in Python: numpy about
# 0.05 ms and tensorflow about 0.4 ms per entry and run on this project's 2-core machine, and
# every engine runs a scenario twice (parity, then timing). At 1 M and 4 M entries that is
# most of an hour; a 100th of the entries writes the same files, shard layout and code paths.
_CHECKPOINT_OPS_4_SHARDS = ({"op": "save", "nshards": 4}, {"op": "restore", "fresh": True},
                            {"op": "size"})

PROFILES: dict[str, dict[str, Any]] = {
    "default": {
        "description": "The whole catalog, with the two checkpoint scenarios at a 100th of "
                       "their entries (checkpoint_1m at 10,000, checkpoint_4m at 40,000 in "
                       "4 shards), because the reference engines write and read checkpoints "
                       "entry by entry in Python. `--full` runs them at 1 M and 4 M.",
        "out": "reports/latest",
        "quick": False,
        "resize": {
            "checkpoint_1m": {"prefill": 10_000},
            "checkpoint_4m": {"prefill": 40_000, "ops": _CHECKPOINT_OPS_4_SHARDS},
            # 1 M rows (270 MB with Adagrad state) are still 8x the last-level cache of our
            # 2-core machine; 4 M would cost the reference engines minutes of prefill.
            "large_table": {"prefill": 1_000_000, "ids": {"vocab": 1_000_000}},
        },
    },
    "full": {
        "description": "The whole catalog at full size, checkpoints of 1 M and 4 M entries "
                       "included.",
        "out": "reports/full",
        "quick": False,
    },
    "quick": {
        "description": "Every scenario at its `quick` size: a smoke test of the whole "
                       "pipeline. Its batches are so small that the timings are mostly noise.",
        "out": "reports/quick",
        "quick": True,
    },
    "gate": {
        "description": "The CI gate (`hashlab bench --profile gate`): every op family (storage "
                       "ops, optimizer updates with and without dedup, lookups, entries, "
                       "save/restore, the hash filter, fused ops) at sizes where one call takes "
                       "about 0.1-30 ms on native-cpu, one thread, in ten short rounds (a fresh "
                       "table each round, spread over the run). About 2 minutes on a 2-core "
                       "machine, parity and the memory pass included.",
        "out": "reports/gate",
        "quick": False,
        "scenarios": ("storage_ops", "monolith_optimize[threads=1,dedup=True]",
                      "lookup_sweep[batch_size=10000,dim=32]", "optimizer_sweep[optimizer=adam]",
                      "checkpoint_1m", "hash_filter_admission", "fused_multi_table",
                      "large_table"),
        "resize": {"storage_ops": {"steps": 3},
                   # 1 M rows with Adagrad state: 270 MB, 8x the last-level cache of our
                   # 2-core machine (and 30x callgrind's 8 MiB model), so a memory-pattern
                   # regression shows at its real size on a quiet runner too.
                   "large_table": {"prefill": 1_000_000, "ids": {"vocab": 1_000_000},
                                   "batch_size": 20_000, "steps": 2},
                   "monolith_optimize": {"batch_size": 100_000, "steps": 2},
                   "lookup_sweep": {"steps": 3},
                   "optimizer_sweep": {"steps": 2},
                   "checkpoint_1m": {"prefill": 100_000},
                   "fused_multi_table": {"steps": 2}},
        "rename": False,
        "engines": ("native-cpu",),
        # Ten short rounds instead of one long one: a second run differs from the first by
        # the spread between rounds (fresh tables, other moments), which one round cannot show.
        "sampling": {"rounds": 10, "min_samples": 5, "cap_s": 0.4, "warmup_s": 0.2},
        # `hashlab ab`: base and head step by step in one window, so a round's paired ratio
        # is known from fewer samples; the rounds are what the paired test needs
        # (lab.gate.paired.min_rounds_for: 12 for this profile's 20 gated ops at alpha 0.01).
        "ab": {"rounds": 12, "sampling": {"cap_s": 0.25, "warmup_s": 0.1}},
        # Peak memory and bytes allocated per op, gated like time (after the timing).
        "memory": True,
    },
}

_DEFAULT_RULES = {"description": "", "out": None, "quick": False, "scenarios": None,
                  "resize": {}, "rename": True, "engines": None, "sampling": {}, "ab": {},
                  "memory": False}


def names() -> list[str]:
    return list(PROFILES)


def rules(name: str) -> dict[str, Any]:
    """A profile's rules with every key present; ScenarioError (a ValueError) naming the
    profile if unknown."""
    if name not in PROFILES:
        raise ScenarioError(f"profile: unknown profile {name!r}; known: {names()}")
    return {**_DEFAULT_RULES, **PROFILES[name]}


def _resized(scenario: Scenario, overrides: Mapping[str, Any], rename: bool) -> Scenario:
    scalars = {k: v for k, v in overrides.items() if isinstance(v, (int, float, str, bool))}
    out = scenario.with_overrides(overrides)
    if not scalars or not rename:
        return out
    label = ",".join(f"{k}={v}" for k, v in scalars.items())
    return dataclasses.replace(out, name=f"{scenario.name}[{label}]",
                               params={**out.params, **scalars})


def catalog_for(name: str) -> list[Scenario]:
    """The catalog scenarios a profile runs (before sweeps are expanded), resized as it says
    and with its `quick` rule applied."""
    r = rules(name)
    wanted = r["scenarios"]
    out = []
    for s in catalog():
        if wanted is not None and _base(s.name) not in {_base(w) for w in wanted}:
            continue
        if r["quick"]:
            s = s.quick_version()
        if s.name in r["resize"]:                 # the profile's own sizes win
            s = _resized(s, r["resize"][s.name], r["rename"])
        out.append(s)
    return out


def _base(name: str) -> str:
    return name.split("[", 1)[0]


def profile_scenarios(name: str) -> list[Scenario]:
    """The concrete scenarios of a profile: its catalog scenarios resized, sweeps expanded and
    narrowed to the variants it names."""
    from lab.scenarios import select
    r = rules(name)
    return select(list(r["scenarios"]) if r["scenarios"] else None, quick=False,
                  scenarios=catalog_for(name))


def resize_notes(name: str) -> list[str]:
    """One sentence per scenario the profile runs at another size than the catalog's."""
    r = rules(name)
    notes = []
    for s in catalog():
        overrides = r["resize"].get(s.name)
        if overrides is None:
            continue
        changed = ", ".join(f"{k} {_plain(v)}" + ("" if k == "ops" else
                                                   f" (catalog: {_plain(getattr(s, k))})")
                            for k, v in overrides.items())
        notes.append(f"{s.name}: {changed}")
    return notes


def _plain(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (tuple, list)):
        return ", ".join(_op_text(v) for v in value)
    return str(value)


def _op_text(op) -> str:
    d = op if isinstance(op, Mapping) else op.to_dict()
    args = ", ".join(f"{k}={v}" for k, v in d.items() if k != "op")
    return f"{d['op']}({args})"


def check() -> None:
    """Every profile refers to catalog scenarios and fields that exist (run by the tests)."""
    known = {s.name: s for s in catalog()}
    for name in PROFILES:
        r = rules(name)
        for sname in list(r["resize"]) + [_base(n) for n in r["scenarios"] or ()]:
            if sname not in known:
                raise ScenarioError(f"profile {name}: no catalog scenario {sname!r}")
        for sname, overrides in r["resize"].items():
            known[sname].with_overrides(overrides)
