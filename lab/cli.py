"""The `hashlab` command line. Each subcommand lives in its own function; exit codes:
0 success, 1 a failed check (parity failure, regression), 2 bad usage.

  hashlab engines [--json]                       list engines, availability, capabilities
  hashlab report [--quick] [--engines ...] [--scenarios ...] [--out reports/NAME]
  hashlab bench [--quick] [--engines ...] [--scenarios ...] [--save FILE]
  hashlab run FILE [--engines ...] [--json OUT]  a user scenario file (TOML/JSON)
  hashlab gate CURRENT.json --baseline BASE.json [--threshold 1.10]
  hashlab gate --asv BASE HEAD [--factor F]
  hashlab env create tfra                        the TFRA peer's own virtualenv
"""
from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or input files: printed, exit status 2."""


def cmd_engines(args) -> int:
    import engines
    infos = engines.available()
    if args.json:
        print(json.dumps([{"name": i.name, "available": i.available, "reason": i.reason,
                           "capabilities": i.capabilities.as_dict() if i.capabilities else None}
                          for i in infos], indent=2))
        return 0
    for info in infos:
        status = "available" if info.available else f"unavailable: {info.reason}"
        print(f"{info.name:12s} {status}")
        if info.capabilities is not None:
            caps = info.capabilities.as_dict()
            flags = [k for k, v in caps.items() if v is True]
            print(f"{'':12s} ops: {', '.join(caps['ops'])}")
            print(f"{'':12s} optimizers: {', '.join(caps['optimizers'])}")
            print(f"{'':12s} filters: {', '.join(caps['filters'])}; "
                  f"features: {', '.join(flags) or '-'}")
    return 0


# ---- shared helpers ------------------------------------------------------------------------

def _split(values):
    """`--engines a b,c` -> [a, b, c]."""
    return [v for item in values or [] for v in item.split(",") if v] or None


def _engines(args):
    from lab.engine_select import resolve
    try:
        choices, unusable = resolve(_split(args.engines))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    for label, reason in unusable:
        print(f"skipping engine {label}: {reason}", file=sys.stderr)
    if not choices:
        raise UsageError("no selected engine is available here")
    return choices, unusable


def _scenarios(args, pool=None):
    from lab import scenarios
    try:
        return scenarios.select(_split(args.scenarios), quick=args.quick, scenarios=pool)
    except scenarios.ScenarioError as exc:
        raise UsageError(str(exc)) from exc


def _run_suite(args, scenario_list):
    from lab.parity import ReferenceError
    from lab.suite import run_suite
    choices, unusable = _engines(args)
    try:
        return run_suite(scenario_list, choices, unusable, quick=args.quick,
                         timing_on=not getattr(args, "no_timing", False),
                         progress=not args.no_progress)
    except ReferenceError as exc:
        raise UsageError(str(exc)) from exc


def _print_result(result) -> None:
    import pandas as pd
    from lab.report.writer import summary_table
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.max_colwidth", 60):
        summary = result.parity_summary.copy()
        summary["note"] = summary["note"].str.slice(0, 60)
        print("Parity (engine x scenario):")
        print(summary[["engine", "scenario", "status", "max_ulp", "note"]].to_string(
            index=False))
        perf = result.perf
        if len(perf):
            print("\nTiming (median of measured steps; ratio = engine / dense-take time):")
            view = perf[["engine", "scenario", "op", "threads", "n_ids", "median_s", "iqr_s",
                         "ids_per_s", "ratio_to_baseline", "parity"]].copy()
            for col in ("median_s", "iqr_s"):
                view[col] = view[col].map(lambda v: f"{v * 1e3:.3f} ms")
            view["ids_per_s"] = view["ids_per_s"].map(lambda v: f"{v:.3g}")
            view["ratio_to_baseline"] = view["ratio_to_baseline"].map(lambda v: f"{v:.3g}")
            print(view.to_string(index=False))
        print("\nSummary:")
        print(summary_table(result).to_string(index=False))


def _parity_exit(result) -> int:
    if result.failed():
        print("parity: FAILED (see the rows with status 'fail')", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


# ---- subcommands ---------------------------------------------------------------------------

def cmd_bench(args) -> int:
    result = _run_suite(args, _scenarios(args))
    _print_result(result)
    _ensure_parent(args.save)
    result.save(args.save)
    print(f"\nwrote {args.save}")
    return _parity_exit(result)


def cmd_run(args) -> int:
    from lab import scenarios
    try:
        pool = scenarios.load_file(args.file)
    except scenarios.ScenarioError as exc:
        raise UsageError(str(exc)) from exc
    result = _run_suite(args, _scenarios(args, pool))
    _print_result(result)
    if args.json:
        _ensure_parent(args.json)
        result.save(args.json)
        print(f"\nwrote {args.json}")
    return _parity_exit(result)


def cmd_report(args) -> int:
    from lab.report import write_report
    result = _run_suite(args, _scenarios(args))
    written = write_report(result, args.out, asv_results=args.asv_results,
                           with_oracle=not args.no_oracle)
    result.save(os.path.join(args.out, "bench.json"))
    print(written["summary"].to_string(index=False))
    for name, why in written["notes"].items():
        print(f"(no {name}: {why})")
    print(f"\nwrote {written['html']} (+ report.md, parity.csv, perf.csv, bench.json, "
          f"{len(written['images'])} charts)")
    if result.failed():
        print("parity failures are listed in the report", file=sys.stderr)
    return EXIT_OK


def cmd_gate(args) -> int:
    if args.asv:
        if args.current or args.baseline:
            raise UsageError("gate: use either CURRENT --baseline BASE or --asv BASE HEAD")
        from lab.gate.asv_gate import continuous
        return continuous(args.asv[0], args.asv[1], args.factor)
    if not args.current or not args.baseline:
        raise UsageError("gate: needs CURRENT.json and --baseline BASE.json (or --asv)")
    from lab.gate import GateUsageError, compare, render
    from lab.suite import load_bench_json
    try:
        current = load_bench_json(args.current)
        baseline = load_bench_json(args.baseline)
        result = compare(current, baseline, args.threshold)
    except (ValueError, GateUsageError) as exc:
        raise UsageError(f"gate: {exc}") from exc
    print(render(result))
    return result.exit_code


def cmd_env(args) -> int:
    if args.action != "create" or args.name != "tfra":
        raise UsageError("env: only `hashlab env create tfra` is supported")
    import importlib
    try:
        env = importlib.import_module("engines.tfra.env")
    except ImportError as exc:
        print(f"env: engines.tfra.env is not importable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        python = env.create_env(args.path)
    except RuntimeError as exc:
        print(f"env: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"TFRA environment ready: {python}")
    return EXIT_OK


# ---- parser --------------------------------------------------------------------------------

def _add_selection(p, quick_help="shrink every scenario (its `quick` overrides)"):
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--engines", nargs="+", metavar="ENGINE",
                   help="engines to run (name or name:key=value,...; default: all available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("engines", help="list engines, availability and capabilities")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_engines)

    p = sub.add_parser("report", help="parity + performance report of the scenario catalog")
    _add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="catalog scenarios to run")
    p.add_argument("--out", default=os.path.join("reports", "latest"),
                   help="output directory (default reports/latest)")
    p.add_argument("--asv-results", default=os.path.join(".asv", "results"),
                   help="asv results directory for the history chart")
    p.add_argument("--no-oracle", action="store_true",
                   help="leave out the TensorFlow optimizer oracle section")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="parity + timing of the catalog, printed and saved as JSON")
    _add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="catalog scenarios to run")
    p.add_argument("--save", default=os.path.join("reports", "bench", "latest.json"),
                   help="JSON output (default reports/bench/latest.json)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="run the scenarios of a TOML/JSON file (parity + timing)")
    p.add_argument("file", help="scenario file (.toml or .json)")
    _add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="scenarios of the file")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.add_argument("--no-timing", action="store_true", help="parity only")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("gate", help="fail on a performance regression or a new parity failure")
    p.add_argument("current", nargs="?", help="bench JSON of the change")
    p.add_argument("--baseline", help="bench JSON of the baseline")
    p.add_argument("--threshold", type=float, default=1.10,
                   help="allowed growth of the same-run ratio (default 1.10x)")
    p.add_argument("--asv", nargs=2, metavar=("BASE", "HEAD"),
                   help="run `asv continuous --factor F BASE HEAD` instead")
    p.add_argument("--factor", type=float, default=1.10, help="asv continuous --factor")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("env", help="manage engine environments")
    p.add_argument("action", choices=["create"])
    p.add_argument("name", help="environment to create (tfra)")
    p.add_argument("--path", help="where, remembered for later runs (default: "
                                  "$HASHLAB_TFRA_VENV, the remembered path, or .venvs/tfra "
                                  "in a source checkout)")
    p.set_defaults(func=cmd_env)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"hashlab: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
