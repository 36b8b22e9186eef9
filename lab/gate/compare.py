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

Simulated-cost runs (`--measure simulated`) are compared counter by counter (estimated
cycles, instructions, D1 misses, LL misses, branch mispredictions where counted; each with
its own threshold, `lab.gate.counters`): the simulated machine is always the same and the
counts have no noise, so the change itself decides.

No silent passes:
- a parity status that is `fail` now and was not before fails the gate whatever the speed;
- an op or a scenario of the baseline that the current run lacks fails it (exit 1, named);
- when more than a quarter of the ops compared are `unstable`, the run is INCONCLUSIVE:
  exit 3 (unless `allow_inconclusive`), because a gate that cannot decide most of its ops
  must not read as a pass.

Besides the speed (`annotate`): every difference between the two runs' recorded
environments (`lab.gate.environment`), printed before the verdicts; memory per op, gated on
its own (`lab.gate.memory`); and for each regressed op that both runs profiled, the
functions whose inclusive cost grew most (`lab.gate.differential`).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from lab.gate import counters
from lab.gate.inputs import KEY, GateUsageError, parity_rows, perf_rows, same_machine
from lab.gate.significance import adjust, compare_samples

# The measured false-alarm rate sets these (docs/measurement.md): wall-clock runs of the same
# code on a 2-core machine with one core busy differ by up to 1.17x on single ops (1.34x when
# the whole machine slows down for a minute); simulated costs differ by about 1%.
DEFAULT_THRESHOLDS = {"wall": 1.20, "simulated": 1.10}
DEFAULT_ALPHA = 0.01
REGRESSION, IMPROVED, OK, UNSTABLE = "REGRESSION", "improved", "ok", "unstable"
AUTO, TIME, RATIO, COST, PAIRED = "auto", "time", "ratio", "cost", "paired"
BASES = (AUTO, TIME, RATIO, PAIRED)
PERF_COLUMNS = [*KEY, "measure", "basis", "base_median", "current_median", "change", "ci_low",
                "ci_high", "p", "q", "replicates", "verdict", "counters", "threshold"]
EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE = 0, 1, 3
INCONCLUSIVE_SHARE = 0.25        # more unstable ops than this: the run decides nothing

__all__ = ["BASES", "DEFAULT_ALPHA", "DEFAULT_THRESHOLDS", "EXIT_FAIL", "EXIT_INCONCLUSIVE",
           "EXIT_PASS", "GateResult", "GateUsageError", "compare", "decide", "render",
           "verdict"]


@dataclasses.dataclass
class GateResult:
    perf: pd.DataFrame           # one row per compared op
    parity: pd.DataFrame         # one row per engine x scenario of the current run
    threshold: float
    alpha: float
    not_gated: int = 0           # ops without a baseline ratio (e.g. size)
    basis: str = RATIO           # what wall-clock ops were compared on (time, ratio, paired)
    basis_why: str = ""
    missing: list = dataclasses.field(default_factory=list)   # baseline results absent now
    allow_inconclusive: bool = False
    environment: list = dataclasses.field(default_factory=list)   # (field, before, now)
    machines_differ: bool = False
    memory: pd.DataFrame | None = None      # lab.gate.memory rows (None: not compared)
    memory_note: str = ""                   # why memory was not compared, when it was not
    memory_threshold: float = 1.10
    profiles: dict = dataclasses.field(default_factory=dict)  # key -> differential.ProfileDiff

    def count(self, verdict: str) -> int:
        return int((self.perf["verdict"] == verdict).sum()) if len(self.perf) else 0

    @property
    def regressions(self) -> int:
        return self.count(REGRESSION)

    @property
    def memory_regressions(self) -> int:
        if self.memory is None or not len(self.memory):
            return 0
        return int((self.memory["verdict"] == REGRESSION).sum())

    @property
    def new_failures(self) -> int:
        return int(self.parity["new_failure"].sum()) if len(self.parity) else 0

    @property
    def inconclusive(self) -> bool:
        """More than INCONCLUSIVE_SHARE of the ops compared are too noisy to decide."""
        return bool(len(self.perf)) and self.count(UNSTABLE) > INCONCLUSIVE_SHARE * len(
            self.perf)

    @property
    def exit_code(self) -> int:
        if self.regressions or self.memory_regressions or self.new_failures or self.missing:
            return EXIT_FAIL
        if self.inconclusive and not self.allow_inconclusive:
            return EXIT_INCONCLUSIVE
        return EXIT_PASS


