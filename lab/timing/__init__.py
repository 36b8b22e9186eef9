"""Timing: warm-up then repeats, median and IQR, throughput, peak RSS and the ratio to a
same-run baseline (dense numpy take, or tofile/fromfile for checkpoints)."""
from lab.timing.baseline import Baselines
from lab.timing.machine import git_info, machine_info
from lab.timing.runner import COLUMNS, run_timing, time_scenario

__all__ = ["Baselines", "COLUMNS", "git_info", "machine_info", "run_timing", "time_scenario"]
