"""The CI gate: same-run ratio regressions and new parity failures (`compare`), or asv's
`continuous` between two commits (`asv_gate`)."""
from lab.gate.compare import (DEFAULT_THRESHOLD, GateResult, GateUsageError, compare,
                              render)

__all__ = ["DEFAULT_THRESHOLD", "GateResult", "GateUsageError", "compare", "render"]
