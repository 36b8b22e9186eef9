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


def _round_medians(rec) -> dict[int, float]:
    """{round: median engine seconds of that round} of one op's OpSamples."""
    by_round: dict[int, list] = {}
    for value, r in zip(rec.engine, rec.rounds):
        by_round.setdefault(r, []).append(value)
    return {r: float(np.median(v)) for r, v in by_round.items()}


def gate(session, scenarios, engine: str, threshold: float | None = None,
         alpha: float = DEFAULT_ALPHA, allow_inconclusive: bool = False, head: str = "head",
         base: str = "base"):
    """The gate's verdicts (a `lab.gate.GateResult`) of one head of an A/B session
    (`lab.ab.session.SessionResult`) against its base: each op with a baseline (size has
    none and is not gated, as in `hashlab gate`) compared on its paired round medians."""
    import pandas as pd
    from lab.gate.compare import (PAIRED, PERF_COLUMNS, GateResult, decide, missing_results,
                                  parity_table)
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    threads = {s.name: s.threads for s in scenarios}
    base_samples, head_samples = session.samples[base], session.samples[head]
    rows, not_gated = [], 0
    for key in sorted(set(base_samples) & set(head_samples)):
        b, h = base_samples[key], head_samples[key]
        if b.kind is None:
            not_gated += 1
            continue
        bm, hm = _round_medians(b), _round_medians(h)
        common = sorted(set(bm) & set(hm))
        cmp = compare_paired(PairedRounds(tuple(bm[r] for r in common),
                                          tuple(hm[r] for r in common)))
        rows.append({"engine": engine, "scenario": key[0], "op": b.op, "op_index": b.index,
                     "threads": threads[key[0]], "measure": "wall", "basis": PAIRED,
                     "base_median": float(np.median(list(bm.values()))),
                     "current_median": float(np.median(list(hm.values()))),
                     "change": cmp.change, "ci_low": cmp.ci_low, "ci_high": cmp.ci_high,
                     "p": cmp.p, "replicates": cmp.replicates, "counters": "",
                     "threshold": None})
    perf = decide(pd.DataFrame(rows, columns=PERF_COLUMNS), threshold, alpha)

    def keyed(side):
        return {(engine, name, rec.op, i, threads[name]): None
                for (name, i), rec in session.samples[side].items()}

    def statuses(side):
        return {(p["engine"], p["scenario"]): p["status"] for p in session.parity[side]}
    cur_par, base_par = statuses(head), statuses(base)
    missing = missing_results(keyed(base), keyed(head), base_par, cur_par)
    return GateResult(perf, parity_table(cur_par, base_par), threshold, alpha, not_gated,
                      PAIRED, "base and head measured side by side in one session",
                      missing, allow_inconclusive)
