"""The regression gate on two bench JSON files (`hashlab bench --save`).

What each wall-clock op is compared on (`basis`):
- "time", the engine's own seconds, when both runs come from the same kind of machine
  (`lab.gate.inputs.same_machine`; the default "auto" picks it then). On our 2-core machine
  the engine's time is 2-3x steadier from one round to the next than its ratio to the dense
  `take` baseline: the baseline is a short memory-bound call whose speed depends on what the
  engine call just left in the caches, so dividing by it adds noise instead of removing it;
- "ratio", the paired ratio samples (engine time / baseline time, measured back to back in
  the same run; `lab.timing.sampling`), when the runs come from different machines: a
  uniformly slower or faster machine cancels out.
Per op (`lab.gate.significance` has the statistics):

- REGRESSION: the change (median now / before) is above `threshold` AND significant:
  Mann-Whitney U p-value, Benjamini-Hochberg adjusted over the ops compared, below `alpha`.
- improved: significant and below 1 / threshold.
- unstable: neither, but the 95% CI of the change still reaches past the threshold either
  way (or there are too few samples to test): too noisy to decide. Reported, never failing.
- ok: anything else (no change, or a significant one within the threshold).

Simulated-cost runs (`--measure simulated`) are compared on each op's own cost (the simulated
machine is always the same) and have no noise: there the change itself decides.
A parity status that is `fail` now and was not before fails the gate whatever the speed.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from lab.gate.inputs import KEY, GateUsageError, parity_rows, perf_rows, same_machine
from lab.gate.significance import adjust, compare_samples

# The measured false-alarm rate sets these (docs/measurement.md): wall-clock runs of the same
# code on a 2-core machine with one core busy differ by up to 1.17x on single ops (1.34x when
# the whole machine slows down for a minute); simulated costs differ by about 1%.
DEFAULT_THRESHOLDS = {"wall": 1.20, "simulated": 1.10}
DEFAULT_ALPHA = 0.01
REGRESSION, IMPROVED, OK, UNSTABLE = "REGRESSION", "improved", "ok", "unstable"
AUTO, TIME, RATIO, COST = "auto", "time", "ratio", "cost"
BASES = (AUTO, TIME, RATIO)
PERF_COLUMNS = [*KEY, "measure", "basis", "base_median", "current_median", "change", "ci_low",
                "ci_high", "p", "q", "replicates", "verdict"]

__all__ = ["BASES", "DEFAULT_ALPHA", "DEFAULT_THRESHOLDS", "GateResult", "GateUsageError",
           "compare", "render"]


@dataclasses.dataclass
class GateResult:
    perf: pd.DataFrame           # one row per compared op
    parity: pd.DataFrame         # one row per engine x scenario of the current run
    threshold: float
    alpha: float
    not_gated: int = 0           # ops without a baseline ratio (e.g. size)
    basis: str = RATIO           # what wall-clock ops were compared on (time or ratio)
    basis_why: str = ""

    def count(self, verdict: str) -> int:
        return int((self.perf["verdict"] == verdict).sum()) if len(self.perf) else 0

    @property
    def regressions(self) -> int:
        return self.count(REGRESSION)

    @property
    def new_failures(self) -> int:
        return int(self.parity["new_failure"].sum()) if len(self.parity) else 0

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions or self.new_failures else 0


def _check_settings(threshold: float | None, alpha: float, basis: str) -> None:
    if basis not in BASES:
        raise GateUsageError(f"--basis must be one of {BASES}, got {basis!r}")
    if threshold is not None and not (isinstance(threshold, (int, float))
                                      and math.isfinite(threshold) and threshold > 1.0):
        raise GateUsageError(f"--threshold must be a finite number > 1.0, got {threshold}")
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise GateUsageError(f"--alpha must be between 0 and 1, got {alpha}")


def _verdict(change, ci_low, ci_high, q, threshold, alpha) -> str:
    significant = q == q and q < alpha
    if significant and change > threshold:
        return REGRESSION
    if significant and change < 1.0 / threshold:
        return IMPROVED
    if not (ci_low == ci_low and ci_high == ci_high):
        return UNSTABLE                            # too few samples to test
    if not significant and (ci_high > threshold or ci_low < 1.0 / threshold):
        return UNSTABLE
    return OK


def _wall_basis(basis: str, current: dict, baseline: dict, pairs) -> tuple[str, str]:
    """(basis, why) for the wall-clock ops; GateUsageError when `time` is asked for and a run
    lacks the engine's times."""
    timed = all(cur["times"] and base["times"] for cur, base in pairs)
    if basis == TIME and not timed:
        raise GateUsageError("--basis time: a run has no samples_s for an op both runs have; "
                             "re-run `hashlab bench` or use --basis ratio")
    if basis != AUTO:
        return basis, "as asked (--basis)"
    if not same_machine(current, baseline):
        return RATIO, "the runs name different machines (or none)"
    if not timed:
        return RATIO, "a run has no samples_s"
    return TIME, "both runs were made on the same kind of machine"


