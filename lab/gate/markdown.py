"""The gate's verdicts as a pull-request comment (`hashlab gate ... --format markdown`, and
`hashlab ab ... --format markdown`): the status line, the environment differences, one table
row per regression (change, CI, p, the functions whose cost grew most) and the memory
regressions. GitHub-flavoured Markdown; nothing but text, so any CI can post it."""
from __future__ import annotations

import math

from lab.gate.compare import REGRESSION, GateResult, headline


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _functions(diff, top: int = 3) -> str:
    if diff is None:
        return "(no profiles in both runs)"
    if not diff.functions:
        return "no function grew"
    out = []
    for i, f in enumerate(diff.functions[:top], 1):
        change = "new" if f.base <= 0 else f"{f.change:.2f}x"
        out.append(f"{i}. `{_cell(f.name)}` {change}, {f.base_share:.0%} → {f.head_share:.0%}"
                   f" of the op")
    return "<br>".join(out)


def _ci(r) -> str:
    if r.measure == "simulated":
        return "exact (counted)"
    if r.ci_low == r.ci_low:
        return f"{r.ci_low:.3f}–{r.ci_high:.3f}x"
    return "too few samples"


def _p(r) -> str:
    if r.measure == "simulated":
        return "—"
    return f"{r.p:.2g} (q {r.q:.2g})"


def render(result: GateResult, title: str = "hashlab gate") -> str:
    from lab.gate.memory import describe
    lines = [f"### {title}: {_cell(headline(result).removeprefix('gate: '))}", ""]
    if result.environment or result.machines_differ:
        lines += [f"<details><summary>Environment: {len(result.environment)} difference(s)"
                  + (" — **the runs were made on different machines**"
                     if result.machines_differ else "") + "</summary>", "",
                  "| | baseline | current |", "|---|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(b)} | {_cell(c)} |"
                  for k, b, c in result.environment]
        lines += ["", "</details>", ""]
    perf = result.perf
    regressed = perf[perf["verdict"] == REGRESSION] if len(perf) else perf
    if len(regressed):
        lines += ["| op | change | 95% CI | p | grew most |", "|---|---|---|---|---|"]
        for r in regressed.itertuples():
            key = (r.engine, r.scenario, r.op, int(r.op_index), int(r.threads))
            what = f" ({r.basis})" if r.measure == "simulated" else ""
            lines.append(f"| {_cell(f'{r.engine} {r.scenario} {r.op} (op {r.op_index})')} | "
                         f"**{r.change:.3f}x**{_cell(what)} | {_ci(r)} | {_p(r)} | "
                         f"{_functions(result.profiles.get(key))} |")
        lines.append("")
        svgs = [d.svg for d in result.profiles.values() if d.svg]
        if svgs:
            lines += ["Differential flame graphs (red: grew, blue: shrank): "
                      + ", ".join(f"`{p}`" for p in svgs), ""]
    else:
        lines += ["No op regressed.", ""]
    mem = result.memory
    if mem is not None and len(mem) and (mem["verdict"] == REGRESSION).any():
        lines += ["| op | memory |", "|---|---|"]
        lines += [f"| {_cell(f'{r.engine} {r.scenario} {r.op} (op {r.op_index})')} | "
                  f"{_cell(describe(r))} |" for r in mem[mem['verdict'] == REGRESSION]
                  .itertuples()]
        lines.append("")
    if result.missing:
        lines += ["Missing in this run: " + ", ".join(f"`{m}`" for m in result.missing), ""]
    if result.new_failures:
        new = result.parity[result.parity["new_failure"]]
        lines += ["New parity failures: " + ", ".join(
            f"`{r.engine} {r.scenario}`" for r in new.itertuples()), ""]
    counts = ", ".join(f"{result.count(v)} {v}" for v in (REGRESSION, "improved", "unstable",
                                                          "ok"))
    lines.append(f"<sub>{len(perf)} ops compared ({counts}); threshold "
                 f"{result.threshold:.2f}x"
                 + ("" if math.isnan(result.alpha) else f", alpha {result.alpha:g}")
                 + "</sub>")
    return "\n".join(lines) + "\n"
