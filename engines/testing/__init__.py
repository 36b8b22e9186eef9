"""The hashtable-lab conformance suite, shipped with a pytest plugin for its options.

    pytest -p engines.testing.plugin --pyargs engines.testing --hashlab-engine NAME

runs the suite (engines/testing/conformance) from any directory against any engine the
registry knows: a built-in, an installed plug-in, or a `module:Factory` target. What the
engine does not declare in its Capabilities is skipped with the reason, and a summary per
capability area is printed at the end. The plugin (`engines.testing.plugin`, which adds the
options) is loaded by `-p`, not automatically (its docstring says why). docs/your_engine.md
walks through it.
"""
