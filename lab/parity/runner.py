"""The parity runner: every scenario on every selected engine, each op's outputs compared to
the numpy reference's.

The reference runs once per scenario (outputs kept, checkpoint files kept on disk); each
engine then runs the same steps in its own directory and every op is compared as it comes.
Rows are tidy: one per (scenario, engine, threads, step, op) with status pass / fail /
known_divergence / skipped, the worst abs / rel / ulp error, the declared bound of a known
divergence and a note.

A mismatch that a known divergence covers (lab.parity.divergences) is compared again within
the divergence's declared bound, scaled by the optimizer steps the table has taken when the
bound is per step: within it the op is `known_divergence`, beyond it `fail`. Later ops on a
table that diverged (lookups, checkpoints) are held to the same bound.
"""
from __future__ import annotations

import collections
import shutil
import tempfile
import textwrap
import traceback

import pandas as pd

import engines
from engines.api import Divergence
from lab.parity import divergences
from lab.parity.compare import EXACT, ULP, Policy, compare_outputs
from lab.scenarios.execute import ScenarioExecution, skipped_op_reason, unsupported_reason
from lab.scenarios.model import OPTIMIZER_OPS, Scenario

REFERENCE = "numpy"
PASS, FAIL, KNOWN, SKIPPED = "pass", "fail", "known_divergence", "skipped"
STATUS_ORDER = (PASS, SKIPPED, KNOWN, FAIL)          # worst last
COLUMNS = ["scenario", "engine", "threads", "step", "op_index", "op", "status", "max_abs_err",
           "max_rel_err", "max_ulp", "bound", "note"]


class ReferenceError(RuntimeError):
    """The reference engine itself failed: the scenario is broken, not an engine."""


def _row(scenario, engine, threads, step, index, op, status, stats=None, note="", bound=""):
    return {"scenario": scenario.name, "engine": engine, "threads": threads, "step": step,
            "op_index": index, "op": op, "status": status,
            "max_abs_err": stats.max_abs_err if stats else float("nan"),
            "max_rel_err": stats.max_rel_err if stats else float("nan"),
            "max_ulp": stats.max_ulp if stats else float("nan"), "bound": bound, "note": note}


def _within_divergence(got, ref, covering, steps, policy):
    """(status, bound text, note) of a mismatch that known divergences cover: [(key,
    declaration)], all of them on the op's tables; the loosest bound of each kind applies."""
    keys = ", ".join(key for key, _ in covering)
    why = " / ".join(divergences.explanation(d) for _, d in covering)
    unbounded = [key for key, d in covering if not isinstance(d, Divergence)]
    if unbounded:
        return FAIL, "", (f"{keys}: {why} | the engine declares {', '.join(unbounded)} "
                          f"without a bound (declare engines.Divergence(why, max_ulp=..., "
                          f"max_rel=...)), so it cannot excuse a mismatch")
    bounds = [d.bound(steps) for _, d in covering]
    rels = [rel for _, rel, _ in bounds if rel is not None]
    loosest = Policy(max(ulp for ulp, _, _ in bounds), max(floor for _, _, floor in bounds),
                     max(rels) if rels else None)
    bound = "; ".join(f"{key}: {d.describe(steps)}" if len(covering) > 1 else d.describe(steps)
                      for key, d in covering)
    within = compare_outputs(got.output, ref.output, ULP, loosest)
    if within.ok:
        return KNOWN, bound, f"{keys}: {why}"
    return FAIL, bound, f"{keys}: exceeds the declared bound ({bound}): {within.note} | {why}"


def run_reference(scenario: Scenario, workdir: str) -> list:
    try:
        ex = ScenarioExecution(scenario, engines.get(REFERENCE), workdir, capture=True)
        ex.setup()
        return list(ex.run())
    except Exception as exc:
        raise ReferenceError(f"scenario {scenario.name}: the {REFERENCE} reference failed: "
                             f"{type(exc).__name__}: {exc}") from exc


def scenario_skip_reason(choice, scenario: Scenario) -> str | None:
    return unsupported_reason(choice.capabilities, scenario)