def _check_settings(threshold: float | None, alpha: float, basis: str) -> None:
    if basis not in BASES:
        raise GateUsageError(f"--basis must be one of {BASES}, got {basis!r}")
    if threshold is not None and not (isinstance(threshold, (int, float))
                                      and math.isfinite(threshold) and threshold > 1.0):
        raise GateUsageError(f"--threshold must be a finite number > 1.0, got {threshold}")
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise GateUsageError(f"--alpha must be between 0 and 1, got {alpha}")


def verdict(change, ci_low, ci_high, q, threshold, alpha) -> str:
    """REGRESSION / improved / unstable / ok of one op (the module docstring)."""
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
            basis: str = AUTO, counter_thresholds: dict | None = None,
            allow_inconclusive: bool = False,
            memory_threshold: float | None = None) -> GateResult:
    """`threshold` None: DEFAULT_THRESHOLDS of the runs' measure (wall if any op is); for
    simulated runs it is the cost's threshold, and `counter_thresholds` (name -> factor)
    change the other counters' (`lab.gate.counters`). `memory_threshold`: memory's
    (`lab.gate.memory`, default 1.10x)."""
    _check_settings(threshold, alpha, basis)
    if basis == PAIRED or (basis == AUTO and _same_session(current, baseline)):
        return annotate(_paired(current, baseline, threshold, alpha, names,
                                allow_inconclusive), current, baseline, names,
                        memory_threshold)
    return annotate(_compare(current, baseline, threshold, alpha, names, basis,
                             counter_thresholds, allow_inconclusive), current, baseline, names,
                    memory_threshold)


def annotate(result: GateResult, current: dict, baseline: dict,
             names=("current", "baseline"), memory_threshold: float | None = None
             ) -> GateResult:
    """`result` with the environment differences, the memory verdicts and the differential
    profiles of its regressions filled in from the two bench files."""
    from lab.gate import differential, environment, memory
    result.environment = environment.differences(current, baseline)
    result.machines_differ = environment.machines_differ(current, baseline)
    result.memory = memory.compare_memory(current, baseline, names, memory_threshold)
    result.memory_threshold = (memory.DEFAULT_THRESHOLD if memory_threshold is None
                               else memory_threshold)
    only = memory.measured_only_in(current, baseline)
    result.memory_note = (f"memory: not compared: only the {only} run measured it "
                          f"(`hashlab bench --memory`)" if only else "")
    result.profiles = differential.for_regressions(result.perf, current, baseline)
    return result


def _compare(current, baseline, threshold, alpha, names, basis, counter_thresholds,
             allow_inconclusive) -> GateResult:
    limits = _counter_limits(counter_thresholds, threshold)
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
        if cur["measure"] == "simulated":
            rows.append(_simulated_row(key, cur, base, limits))
            continue
        field = "times" if wall_basis == TIME else "samples"
        cmp = compare_samples(cur[field], base[field], current_rounds=cur["rounds"],
                              baseline_rounds=base["rounds"])
        rows.append(dict(zip(KEY, key), measure=cur["measure"], basis=wall_basis,
                         base_median=float(np.median(base[field])),
                         current_median=float(np.median(cur[field])), change=cmp.change,
                         ci_low=cmp.ci_low, ci_high=cmp.ci_high, p=cmp.p,
                         replicates=cmp.replicates, counters="", threshold=None))
    perf = decide(pd.DataFrame(rows, columns=PERF_COLUMNS), threshold, alpha)
    cur_par, base_par = parity_rows(current, names[0]), parity_rows(baseline, names[1])
    if perf.empty and not not_gated and not any(k in base_par for k in cur_par):
        raise GateUsageError("no common engine x scenario results between the two files "
                             "(different --engines / --scenarios / --profile / --quick?)")
    missing = missing_results(base_perf, cur_perf, base_par, cur_par)
    return GateResult(perf, parity_table(cur_par, base_par), threshold, alpha, not_gated,
                      wall_basis, why, missing, allow_inconclusive)


def _same_session(current: dict, baseline: dict) -> bool:
    from lab.gate.paired import session_of
    return session_of(current) is not None and session_of(current) == session_of(baseline)


