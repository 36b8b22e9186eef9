"""The CI gate: significance-tested regressions and new parity failures (`compare`), or
asv's `continuous` between two commits (`asv_gate`)."""
from lab.gate.compare import (DEFAULT_ALPHA, DEFAULT_THRESHOLDS, GateResult, GateUsageError,
                              compare, render)

__all__ = ["DEFAULT_ALPHA", "DEFAULT_THRESHOLDS", "GateResult", "GateUsageError", "compare",
           "render"]
