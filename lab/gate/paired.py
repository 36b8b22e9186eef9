"""The statistics of an A/B run (`hashlab ab`): base and head measured side by side, round
by round, so each round gives one *paired* replicate per op.

In round r the two builds measure the same op at (nearly) the same moment: one right after
the other (interleaved) or both at once (duet). Whatever the machine did in that minute
(another job, a slower clock, a neighbour evicting the cache) hits both, so it cancels in
their quotient. Per op:

- d_r = ln(head_r / base_r), from each build's median time in round r;
- change = exp(median(d_r)): the typical head/base factor;
- its 95% CI: exp of the distribution-free CI of the median of d (order statistics,
  `lab.timing.stats.median_ci`);
- p: the Wilcoxon signed-rank test of d against 0 (scipy.stats.wilcoxon, two-sided; exact
  for the round counts used here). With n rounds the smallest possible p is 2 / 2^n, so
  n must be large enough for Benjamini-Hochberg over the ops to reach `alpha`
  (`min_rounds_for`);
- q: p adjusted over all ops with Benjamini-Hochberg (`lab.gate.significance.adjust`).

The verdicts are the gate's (`lab.gate.compare.verdict`): REGRESSION when the change is
beyond the threshold and q < alpha, and so on.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from lab.gate.significance import Comparison
from lab.timing.stats import median_ci

MIN_PAIRED_ROUNDS = 6            # fewer: no test (2 / 2^5 > 0.05)


def min_rounds_for(n_ops: int, alpha: float) -> int:
    """The fewest rounds with which a regression of one op out of `n_ops` can still reach
    q < alpha (exact Wilcoxon: p >= 2 / 2^n; Benjamini-Hochberg: q = p x n_ops for the one
    smallest p)."""
    n = MIN_PAIRED_ROUNDS
    while 2.0 / 2 ** n * max(n_ops, 1) >= alpha:
        n += 1
    return n


@dataclasses.dataclass(frozen=True)
class PairedRounds:
    """One op's round medians in both builds, in round order (nan: a round missing)."""
    base: tuple[float, ...]
    head: tuple[float, ...]

    def log_ratios(self) -> np.ndarray:
        b = np.asarray(self.base, dtype=np.float64)
        h = np.asarray(self.head, dtype=np.float64)
        ok = np.isfinite(b) & np.isfinite(h) & (b > 0) & (h > 0)
        return np.log(h[ok] / b[ok])


def compare_paired(rounds: PairedRounds) -> Comparison:
    """change, its CI and the Wilcoxon p of one op's paired rounds."""
    from scipy import stats
    d = rounds.log_ratios()
    what = f"{d.size} paired rounds"
    if d.size == 0:
        return Comparison(float("nan"), float("nan"), float("nan"), float("nan"), what)
    change = float(math.exp(np.median(d)))
    if d.size < MIN_PAIRED_ROUNDS:
        return Comparison(change, float("nan"), float("nan"), float("nan"), what)
    low, high = median_ci(d)
    if np.all(d == 0):
        p = 1.0
    else:
        # zero_method="zsplit": a round with no difference counts half for each side instead
        # of being dropped (counts measured in ticks can tie).
        p = float(stats.wilcoxon(d, alternative="two-sided", zero_method="zsplit").pvalue)
    return Comparison(change, float(math.exp(low)), float(math.exp(high)), p,
                      f"{what}, Wilcoxon signed-rank")


DEFAULT_ALPHA = 0.01
DEFAULT_THRESHOLD = 1.10


def _round_medians(values, rounds) -> dict[int, float]:
    """{round: median of that round's values}."""
    by_round: dict[int, list] = {}
    for value, r in zip(values, rounds):
        by_round.setdefault(r, []).append(value)
    return {r: float(np.median(v)) for r, v in by_round.items()}


@dataclasses.dataclass(frozen=True)
class ArmOp:
    """One op as one arm of an A/B session measured it: its round medians (engine seconds),
    and whether it has a baseline (ops without one, such as size, are not gated)."""
    op: str
    gated: bool
    rounds: dict


