"""Reports: `write_report(result, out_dir)` renders a SuiteResult as index.html, report.md,
parity.csv, perf.csv and PNG charts (`charts`), with asv history (`history`)."""
from lab.report.writer import summary_table, write_report

__all__ = ["summary_table", "write_report"]
