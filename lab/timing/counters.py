"""What the simulated cost mode counts per call, from callgrind's events (the event names its
documented output format uses): the counters the gate compares one by one, and the classic
estimated-cycles cost

    cost = Ir + 10 x (I1mr + D1mr + D1mw) + 100 x (ILmr + DLmr + DLmw)

(instructions, plus level-1 and last-level cache misses weighted by typical latencies).
Branch mispredictions (callgrind's --branch-sim) are counted and gated on their own, not added
to the cost; their weight only says how much a change in them matters (`lab.gate.counters`).
"""
from __future__ import annotations

L1_CYCLES, LL_CYCLES = 10, 100
BRANCH_MISS_CYCLES = 15

# name -> (callgrind events summed, cycles one more of it weighs)
COUNTERS = {
    "instructions": (("Ir",), 1),
    "d1_misses": (("D1mr", "D1mw"), L1_CYCLES),
    "ll_misses": (("ILmr", "DLmr", "DLmw"), LL_CYCLES),
    "branch_misses": (("Bcm", "Bim"), BRANCH_MISS_CYCLES),
}
COUNTER_NAMES = tuple(COUNTERS)


def counter(events: dict, name: str) -> int:
    """One of COUNTERS from a call's events (0 for events the run did not count)."""
    return sum(events.get(k, 0) for k in COUNTERS[name][0])


def l1_misses(events: dict) -> int:
    return sum(events.get(k, 0) for k in ("I1mr", "D1mr", "D1mw"))


def ll_misses(events: dict) -> int:
    return counter(events, "ll_misses")


def cost(events: dict) -> float:
    return float(events.get("Ir", 0) + L1_CYCLES * l1_misses(events)
                 + LL_CYCLES * ll_misses(events))
