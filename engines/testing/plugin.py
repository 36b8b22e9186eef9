"""The pytest plugin of the conformance suite: its command-line options.

Load it with `-p engines.testing.plugin` (this repository's pytest settings do). It is not a
`pytest11` entry point, on purpose: pytest marks every top-level module of a distribution that
has one for assertion rewriting, and an editable install of hashtable-lab records
scikit-build-core's import hook (`_editable_skbc_hashtable_lab`, imported by a .pth file at
interpreter start-up), so every pytest run in that environment warned that it could not
rewrite it (PytestAssertRewriteWarning), and only this checkout's own settings could filter
the warning; tests/plugins/test_conformance_plugin.py checks that none is printed.

It adds options only: no fixtures, and no engine is loaded unless `--hashlab-engine` is given
(importing it imports the `engines` package, i.e. numpy and protobuf). The suite's fixtures,
engine parametrization and summary live in engines/testing/conformance/conftest.py and apply
to the suite's tests only; without the plugin they run on $HASHLAB_ENGINES or every engine.
"""
from __future__ import annotations

STATEFUL_EXAMPLES = 60


def pytest_addoption(parser):
    group = parser.getgroup("hashtable-lab", "hashtable-lab conformance suite (engines.testing)")
    group.addoption(
        "--hashlab-engine", action="append", default=[], metavar="ENGINE",
        help="run the conformance suite on ENGINE: an engine name (built-in or plug-in) or "
             "module:Factory, optionally followed by :key=value,... options; repeat for "
             "several. Default: $HASHLAB_ENGINES (comma-separated), else every engine.")
    group.addoption(
        "--hashlab-stateful-examples", type=int, default=STATEFUL_EXAMPLES, metavar="N",
        help=f"random op sequences the stateful test runs per engine "
             f"(default {STATEFUL_EXAMPLES})")


def pytest_configure(config):
    if config.getoption("hashlab_engine"):
        from engines.testing.selection import params_for
        params_for(config)     # a bad --hashlab-engine is a usage error before collection
