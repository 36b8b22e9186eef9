"""What differs between the environments two runs recorded (`machine`, `git` and, for
`hashlab ab`, `ab.build` in a bench file; `lab.timing.machine` records them).

The gate prints every difference before its verdicts, and warns when the machines differ
(`lab.gate.inputs.same_machine`: architecture, CPU model, logical CPUs, memory), because
then a wall-clock change may be the machine's, not the code's. A field one run did not
record (an older file) shows as "not recorded".
"""
from __future__ import annotations

from lab.gate.inputs import same_machine

MISSING = "not recorded"


def _get(d, *path):
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _tensorflow(m):
    packages = _get(m, "packages") or {}
    if not isinstance(packages, dict):
        return None
    return packages.get("tensorflow-cpu") or packages.get("tensorflow")


def _compiler(m):
    build = _get(m, "native_build")
    if not isinstance(build, dict):
        return None
    return f"{build.get('compiler_id', '')} {build.get('compiler_version', '')}".strip()


def _dirty(data):
    dirty = _get(data, "git", "dirty")
    return None if dirty is None else ("yes" if dirty else "no")


def _patches(data):
    build = _get(data, "ab", "build")
    if not isinstance(build, dict):
        return None                       # not a `hashlab ab` build: nothing recorded
    return ", ".join(build.get("patches") or ()) or "none"


# (label, how to read it from a bench file)
FIELDS = (
    ("CPU model", lambda d: _get(d, "machine", "cpu_model") or _get(d, "machine", "processor")),
    ("architecture", lambda d: _get(d, "machine", "machine")),
    ("logical CPUs", lambda d: _get(d, "machine", "cpu_count_logical")),
    ("physical cores", lambda d: _get(d, "machine", "cpu_count_physical")),
    ("memory (GB)", lambda d: _get(d, "machine", "memory_gb")),
    ("kernel", lambda d: _get(d, "machine", "kernel")),
    ("platform", lambda d: _get(d, "machine", "platform")),
    ("hostname", lambda d: _get(d, "machine", "hostname")),
    ("compiler", lambda d: _compiler(d.get("machine"))),
    ("compiler flags", lambda d: _get(d, "machine", "native_build", "flags")),
    ("build type", lambda d: _get(d, "machine", "native_build", "build_type")),
    ("Python", lambda d: _get(d, "machine", "python")),
    ("numpy", lambda d: _get(d, "machine", "numpy")),
    ("TensorFlow", lambda d: _tensorflow(d.get("machine"))),
    ("protobuf", lambda d: _get(d, "machine", "packages", "protobuf")),
    ("scipy", lambda d: _get(d, "machine", "packages", "scipy")),
    ("commit", lambda d: _get(d, "git", "commit")),
    ("uncommitted changes", _dirty),
    ("patches", _patches),
)


def record(data: dict) -> dict:
    """{label: value as text} of one bench file (MISSING where it says nothing)."""
    out = {}
    for label, read in FIELDS:
        try:
            value = read(data)
        except (AttributeError, TypeError):
            value = None
        out[label] = MISSING if value is None or value == "" else str(value)
    return out


def differences(current: dict, baseline: dict) -> list[tuple[str, str, str]]:
    """[(label, baseline's value, current's value)] of every field that differs."""
    now, before = record(current), record(baseline)
    return [(label, before[label], now[label]) for label, _ in FIELDS
            if before[label] != now[label]]


def machines_differ(current: dict, baseline: dict) -> bool:
    """The runs name different kinds of machine, or only one of them names any (runs that
    both say nothing are not warned about: there is nothing to compare)."""
    recorded = [isinstance(d.get("machine"), dict) and bool(d["machine"])
                for d in (current, baseline)]
    if not any(recorded):
        return False
    return not same_machine(current, baseline)


def lines(diffs: list, differ: bool, names=("baseline", "current")) -> list[str]:
    """The environment block the gate prints before its verdicts."""
    if not diffs:
        out = ["environment: the two runs recorded the same environment"]
    else:
        out = [f"environment: {len(diffs)} difference(s) ({names[0]} -> {names[1]}):"]
        out += [f"  {label}: {before} -> {now}" for label, before, now in diffs]
    if differ:
        out.append("  WARNING: the runs were made on different machines (or one does not say "
                   "which): a wall-clock change may be the machine's, not the code's")
    return out