def compare(current: dict, baseline: dict, threshold: float | None = None,
            alpha: float = DEFAULT_ALPHA, names=("current", "baseline"),
            basis: str = AUTO) -> GateResult:
    """`threshold` None: DEFAULT_THRESHOLDS of the runs' measure (wall if any op is)."""
    _check_settings(threshold, alpha, basis)
    cur_perf, base_perf = perf_rows(current, names[0]), perf_rows(baseline, names[1])
    pairs, not_gated = [], 0
    for key, cur in cur_perf.items():
        base = base_perf.get(key)
        if base is None:
            continue
        if cur["measure"] != base["measure"]:
            raise GateUsageError(f"{key}: the current run was measured {cur['measure']!r} and "
                                 f"the baseline {base['measure']!r}; compare like with like")
        if base["ratio"] is None:
            not_gated += 1                         # no baseline ratio to compare with
            continue
        if cur["ratio"] is None:
            raise GateUsageError(f"{names[0]}: {key} has no ratio_to_baseline while the "
                                 f"baseline run has one")
        pairs.append((key, cur, base))
    wall = [(cur, base) for _, cur, base in pairs if cur["measure"] == "wall"]
    wall_basis, why = _wall_basis(basis, current, baseline, wall) if wall else (RATIO, "")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS["wall" if wall or not pairs else "simulated"]
    rows = []
    for key, cur, base in pairs:
        on = COST if cur["measure"] == "simulated" else wall_basis
        field = "times" if on == TIME else "samples"
        cmp = compare_samples(cur[field], base[field], exact=on == COST,
                              current_rounds=cur["rounds"], baseline_rounds=base["rounds"])
        rows.append(dict(zip(KEY, key), measure=cur["measure"], basis=on,
                         base_median=float(np.median(base[field])),
                         current_median=float(np.median(cur[field])), change=cmp.change,
                         ci_low=cmp.ci_low, ci_high=cmp.ci_high, p=cmp.p,
                         replicates=cmp.replicates))
    perf = pd.DataFrame(rows, columns=PERF_COLUMNS)
    if len(perf):
        wall = perf["measure"] == "wall"
        perf["q"] = perf["p"]                      # simulated: exact, nothing to adjust
        if wall.any():
            perf.loc[wall, "q"] = adjust(perf.loc[wall, "p"].tolist())
        perf["verdict"] = [_verdict(r.change, r.ci_low, r.ci_high, r.q, threshold, alpha)
                           for r in perf.itertuples()]

    cur_par, base_par = parity_rows(current, names[0]), parity_rows(baseline, names[1])
    prow = [{"engine": e, "scenario": s, "base_status": base_par.get((e, s), "absent"),
             "current_status": status,
             "new_failure": status == "fail" and base_par.get((e, s)) != "fail"}
            for (e, s), status in cur_par.items()]
    parity = pd.DataFrame(prow, columns=["engine", "scenario", "base_status", "current_status",
                                         "new_failure"])
    if perf.empty and not not_gated and not any(k in base_par for k in cur_par):
        raise GateUsageError("no common engine x scenario results between the two files "
                             "(different --engines / --scenarios / --profile / --quick?)")
    return GateResult(perf, parity, threshold, alpha, not_gated, wall_basis, why)


