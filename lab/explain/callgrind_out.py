"""Reading one callgrind dump (`callgrind.out.N`) per function, as valgrind's documented
"Callgrind Format Specification" defines it (the format callgrind_annotate and KCachegrind
read).

What a dump holds, and what this module keeps:
- a header: `events:` (the event names, e.g. `Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm
  Bi Bim`), `positions:` (`line`, `instr` or `instr line`), `summary:`/`totals:`, and the
  label a client request dumped it under (`desc: Trigger: Client Request: LABEL`);
- cost lines `POSITION(S) COST...` after `fn=NAME`: the function's *self* cost at that
  source line (missing trailing events are 0). Positions may be relative to the previous
  cost line's (`+N`, `-N`) or repeat it (`*`); with `--dump-line=no` they are all 0;
- `fl=` names the source file of the following `fn=`; `fi=`/`fe=` switch the file for the
  cost lines that follow (code inlined from another file), without changing the function;
- `cfn=CALLEE` (with `cob=`, `cfi=`/`cfl=`), then `calls=COUNT TARGET`, then one cost line: the
  call site and the *inclusive* cost of those calls;
- `ob=`/`fl=`/`fn=` names are compressed: `(N) name` defines id N, a later `(N)` refers to it
  (each dump file defines its own).

A function is keyed by its name as callgrind prints it (demangled C++, `'2` marking a second
recursion level with `--separate-recs`). Two functions of one name in different objects (a
static function, say) are merged; callgrind_annotate keys by file as well, which splits one
function whose code is inlined from several files.
"""
from __future__ import annotations

import dataclasses
import os
import re

TRIGGER = "desc: Trigger: Client Request: "
SYSTEM_HEADERS = ("/usr/include/", "/usr/lib/gcc/")
_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")


class CallgrindFormatError(ValueError):
    """A file that is not a callgrind dump, or one this reader cannot follow."""


@dataclasses.dataclass
class Function:
    name: str
    obj: str = ""              # the ELF object (library, executable) the code is in
    file: str = ""             # its source file (`fl=`), "???" without debug info
    line: int = 0              # its first cost line in its own file (its entry; 0: none)
    self_cost: list = dataclasses.field(default_factory=list)   # per event, self cost
    calls: int = 0             # how many times it was called (sum over its callers)
    hot: tuple = ()            # (file, line) of its largest self cost (inlined code included)

    def where(self) -> str:
        """`file:line` (or the object, without debug information), the file shortened
        (`display_path`). A function the compiler instantiated from a system header (a
        std::function thunk whose body is an inlined lambda of ours) is placed at its
        hottest line instead, which is where its code came from."""
        if self.file and self.file != "???":
            file, line = self.file, self.line
            if file.startswith(SYSTEM_HEADERS) and self.hot:
                file, line = self.hot
            path = display_path(file)
            return f"{path}:{line}" if line else path
        return os.path.basename(self.obj) if self.obj else "?"


def display_path(path: str) -> str:
    """A source path as people read it: relative to the current folder when under it, from
    the package folder for installed packages, else its last two components."""
    cwd = os.getcwd() + os.sep
    if path.startswith(cwd):
        return path[len(cwd):]
    for mark in ("/site-packages/", "/dist-packages/"):
        if mark in path:
            return path.split(mark, 1)[1]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/".join(parts[-2:]) if parts else path


@dataclasses.dataclass
class Dump:
    """One callgrind dump read per function. `calls[(caller, callee)]` = [count, inclusive
    cost per event]; `lines[(file, line)]` = self cost per event at that source line (code
    inlined from another file keeps that file's name)."""
    label: str | None
    events: list
    totals: list
    functions: dict
    calls: dict
    lines: dict

    def vector(self, values) -> dict:
        """{event: count} of a cost vector."""
        return dict(zip(self.events, values))


def _ints(fields, n: int) -> list:
    out = [int(x) for x in fields[:n]]
    return out + [0] * (n - len(out))


def _add(acc: list, values: list) -> None:
    for i, v in enumerate(values):
        acc[i] += v


class _Names:
    """The compressed names of one file: `(N) name` defines, `(N)` refers."""

    def __init__(self, path):
        self.path = path
        self.known: dict[tuple, str] = {}

    def __call__(self, kind: str, text: str, lineno: int) -> str:
        m = _NAMED.match(text)
        if not m:
            return text
        key = (kind, m.group(1))
        if m.group(2) is not None:
            self.known[key] = m.group(2)
            return m.group(2)
        if key not in self.known:
            raise CallgrindFormatError(f"{self.path}:{lineno}: {kind} id ({m.group(1)}) used "
                                       f"before it is named")
        return self.known[key]


