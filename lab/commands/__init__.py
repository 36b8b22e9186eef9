"""The `hashlab` subcommands, one module each (as asv keeps `asv/commands/`).

Every module defines `NAME`, `HELP`, `setup(parser)` (its arguments) and `run(args) -> int`
(its exit status: 0 success, 1 a failed check, 2 bad usage; see `lab.commands.common`).
`lab.cli` builds the parser from `MODULES`, in this order.
"""
MODULES = ("engines", "scenarios", "report", "bench", "run", "gate", "ab", "explain", "env")