def _paired(current, baseline, threshold, alpha, names, allow_inconclusive) -> GateResult:
    """Two arms of one `hashlab ab` session, gated on their paired rounds again (e.g. at
    another threshold)."""
    from lab.gate import paired
    if not _same_session(current, baseline):
        raise GateUsageError("--basis paired: both files must come from one `hashlab ab` "
                             "session (its base.json and a head's JSON)")
    result = paired.gate_arms(paired.arm_from_bench(baseline, names[1]),
                              paired.arm_from_bench(current, names[0]),
                              parity_rows(baseline, names[1]), parity_rows(current, names[0]),
                              threshold, alpha, allow_inconclusive)
    result.basis_why = "both files come from one `hashlab ab` session"
    return result


def _counter_limits(overrides: dict | None, cost: float | None) -> dict:
    limits = counters.thresholds(overrides, cost)
    for name, value in limits.items():
        if name not in counters.GATED:
            raise GateUsageError(f"--counter-threshold: unknown counter {name!r}; known: "
                                 f"{', '.join(counters.GATED)}")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 1.0):
            raise GateUsageError(f"--counter-threshold {name}: must be a finite number > 1.0, "
                                 f"got {value}")
    return limits


def _simulated_row(key, cur, base, limits) -> dict:
    """One simulated op, decided on its counters: REGRESSION when any counter grew past its
    threshold by a share of the cost that matters (`lab.gate.counters`)."""
    changes = counters.compare_counters(dict(cur["counters"], cost=cur["samples"]),
                                        dict(base["counters"], cost=base["samples"]), limits)
    top = counters.deciding(changes)
    regressed = any(c.regressed for c in changes)
    cost = next(c for c in changes if c.name == counters.COST)
    return dict(zip(KEY, key), measure="simulated", basis=top.name, base_median=top.base,
                current_median=top.current, change=top.change, ci_low=top.change,
                ci_high=top.change, p=0.0 if regressed or cost.improved else 1.0,
                replicates=f"{len(cur['samples'])} vs {len(base['samples'])} exact counts",
                counters=", ".join(c.text() for c in changes), threshold=top.threshold)


def decide(perf: pd.DataFrame, threshold: float, alpha: float) -> pd.DataFrame:
    """q (Benjamini-Hochberg over the wall-clock ops) and every op's verdict."""
    if not len(perf):
        return perf
    perf = perf.copy()
    wall = perf["measure"] == "wall"
    perf["q"] = perf["p"]                          # simulated: exact, nothing to adjust
    if wall.any():
        perf.loc[wall, "q"] = adjust(perf.loc[wall, "p"].tolist())
    perf["threshold"] = perf["threshold"].astype(float).fillna(threshold)   # simulated: own
    perf["verdict"] = [verdict(r.change, r.ci_low, r.ci_high, r.q, r.threshold, alpha)
                       for r in perf.itertuples()]
    return perf


def missing_results(base_perf: dict, cur_perf: dict, base_par: dict, cur_par: dict) -> list:
    """What the baseline measured and the current run does not have: "engine scenario op
    (op i)" per op, "engine scenario (parity)" per engine x scenario."""
    lost = [f"{e} {s} {op} (op {i}, {t} thread(s))"
            for (e, s, op, i, t) in base_perf if (e, s, op, i, t) not in cur_perf]
    lost += [f"{e} {s} (parity)" for (e, s) in base_par if (e, s) not in cur_par]
    return lost


def parity_table(cur_par: dict, base_par: dict) -> pd.DataFrame:
    prow = [{"engine": e, "scenario": s, "base_status": base_par.get((e, s), "absent"),
             "current_status": status,
             "new_failure": status == "fail" and base_par.get((e, s)) != "fail"}
            for (e, s), status in cur_par.items()]
    return pd.DataFrame(prow, columns=["engine", "scenario", "base_status", "current_status",
                                       "new_failure"])


def _key(r) -> tuple:
    return (r.engine, r.scenario, r.op, int(r.op_index), int(r.threads))


def _op_name(r) -> str:
    return f"{r.engine} {r.scenario} {r.op} (op {r.op_index}, {r.threads} thread(s))"


def _median_text(r) -> str:
    if r.basis in (TIME, PAIRED):
        return f"median {r.base_median * 1e3:.4g} -> {r.current_median * 1e3:.4g} ms"
    return f"median ratio {r.base_median:.4g} -> {r.current_median:.4g}"


def _describe(r) -> str:
    if r.measure == "simulated":
        return (f"{r.change:.3f}x in {r.basis} (simulated, {r.base_median:.4g} -> "
                f"{r.current_median:.4g} per call, exact; {r.counters})")
    ci = (f"95% CI {r.ci_low:.3f}-{r.ci_high:.3f}x" if r.ci_low == r.ci_low
          else "no CI: too few samples")
    return (f"{r.change:.3f}x ({ci}), p={r.p:.2g}, q={r.q:.2g}; {_median_text(r)}; "
            f"{r.replicates}")


