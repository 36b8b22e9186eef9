"""The regression gate on two bench JSON files (`hashlab bench --save`).

What is compared is each op's same-run ratio (engine median / dense-take baseline median,
both measured in the same run), so a uniformly slower or faster machine cancels out. A ratio
that grew by more than `threshold` (default 1.10x) is a regression. A parity status that went
from pass to fail is a failure whatever the speed.
"""
from __future__ import annotations

import dataclasses
import math

import pandas as pd

KEY = ("engine", "scenario", "op", "op_index", "threads")
DEFAULT_THRESHOLD = 1.10
SLOWER, FASTER, SAME = "REGRESSION", "faster", "ok"


class GateUsageError(ValueError):
    """The inputs cannot be compared (exit status 2)."""


@dataclasses.dataclass
class GateResult:
    perf: pd.DataFrame           # one row per compared op
    parity: pd.DataFrame         # one row per compared engine x scenario
    threshold: float

    @property
    def regressions(self) -> int:
        return int((self.perf["verdict"] == SLOWER).sum()) if len(self.perf) else 0

    @property
    def new_failures(self) -> int:
        return int(self.parity["new_failure"].sum()) if len(self.parity) else 0

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions or self.new_failures else 0


def _ratio(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def compare(current: dict, baseline: dict, threshold: float = DEFAULT_THRESHOLD) -> GateResult:
    if not threshold > 1.0:
        raise GateUsageError(f"--threshold must be > 1.0, got {threshold}")
    base_perf = {tuple(r.get(k) for k in KEY): _ratio(r.get("ratio_to_baseline"))
                 for r in baseline["results"]}
    rows = []
    for r in current["results"]:
        key = tuple(r.get(k) for k in KEY)
        cur, base = _ratio(r.get("ratio_to_baseline")), base_perf.get(key)
        if key not in base_perf or cur is None or base is None:
            continue
        change = cur / base
        verdict = SLOWER if change > threshold else FASTER if change < 1 / threshold else SAME
        rows.append(dict(zip(KEY, key), base_ratio=base, current_ratio=cur, change=change,
                         verdict=verdict))
    perf = pd.DataFrame(rows, columns=[*KEY, "base_ratio", "current_ratio", "change",
                                       "verdict"])

    base_par = {(p["engine"], p["scenario"]): p["status"] for p in baseline["parity"]}
    prow = []
    for p in current["parity"]:
        key = (p["engine"], p["scenario"])
        if key in base_par:
            prow.append({"engine": key[0], "scenario": key[1], "base_status": base_par[key],
                         "current_status": p["status"],
                         "new_failure": base_par[key] == "pass" and p["status"] == "fail"})
    parity = pd.DataFrame(prow, columns=["engine", "scenario", "base_status", "current_status",
                                         "new_failure"])
    if perf.empty and parity.empty:
        raise GateUsageError("no common engine x scenario results between the two files "
                             "(different --engines / --scenarios / --quick?)")
    return GateResult(perf, parity, threshold)


def render(result: GateResult) -> str:
    """The comparison as plain-text tables plus a one-line verdict."""
    lines = []
    if len(result.perf):
        table = result.perf.copy()
        for col in ("base_ratio", "current_ratio"):
            table[col] = table[col].map(lambda v: f"{v:.3g}")
        table["change"] = table["change"].map(lambda v: f"{v:.3f}x")
        lines += [f"Performance (ratio = engine time / dense-take time in the same run; "
                  f"regression when change > {result.threshold:.2f}x):",
                  table.to_string(index=False), ""]
    changed = result.parity[result.parity.base_status != result.parity.current_status] \
        if len(result.parity) else result.parity
    lines.append(f"Parity: {len(result.parity)} engine x scenario pairs compared, "
                 f"{len(changed)} changed status, {result.new_failures} new failure(s)")
    if len(changed):
        lines.append(changed.to_string(index=False))
    verdict = ("FAIL" if result.exit_code else "PASS")
    lines.append(f"gate: {verdict}: {result.regressions} regression(s) beyond "
                 f"{result.threshold:.2f}x, {result.new_failures} new parity failure(s)")
    return "\n".join(lines)
