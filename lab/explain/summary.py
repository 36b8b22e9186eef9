"""The terminal summary of an explanation (`explain.json`, `lab.explain.run`)."""
from __future__ import annotations

from lab.explain.counted import FIGURES

LABELS = {"cost": "est. cycles", "instructions": "instructions", "d1_misses": "D1 misses",
          "ll_misses": "LL misses", "branch_misses": "branch misses"}


def mib(v) -> str:
    return "-" if v is None or v != v else f"{v / 2 ** 20:.3f} MiB"


def ms(v) -> str:
    return "-" if v is None else f"{v * 1e3:.4g} ms"


def num(v) -> str:
    return "-" if v is None else f"{v:,.2f}"


def memory_text(m: dict) -> str:
    """An op's memory figures (`lab.timing.memory` columns) in words."""
    return (f"peak {mib(m.get('mem_peak_bytes'))}, allocated {mib(m.get('mem_alloc_bytes'))}, "
            f"resident set +{mib(m.get('mem_rss_bytes'))}")


def _counted(c: dict, indent: str) -> list[str]:
    unit = c["unit"]
    mine, theirs = c["engine"].get("per_unit", {}), c["baseline_figures"].get("per_unit", {})
    lines = [f"{indent}counted under callgrind, per {unit} ({c['units_per_call']:,.0f} "
             f"{unit}s a call, mean of {c['calls']} call(s)):",
             f"{indent}  {'':16}{'engine':>14}{'baseline':>14}{'engine/baseline':>17}"]
    if c.get("baseline"):
        lines[-1] += f"   (baseline: {c['baseline']})"
    for name in FIGURES:
        a, b = mine.get(name), theirs.get(name)
        ratio = f"{a / b:.2f}x" if a is not None and b else "-"
        lines.append(f"{indent}  {LABELS[name]:16}{num(a):>14}{num(b):>14}{ratio:>17}")
    if c.get("top_functions"):
        lines.append(f"{indent}top functions (inclusive cost, share of the op; wrappers folded "
                     f"into their callee):")
        for f in c["top_functions"][:5]:
            name = f["name"] if len(f["name"]) <= 80 else f["name"][:77] + "..."
            lines.append(f"{indent}  {f['share']:6.1%}  {name}  [{f['where']}]")
    if c.get("hot_lines"):
        hot = ", ".join(f"{h['where'].rsplit('/', 1)[-1]} {h['share']:.0%}"
                        for h in c["hot_lines"][:4])
        lines.append(f"{indent}hot lines (self cost): {hot}")
    return lines


def render(data: dict, out_dir: str) -> str:
    lines = [f"hashlab explain {data['scenario']}: {len(data['variants'])} variant(s), "
             f"{data['seconds']:.0f} s"]
    for variant in data["variants"]:
        for eng in variant["engines"]:
            lines.append("")
            lines.append(f"== {variant['scenario']} on {eng['engine']} ==")
            for what in ("count_error", "sample_error", "memory_error"):
                if eng.get(what):
                    lines.append(f"  ({what.replace('_', ' ')}: {eng[what]})")
            for op in eng["ops"]:
                lines.append(f"  op {op['index']} {op['op']}:")
                if "counted" in op:
                    lines += _counted(op["counted"], "    ")
                w = op.get("wall")
                if w:
                    ratio = (f" ({w['engine_s'] / w['baseline_s']:.2f}x)"
                             if w.get("engine_s") and w.get("baseline_s") else "")
                    lines.append(f"    wall clock while sampled: {ms(w['engine_s'])} a call, "
                                 f"baseline {ms(w['baseline_s'])}{ratio}; "
                                 f"{w['calls']} calls, {w['samples']:.0f} samples")
                if op.get("memory"):
                    lines.append(f"    memory per call (median): {memory_text(op['memory'])}")
            if eng.get("wall_svg"):
                lines.append(f"  wall-clock flame graph: {out_dir}/{eng['wall_svg']}")
    lines += ["", f"wrote {out_dir}/explain.json, {out_dir}/index.html and the SVGs"]
    return "\n".join(lines)
