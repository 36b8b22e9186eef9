"""The conformance summary printed after a run: passed / failed / skipped per capability area
and engine, what each engine was skipped for, and which tests failed."""
from __future__ import annotations

import collections
import dataclasses
import re

# Areas in the order the summary lists them (tests without an area marker count as "other").
AREAS = ("ops", "optimizers", "initializers", "filters", "ttl", "checkpoints", "fused",
         "bad input", "cross-engine", "other")
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
_NOT_DECLARED = re.compile(r"engine \S+ does not declare (.+)")
_MAX_FAILED_SHOWN = 8
_WIDTH = 100


@dataclasses.dataclass
class Result:
    nodeid: str
    area: str
    engine: str | None        # None: the test does not take an engine
    outcome: str = ""         # "" until the test runs (deselected tests never do)
    reason: str = ""          # the skip reason

    def update(self, report) -> None:
        """Fold in one phase's report (setup, call, teardown): a failure anywhere wins."""
        if report.failed:
            self.outcome = FAILED
        elif report.skipped:
            if self.outcome != FAILED:
                self.outcome, self.reason = SKIPPED, _skip_reason(report)
        elif report.when == "call" and not self.outcome:
            self.outcome = PASSED


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _cell(counts: collections.Counter) -> str:
    if not counts:
        return "-"
    return f"{counts[PASSED]}/{counts[FAILED]}/{counts[SKIPPED]}"


def _wrap(head: str, items: list[str]) -> list[str]:
    """`head` then the items, comma-separated, in lines of at most _WIDTH characters (an item is
    never split)."""
    lines, line = [], head
    for k, item in enumerate(items):
        piece = item + ("," if k < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > _WIDTH:
            lines.append(line)
            line = "   "
        line += " " + piece
    return lines + [line]


def render(results: list[Result]) -> list[str]:
    """The summary's lines (empty when no conformance test ran)."""
    if not results:
        return []
    per_engine = [r for r in results if r.engine is not None]
    engines = list(dict.fromkeys(r.engine for r in per_engine))
    counts = collections.defaultdict(collections.Counter)
    for r in per_engine:
        counts[r.area, r.engine][r.outcome] += 1
    lines = []
    if engines:
        width = max(12, *(len(e) + 2 for e in engines))
        lines.append("passed/failed/skipped per capability area:")
        lines.append(f"{'area':14s}" + "".join(f"{e:>{width}s}" for e in engines))
        areas = [a for a in AREAS if any((a, e) in counts for e in engines)]
        for area in areas:
            lines.append(f"{area:14s}" + "".join(f"{_cell(counts[area, e]):>{width}s}"
                                                 for e in engines))
    for engine in engines:
        undeclared, other = collections.Counter(), collections.Counter()
        for r in per_engine:
            if r.engine == engine and r.outcome == SKIPPED:
                lacking = _NOT_DECLARED.match(r.reason)
                if lacking:            # count each missing capability once per test
                    undeclared.update(lacking.group(1).split(", "))
                else:
                    other[r.reason] += 1
        if undeclared:
            lines += _wrap(f"{engine} skipped, lacking:",
                           [f"{what} ({n})" for what, n in undeclared.most_common()])
        lines += [f"{engine} skipped ({n}): {why}" for why, n in other.most_common()]
        failed = [r.nodeid for r in per_engine if r.engine == engine and r.outcome == FAILED]
        if failed:
            shown = [nodeid.rsplit("/", 1)[-1] for nodeid in failed[:_MAX_FAILED_SHOWN]]
            more = len(failed) - _MAX_FAILED_SHOWN
            lines += _wrap(f"{engine} FAILED {len(failed)}:",
                           shown + ([f"and {more} more"] if more > 0 else []))
    shared = collections.Counter(r.outcome for r in results if r.engine is None)
    if shared:
        lines.append("engine-independent checks: " + ", ".join(
            f"{n} {outcome}" for outcome, n in shared.items()))
    return lines