_BASIS_TEXT = {TIME: "the engine's own time", RATIO: "the ratio to the same-run baseline",
               PAIRED: "the engine's own time, base and head paired round by round"}


def headline(result: GateResult) -> str:
    """The first line: PASS, FAIL or INCONCLUSIVE, and why."""
    unstable = result.count(UNSTABLE)
    if result.exit_code == EXIT_FAIL:
        status = "FAIL"
    elif result.inconclusive:
        status = "INCONCLUSIVE" + (" (allowed)" if result.allow_inconclusive else "")
    else:
        status = "PASS"
    text = (f"gate: {status}: {result.regressions} regression(s) beyond "
            f"{result.threshold:.2f}x, {result.new_failures} new parity failure(s)")
    if result.memory_regressions:
        text += f", {result.memory_regressions} memory regression(s)"
    if result.missing:
        text += f", {len(result.missing)} baseline result(s) missing"
    if result.inconclusive:
        text += (f"; {unstable} of {len(result.perf)} ops too noisy to decide (more than "
                 f"{INCONCLUSIVE_SHARE:.0%})")
    return text


def render(result: GateResult, verbose: bool = False) -> str:
    """Summary first (the regressions with change, CI and p), then the rest."""
    perf = result.perf
    counts = ", ".join(f"{result.count(v)} {v}" for v in (REGRESSION, IMPROVED, UNSTABLE, OK))
    test = ("Wilcoxon signed-rank on the paired rounds" if result.basis == PAIRED
            else "Mann-Whitney U")
    simulated = len(perf) and (perf["measure"] == "simulated").all()
    from lab.gate import differential, environment, memory
    lines = [*environment.lines(result.environment, result.machines_differ),
             headline(result),
             f"  {len(perf)} ops compared ({counts}; {result.not_gated} without a baseline "
             f"ratio, not gated); "
             + ("simulated counts, each counter against its own threshold (exact)" if simulated
                else f"significance: {test}, Benjamini-Hochberg q < {result.alpha:g}")]
    if len(perf) and (perf["measure"] == "wall").any():
        lines.append(f"  wall-clock ops compared on {_BASIS_TEXT[result.basis]} "
                     f"({result.basis_why})")
    for verdict, title in ((REGRESSION, "Regressions"), (UNSTABLE, "Unstable (too noisy to "
                                                         "decide; reported, not failing)"),
                           (IMPROVED, "Improved")):
        chosen = perf[perf["verdict"] == verdict] if len(perf) else perf
        if len(chosen):
            lines.append(f"{title}:")
            for r in chosen.itertuples():
                lines.append(f"  {verdict} {_op_name(r)}: {_describe(r)}")
                found = result.profiles.get(_key(r)) if verdict == REGRESSION else None
                if found is not None:
                    lines += differential.lines(found)
    if result.memory is not None and len(result.memory):
        mem = result.memory
        for verdict, title in ((REGRESSION, "Memory regressions"), (IMPROVED, "Memory "
                                                                    "improved")):
            chosen = mem[mem["verdict"] == verdict]
            if len(chosen):
                lines.append(f"{title} (threshold {result.memory_threshold:.2f}x and "
                             f"{memory.MIN_BYTES // 1024} KiB):")
                lines += [f"  {verdict} {_op_name(r)}: {memory.describe(r)}"
                          for r in chosen.itertuples()]
        lines.append(f"Memory: {len(mem)} op x metric comparisons (peak, bytes allocated), "
                     f"{result.memory_regressions} regression(s)")
    elif result.memory_note:
        lines.append(result.memory_note)
    if result.missing:
        lines.append("Missing (in the baseline, not in this run; a gate must not pass what it "
                     "did not measure):")
        lines += [f"  MISSING {m}" for m in result.missing]
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
        lines += ["", "All ops (basis time: the engine's seconds; paired: the same, base and "
                      "head round by round; ratio: engine / baseline in the same run; a counter "
                      "name: the simulated counter the verdict rests on; change = median now / "
                      "before):",
                  table.to_string(index=False)]
        if len(changed):
            lines += ["", changed.to_string(index=False)]
    elif len(perf):
        lines.append("(--verbose: the full table)")
    return "\n".join(lines)
