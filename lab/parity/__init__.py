"""Parity: run scenarios on engines and compare every op's outputs to the numpy reference
under a per-op tolerance policy (`compare`), with known divergences (`divergences`) and a
robust float32 ulp distance (`ulp`)."""
from lab.parity.compare import Policy, compare_outputs
from lab.parity.runner import (COLUMNS, FAIL, KNOWN, PASS, SKIPPED, ReferenceError,
                               run_parity, summarize)
from lab.parity.ulp import error_stats, ulp_distance

__all__ = ["COLUMNS", "FAIL", "KNOWN", "PASS", "Policy", "ReferenceError", "SKIPPED",
           "compare_outputs", "error_stats", "run_parity", "summarize", "ulp_distance"]