def arm_from_session(session, arm: str, scenarios, engine: str) -> dict[tuple, ArmOp]:
    """{gate key: ArmOp} of one arm of a `lab.ab.session.SessionResult`."""
    threads = {s.name: s.threads for s in scenarios}
    return {(engine, name, rec.op, i, threads[name]):
            ArmOp(rec.op, rec.kind is not None, _round_medians(rec.engine, rec.rounds))
            for (name, i), rec in session.samples[arm].items()}


def arm_from_bench(data: dict, name: str) -> dict[tuple, ArmOp]:
    """{gate key: ArmOp} of a bench file an A/B session wrote (its rows keep every engine
    time and the round of each)."""
    from lab.gate.inputs import KEY, perf_rows
    rows = perf_rows(data, name)
    out = {}
    for key, row in rows.items():
        gated = row["ratio"] is not None
        if gated and not (row["times"] and row["rounds"]):
            from lab.gate.inputs import GateUsageError
            raise GateUsageError(f"{name}: {key} has no samples_s and sample_rounds to pair")
        out[key] = ArmOp(key[KEY.index("op")], gated,
                         _round_medians(row["times"], row["rounds"]) if gated else {})
    return out


def session_of(data: dict) -> str | None:
    """The A/B session a bench file came from (None: not from `hashlab ab`)."""
    ab = data.get("ab") if isinstance(data, dict) else None
    return ab.get("session") if isinstance(ab, dict) else None


def gate_arms(base: dict, head: dict, base_parity: dict, head_parity: dict,
              threshold: float | None = None, alpha: float = DEFAULT_ALPHA,
              allow_inconclusive: bool = False):
    """The gate's verdicts (a `lab.gate.GateResult`) of a head against its base, each op
    with a baseline compared on its paired round medians (size has none and is not gated, as
    in `hashlab gate`). base, head: {gate key: ArmOp}; *_parity: {(engine, scenario):
    status}."""
    import pandas as pd
    from lab.gate.compare import (PAIRED, PERF_COLUMNS, GateResult, decide, missing_results,
                                  parity_table)
    from lab.gate.inputs import KEY
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    rows, not_gated = [], 0
    for key in sorted(set(base) & set(head)):
        b, h = base[key], head[key]
        if not b.gated:
            not_gated += 1
            continue
        common = sorted(set(b.rounds) & set(h.rounds))
        cmp = compare_paired(PairedRounds(tuple(b.rounds[r] for r in common),
                                          tuple(h.rounds[r] for r in common)))
        rows.append({**dict(zip(KEY, key)), "measure": "wall", "basis": PAIRED,
                     "base_median": float(np.median(list(b.rounds.values()))),
                     "current_median": float(np.median(list(h.rounds.values()))),
                     "change": cmp.change, "ci_low": cmp.ci_low, "ci_high": cmp.ci_high,
                     "p": cmp.p, "replicates": cmp.replicates, "counters": "",
                     "threshold": None})
    perf = decide(pd.DataFrame(rows, columns=PERF_COLUMNS), threshold, alpha)
    missing = missing_results(base, head, base_parity, head_parity)
    return GateResult(perf, parity_table(head_parity, base_parity), threshold, alpha,
                      not_gated, PAIRED, "base and head measured side by side in one session",
                      missing, allow_inconclusive)


def gate(session, scenarios, engine: str, threshold: float | None = None,
         alpha: float = DEFAULT_ALPHA, allow_inconclusive: bool = False, head: str = "head",
         base: str = "base"):
    """`gate_arms` of one head of an A/B session (`lab.ab.session.SessionResult`) against
    its base."""
    def statuses(arm):
        return {(p["engine"], p["scenario"]): p["status"] for p in session.parity[arm]}
    return gate_arms(arm_from_session(session, base, scenarios, engine),
                     arm_from_session(session, head, scenarios, engine), statuses(base),
                     statuses(head), threshold, alpha, allow_inconclusive)
