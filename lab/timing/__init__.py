"""Timing: paired, adaptive sampling of every op against a same-run baseline (dense numpy
take, or the same bytes written+fsynced / read for checkpoints), in wall-clock seconds or as
simulated cost under callgrind; medians with 95% CIs, raw samples and the machine's load."""
from lab.timing.baseline import Baselines
from lab.timing.machine import git_info, machine_info
from lab.timing.rows import COLUMNS, MEASURES, SIMULATED, WALL
from lab.timing.runner import run_timing, time_scenario
from lab.timing.sampling import QUICK_SAMPLING, Sampling

__all__ = ["Baselines", "COLUMNS", "MEASURES", "QUICK_SAMPLING", "SIMULATED", "Sampling",
           "WALL", "git_info", "machine_info", "run_timing", "time_scenario"]