def read(path: str) -> Dump:
    """The dump in `path`, per function (CallgrindFormatError when it is not one)."""
    names = _Names(path)
    events: list | None = None
    positions = 1
    label, totals, summary = None, None, None
    functions: dict[str, Function] = {}
    calls: dict[tuple, list] = {}
    lines: dict[tuple, list] = {}
    obj = fl = fi = ""
    fn: Function | None = None
    cobj = cfile = cfn = None
    pending_calls = 0
    last = [0, 0]                      # previous position(s), for +N / -N / *
    line_at = positions - 1           # which position is the source line
    fn_lines: dict[str, dict] = {}    # function -> {(file, line): its first event's self cost}

    def function(name, o, f) -> Function:
        if events is None:
            raise CallgrindFormatError(f"{path}: fn= before the events: line")
        found = functions.get(name)
        if found is None:
            found = functions[name] = Function(name, o, f, 0, [0] * len(events))
        return found

    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, raw in enumerate(handle, 1):
            line = raw.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            first = line[0]
            if first.isdigit() or first in "+-*" or line.startswith("0x"):
                if events is None:
                    raise CallgrindFormatError(f"{path}:{lineno}: a cost line before events:")
                fields = line.split()
                pos = []
                for k in range(positions):
                    text = fields[k]
                    base = last[k]
                    if text == "*":
                        value = base
                    elif text[0] in "+-":
                        value = base + int(text, 0)
                    else:
                        value = int(text, 0)
                    pos.append(value)
                last[:positions] = pos
                cost = _ints(fields[positions:], len(events))
                if fn is None:
                    raise CallgrindFormatError(f"{path}:{lineno}: a cost line outside fn=")
                if pending_calls:
                    callee = function(cfn, cobj if cobj is not None else obj,
                                      cfile if cfile is not None else (fi or fl))
                    callee.calls += pending_calls
                    entry = calls.setdefault((fn.name, callee.name), [0, [0] * len(events)])
                    entry[0] += pending_calls
                    _add(entry[1], cost)
                    pending_calls, cobj, cfile, cfn = 0, None, None, None
                    continue
                _add(fn.self_cost, cost)
                src = fi or fl
                where = pos[line_at]
                if where:
                    _add(lines.setdefault((src, where), [0] * len(events)), cost)
                    spots = fn_lines.setdefault(fn.name, {})
                    spots[(src, where)] = spots.get((src, where), 0) + cost[0]
                    if src == fn.file and fn.line == 0:
                        fn.line = where
                continue
            key, sep, value = line.partition("=")
            if sep and key in ("fn", "fl", "fi", "fe", "ob", "cob", "cfi", "cfl", "cfn"):
                kind = {"fn": "fn", "cfn": "fn", "ob": "ob", "cob": "ob"}.get(key, "fl")
                name = names(kind, value, lineno)
                if key == "fn":
                    fn = function(name, obj, fl)
                    fi = ""
                elif key == "fl":
                    fl, fi = name, ""
                elif key in ("fi", "fe"):
                    fi = "" if name == fl else name
                elif key == "ob":
                    obj = name
                elif key == "cob":
                    cobj = name
                elif key in ("cfi", "cfl"):
                    cfile = name
                else:
                    cfn = name
                continue
            if key == "calls" and sep:
                if cfn is None:
                    cfn = fn.name if fn is not None else None
                if cfn is None:
                    raise CallgrindFormatError(f"{path}:{lineno}: calls= outside fn=")
                pending_calls = int(value.split()[0])
                continue
            if key in ("jump", "jcnd", "jfi", "jfn") and sep:
                if key == "jfi":
                    names("fl", value, lineno)
                elif key == "jfn":
                    names("fn", value, lineno)
                continue
            head, colon, rest = line.partition(":")
            if not colon:
                raise CallgrindFormatError(f"{path}:{lineno}: not a callgrind line: "
                                           f"{line[:80]!r}")
            if line.startswith(TRIGGER):
                label = line[len(TRIGGER):].strip()
            elif head == "events":
                events = rest.split()
            elif head == "positions":
                kinds = rest.split()
                positions = len(kinds)
                line_at = kinds.index("line") if "line" in kinds else -1
                last = [0] * positions
            elif head in ("summary", "totals"):
                values = [int(x) for x in rest.split()]
                if head == "summary":
                    summary = values
                else:
                    totals = values
    if events is None or (totals is None and summary is None):
        raise CallgrindFormatError(f"{path}: not a callgrind dump (no events: or totals:)")
    if line_at < 0:                    # `positions: instr`: no source lines
        for f in functions.values():
            f.line = 0
        lines = {}
    for name, spots in fn_lines.items():
        functions[name].hot = max(spots, key=spots.get)
    vector = totals if totals is not None else summary
    vector = vector + [0] * (len(events) - len(vector))
    return Dump(label, events, vector, functions, calls, lines)