def _op_name(r) -> str:
    return f"{r.engine} {r.scenario} {r.op} (op {r.op_index}, {r.threads} thread(s))"


def _median_text(r) -> str:
    if r.basis == TIME:
        return f"median {r.base_median * 1e3:.4g} -> {r.current_median * 1e3:.4g} ms"
    return f"median ratio {r.base_median:.4g} -> {r.current_median:.4g}"


def _describe(r) -> str:
    if r.measure == "simulated":
        return (f"{r.change:.3f}x (simulated cost {r.base_median:.4g} -> "
                f"{r.current_median:.4g}, exact)")
    ci = (f"95% CI {r.ci_low:.3f}-{r.ci_high:.3f}x" if r.ci_low == r.ci_low
          else "no CI: too few samples")
    return (f"{r.change:.3f}x ({ci}), p={r.p:.2g}, q={r.q:.2g}; {_median_text(r)}; "
            f"{r.replicates}")


_BASIS_TEXT = {TIME: "the engine's own time", RATIO: "the ratio to the same-run baseline"}


def render(result: GateResult, verbose: bool = False) -> str:
    """Summary first (the regressions with change, CI and p), then the rest."""
    perf = result.perf
    counts = ", ".join(f"{result.count(v)} {v}" for v in (REGRESSION, IMPROVED, UNSTABLE, OK))
    lines = [f"gate: {'FAIL' if result.exit_code else 'PASS'}: {result.regressions} "
             f"regression(s) beyond {result.threshold:.2f}x, {result.new_failures} new parity "
             f"failure(s)",
             f"  {len(perf)} ops compared ({counts}; {result.not_gated} without a baseline "
             f"ratio, not gated); significance: Mann-Whitney U, Benjamini-Hochberg q < "
             f"{result.alpha:g}"]
    if len(perf) and (perf["measure"] == "wall").any():
        lines.append(f"  wall-clock ops compared on {_BASIS_TEXT[result.basis]} "
                     f"({result.basis_why})")
    for verdict, title in ((REGRESSION, "Regressions"), (UNSTABLE, "Unstable (too noisy to "
                                                         "decide; reported, not failing)"),
                           (IMPROVED, "Improved")):
        chosen = perf[perf["verdict"] == verdict] if len(perf) else perf
        if len(chosen):
            lines.append(f"{title}:")
            lines += [f"  {verdict} {_op_name(r)}: {_describe(r)}"
                      for r in chosen.itertuples()]
    if result.new_failures:
        lines.append("New parity failures:")
        new = result.parity[result.parity["new_failure"]]
        lines += [f"  {r.engine} {r.scenario}: {r.base_status} -> {r.current_status}"
                  for r in new.itertuples()]
    changed = result.parity[result.parity.base_status != result.parity.current_status] \
        if len(result.parity) else result.parity
    lines.append(f"Parity: {len(result.parity)} engine x scenario pairs, {len(changed)} "
                 f"changed status, {result.new_failures} new failure(s)")
    if verbose and len(perf):
        table = perf.copy()
        for col in ("base_median", "current_median"):
            table[col] = table[col].map(lambda v: f"{v:.4g}")
        for col in ("change", "ci_low", "ci_high"):
            table[col] = table[col].map(lambda v: f"{v:.3f}x")
        for col in ("p", "q"):
            table[col] = table[col].map(lambda v: f"{v:.2g}")
        lines += ["", "All ops (basis time: the engine's seconds; ratio: engine / baseline in "
                      "the same run; cost: simulated cycles; change = median now / before):",
                  table.to_string(index=False)]
        if len(changed):
            lines += ["", changed.to_string(index=False)]
    elif len(perf):
        lines.append("(--verbose: the full table)")
    return "\n".join(lines)
