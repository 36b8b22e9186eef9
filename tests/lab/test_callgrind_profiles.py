"""Callgrind dumps read per function, and the folded stacks built from them: on real callgrind
output of a small C program whose call graph is known (compiled and run here), and on the
format's compressions spelled out by hand."""
import os
import shutil
import subprocess
import textwrap

import pytest

from lab.explain import folded
from lab.explain.callgrind_out import CallgrindFormatError, read

PROGRAM = textwrap.dedent("""\
    #include <stdio.h>
    #include <stdlib.h>
    __attribute__((noinline)) long leaf(long x) { long s = 0; for (long i = 0; i < x; ++i) s += i * x; return s; }
    __attribute__((noinline)) long mid(long x) { return leaf(x) + leaf(2 * x); }
    __attribute__((noinline)) long fact(long n) { return n <= 1 ? leaf(10) : n * fact(n - 1); }
    int main(int argc, char** argv) {
      long n = argc > 1 ? atol(argv[1]) : 1000;
      printf("%ld\\n", mid(n) + mid(n / 2) + leaf(n) + fact(12));
      return 0;
    }
    """)


def _ir(events):
    return events.get("Ir", 0)


@pytest.fixture(scope="module")
def program_dump(tmp_path_factory):
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        pytest.skip("needs valgrind and gcc (scripts/setup-system.sh installs them)")
    root = tmp_path_factory.mktemp("cg")
    (root / "prog.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O1", "-g", "-o", str(root / "prog"), str(root / "prog.c")],
                   check=True)
    out = root / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=no", "--dump-line=yes",
                    "--cache-sim=yes", f"--callgrind-out-file={out}", str(root / "prog"),
                    "1000"], check=True, capture_output=True)
    return read(str(out))


def _exact_inclusive(dump, name):
    f = dump.functions[name]
    return f.self_cost[0] + sum(v[1][0] for (a, c), v in dump.calls.items()
                                if a == name and c != name)


def test_a_real_dump_adds_up(program_dump):
    d = program_dump
    assert d.events[0] == "Ir" and "D1mr" in d.events
    assert sum(f.self_cost[0] for f in d.functions.values()) == d.totals[0]
    assert d.functions["leaf"].calls == 6 and d.functions["mid"].calls == 2
    assert d.calls[("main", "mid")][0] == 2 and d.calls[("mid", "leaf")][0] == 4
    assert d.functions["main"].where().endswith("prog.c:6")
    assert d.functions["leaf"].where().endswith("prog.c:3")


def test_folded_stacks_keep_callgrinds_inclusive_costs(program_dump):
    d = program_dump
    stacks = folded.from_dump(d, _ir, min_share=0)
    assert folded.total(stacks) == pytest.approx(d.totals[0])
    fn = folded.functions(stacks)
    for name in ("main", "mid", "leaf", "fact"):
        # exact up to the share libc's start-up recursion ((below main) <-> its caller) takes
        assert fn[name]["inclusive"] == pytest.approx(_exact_inclusive(d, name), rel=1e-4)
    # leaf is called from three places; the stacks keep them apart
    leaf_paths = {k.split(";main;", 1)[1]: v for k, v in stacks.items()
                  if ";main;" in k and k.endswith("leaf")}
    assert set(leaf_paths) == {"leaf", "mid;leaf", "fact;fact;leaf"}
    assert leaf_paths["mid;leaf"] == pytest.approx(d.calls[("mid", "leaf")][1][0], rel=1e-4)
    # recursion (fact'2 -> fact'2) folds into one frame per level callgrind separates
    assert all("fact'2" not in k for k in stacks)


def test_pruning_keeps_the_total(program_dump):
    stacks = folded.from_dump(program_dump, _ir, min_share=0)
    small = folded.pruned(stacks, 0.01)
    assert len(small) < len(stacks)
    assert folded.total(small) == pytest.approx(folded.total(stacks))
    assert folded.functions(small)["mid"]["inclusive"] == pytest.approx(
        folded.functions(stacks)["mid"]["inclusive"])


DUMP = textwrap.dedent("""\
    # callgrind format
    version: 1
    positions: line
    events: Ir D1mr
    desc: Trigger: Client Request: s#0#1#lookup
    fl=(1) /src/a.c
    fn=(1) outer(int)
    10 5 1
    +2 3
    fi=(2) /src/inl.h
    40 7 2
    fe=(1)
    * 1
    cfl=(1)
    cfn=(2) ns::inner(long) const
    calls=3 20
    -1 100 4
    fn=(2)
    20 100 4
    ob=(1) /lib/libc.so
    fl=(3) ???
    fn=(3) 0x0000000000001234
    0 9
    cfn=(1)
    calls=1 10
    0 116 7
    totals: 125 7
    """)


def test_the_formats_compressions(tmp_path):
    path = tmp_path / "callgrind.out.3"
    path.write_text(DUMP)
    d = read(str(path))
    assert d.label == "s#0#1#lookup" and d.totals == [125, 7]
    outer = d.functions["outer(int)"]
    assert outer.self_cost == [16, 3] and outer.line == 10 and outer.file == "/src/a.c"
    assert d.lines[("/src/inl.h", 40)] == [7, 2]          # inlined code keeps its file
    assert d.lines[("/src/a.c", 12)] == [3, 0]             # +2: relative to line 10
    assert d.lines[("/src/a.c", 40)] == [1, 0]             # *: the previous line, any file
    assert d.calls[("outer(int)", "ns::inner(long) const")] == [3, [100, 4]]
    assert d.functions["ns::inner(long) const"].calls == 3
    assert d.functions["0x0000000000001234"].where() == "libc.so"
    stacks = folded.from_dump(d, _ir, min_share=0)
    assert stacks == {"0x0000000000001234": 9, "0x0000000000001234;outer": 16,
                      "0x0000000000001234;outer;ns::inner": 100}


def test_short_names():
    assert folded.short_name("hashlab::Table::lookup(long const*, long, float*) const") == \
        "hashlab::Table::lookup"
    assert folded.short_name(
        "std::_Function_handler<void (long, long, int), hashlab::Table::apply_gradients(long "
        "const*, float const*)::{lambda(long, long, int)#1}>::_M_invoke(std::_Any_data const&)"
    ) == "std::_Function_handler<void , hashlab::Table::apply_gradients::{lambda#1}>::_M_invoke"
    assert folded.short_name("_PyEval_EvalFrameDefault'2") == "_PyEval_EvalFrameDefault"
    assert folded.short_name("foo::operator()(int) const") == "foo::operator()"


@pytest.mark.parametrize("text, why", [
    ("events: Ir\nfn=(1)\n0 1\ntotals: 1\n", "used before it is named"),
    ("events: Ir\n0 5\ntotals: 5\n", "outside fn="),
    ("fn=(1) f\n", "before the events"),
    ("hello world\n", "not a callgrind line"),
])
def test_what_is_not_a_dump_is_refused(tmp_path, text, why):
    path = tmp_path / "bad.out"
    path.write_text(text)
    with pytest.raises(CallgrindFormatError, match=why):
        read(str(path))


def test_pyspy_raw_output(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("a (x.py:1);b (x.py:2) 3\na (x.py:1) 1\nmalformed\n")
    stacks = folded.read_pyspy(str(path))
    assert stacks == {"a (x.py:1);b (x.py:2)": 3.0, "a (x.py:1)": 1.0}
    cut = folded.below(stacks, lambda f: f.startswith("b "))
    assert cut == {"b (x.py:2)": 3.0}
    assert os.path.exists(path)