def compare_engine(scenario: Scenario, choice, reference: list, workdir: str,
                   policy: Policy = Policy()) -> list[dict]:
    """Rows for one engine on one scenario, given the reference's outcomes."""
    label, threads = choice.label, scenario.threads
    reason = scenario_skip_reason(choice, scenario)
    if reason:
        return [_row(scenario, label, threads, None, None, "*", SKIPPED, note=reason)]
    try:
        engine = choice.make(threads)
        skip = {}
        for i, op in enumerate(scenario.ops):
            why = skipped_op_reason(engine, op)
            if why:
                skip[i] = why
        ex = ScenarioExecution(scenario, engine, workdir, capture=True)
        ex.setup()
        outcomes = ex.run(skip=frozenset(skip))
    except Exception as exc:
        return [_row(scenario, label, threads, None, None, "setup", FAIL,
                     note=f"error: {type(exc).__name__}: {exc}")]

    rows, touched, tainted = [], set(), {}
    steps = collections.Counter()             # optimizer ops each table has taken so far
    known = choice.known_divergences
    for ref in reference:
        op = scenario.ops[ref.index]
        if ref.index in skip:
            rows.append(_row(scenario, label, threads, ref.step, ref.index, ref.op, SKIPPED,
                             note=skip[ref.index]))
            continue
        try:
            got = next(outcomes)
        except Exception as exc:
            rows.append(_row(scenario, label, threads, ref.step, ref.index, ref.op, FAIL,
                             note=_error_note(exc)))
            return rows
        mode = ULP if touched & set(ref.tables) else EXACT
        if op.op in OPTIMIZER_OPS:
            steps.update(ref.tables)
        verdict = compare_outputs(got.output, ref.output, mode, policy)
        status, note, bound = PASS, verdict.note, ""
        if not verdict.ok:
            optimizers = [o for name in ref.tables for o in scenario.table(name).optimizers()]
            found = divergences.match(known, ref.op, optimizers)
            earlier = [c for n in ref.tables for c in tainted.get(n, [])]
            if found or earlier:
                covering = found or [(f"follows {key}", d) for key, d in earlier]
                status, bound, why = _within_divergence(
                    got, ref, covering, max(steps[n] for n in ref.tables), policy)
                note = f"{why} | {verdict.note}"
                for n in ref.tables:
                    tainted.setdefault(n, found or earlier)
            else:
                status = FAIL
        rows.append(_row(scenario, label, threads, ref.step, ref.index, ref.op, status,
                         verdict.stats, f"[{mode}] {note}".strip() if note else f"[{mode}]",
                         bound))
        if op.op in OPTIMIZER_OPS:
            touched.update(ref.tables)
    return rows


MAX_NOTE = 1000


def _error_note(exc: Exception) -> str:
    """The note of a call that raised: its error and the last traceback line, whole words
    only (an overlong message is shortened at a word boundary, with an ellipsis)."""
    last = traceback.format_exc(limit=-1).strip().splitlines()[-1]
    return textwrap.shorten(f"error: {type(exc).__name__}: {exc}; {last}", MAX_NOTE,
                            placeholder=" …")


def run_parity(scenarios, choices, unusable=(), policy: Policy = Policy(),
               progress: bool = False, workdir: str | None = None) -> pd.DataFrame:
    """Parity rows (COLUMNS) for every scenario x engine; unusable engines are listed as
    skipped with their reason."""
    from tqdm import tqdm
    rows = []
    root = tempfile.mkdtemp(prefix="hashlab-parity-", dir=workdir)
    bar = tqdm(total=len(scenarios) * max(len(choices), 1), desc="parity", unit="run",
               disable=not progress, leave=False)
    try:
        for scenario in scenarios:
            for label, reason in unusable:
                rows.append(_row(scenario, label, scenario.threads, None, None, "*", SKIPPED,
                                 note=f"engine unavailable: {reason}"))
            ref_dir = tempfile.mkdtemp(prefix="ref-", dir=root)
            reference = None
            for choice in choices:
                bar.set_postfix_str(f"{scenario.name} / {choice.label}", refresh=True)
                if scenario_skip_reason(choice, scenario) is None and reference is None:
                    reference = run_reference(scenario, ref_dir)
                eng_dir = tempfile.mkdtemp(prefix="eng-", dir=root)
                rows.extend(compare_engine(scenario, choice, reference or [], eng_dir, policy))
                shutil.rmtree(eng_dir, ignore_errors=True)
                bar.update(1)
            shutil.rmtree(ref_dir, ignore_errors=True)
    finally:
        bar.close()
        shutil.rmtree(root, ignore_errors=True)
    return pd.DataFrame(rows, columns=COLUMNS)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (engine, scenario): the worst status, worst errors (measured) beside the
    declared bound of a known divergence, and the first note of the worst status (skip
    reasons included)."""
    out = []
    for (engine, scenario), grp in rows.groupby(["engine", "scenario"], sort=False):
        ranks = grp["status"].map(STATUS_ORDER.index)
        worst = STATUS_ORDER[int(ranks.max())]
        if worst == SKIPPED and (grp["status"] == PASS).any():
            worst = PASS                      # some read-only ops skipped, the rest passed
        first = grp[grp["status"] == worst]
        note = first["note"].iloc[0] if len(first) else ""
        bounds = grp.loc[grp["bound"].fillna("") != "", "bound"]
        out.append({"engine": engine, "scenario": scenario, "status": worst,
                    "max_abs_err": grp["max_abs_err"].max(),
                    "max_rel_err": grp["max_rel_err"].max(),
                    "max_ulp": grp["max_ulp"].max(),
                    # the declared bound at its widest (the last step's, when per step)
                    "bound": bounds.iloc[-1] if len(bounds) else "",
                    "steps_compared": int(grp["status"].isin([PASS, FAIL, KNOWN]).sum()),
                    "note": note if worst != PASS else ""})
    return pd.DataFrame(out, columns=["engine", "scenario", "status", "max_abs_err",
                                      "max_rel_err", "max_ulp", "bound", "steps_compared",
                                      "note"])
