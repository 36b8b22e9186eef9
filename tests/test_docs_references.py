"""The repository stands alone: every spec citation resolves to a heading of our own docs, nothing
points at files outside the repository, and the markdown links in README.md and docs/ work.

Citation notation (defined in docs/semantics.md): `core §2.8` is section 2.8 of
docs/monolith/table_core.md, `fsf §A.8` (or `fsf Part A`) is docs/monolith/filters_checkpoints_fused.md,
`semantics §3` is docs/semantics.md and `docs/perf_anchors.md §5` is that file. A chain such as
`core §3.5, §3.6` or `fsf §A.7, §B.6` keeps its prefix. A bare `§N` is read as the document it
appears in when that is one of these docs; elsewhere `§<digit>...` means core and `§<letter>...`
means fsf.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DOCS = {
    "core": "docs/monolith/table_core.md",
    "fsf": "docs/monolith/filters_checkpoints_fused.md",
    "semantics": "docs/semantics.md",
    "perf": "docs/perf_anchors.md",
}

# Words that open a citation chain, and the document each names.
_PREFIXES = [
    (r"\bcore\b|(?:docs/)?(?:monolith/)?table_core\.md", "core"),
    (r"\bfsf\b|(?:docs/)?(?:monolith/)?filters_checkpoints_fused\.md", "fsf"),
    (r"(?:docs/)?\bsemantics(?:\.md)?\b", "semantics"),
    (r"(?:docs/)?\bperf_anchors\.md", "perf"),
]
_REF = (r"§\s?(?P<sec>[A-F](?:\.\d+[a-z]?)*|\d+(?:\.\d+)*)"
        r"|\bPart (?P<part>[A-F](?:\.\d+)?)\b"
        r"|\bAppendix (?P<app>[A-Z])\b")
_TOKEN = re.compile("|".join(f"(?P<p{i}>{rx})" for i, (rx, _) in enumerate(_PREFIXES))
                    + "|" + _REF)
# What may sit between two references of one chain: separators and test numbers (`#5, #20-#23`).
_CHAIN_GAP = re.compile(r"(?:[\s,;/&()\[\]–-]|#\d+|\band\b|\bor\b|\bto\b)*")

# Strings that would point outside the repository. Built from pieces so that this file does not
# itself contain them (the repository is checked with `git grep` for the same strings).
_FORBIDDEN = [
    "../" + "shared",
    "/work/" + "shared",
    "shared/" + "spec",
    "DESIGN" + ".md",
    "monolith_" + "table_core",
    "monolith_" + "filter_save",
]
# Our docs that share a name with files users do not have: outside docs/, write the path.
_BARE_DOC_NAME = re.compile(r"(?<![\w/.-])(toolchain|perf_anchors|architecture)\.md")
_MD_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
# A heading's section key: `§2.8 ...`, `Part A ...`, `Appendix A ...` or a plain `3. ...`.
_HEADING_ID = re.compile(r"§\s?(?P<sec>[A-F](?:\.\d+[a-z]?)*|\d+(?:\.\d+)*)"
                         r"|Part (?P<part>[A-F](?:\.\d+)?)\b|Appendix (?P<app>[A-Z])\b"
                         r"|(?P<num>\d+(?:\.\d+)*)\.?(?=\s)")


def _key(m: re.Match) -> str:
    if m.group("sec"):
        return m.group("sec")
    if m.groupdict().get("num"):
        return m.group("num")
    if m.group("part"):
        return m.group("part")
    return "Appendix " + m.group("app")


def _default_namespace(path: str, key: str) -> str:
    for ns, doc in DOCS.items():
        if path == doc:
            return ns
    return "fsf" if key[0].isalpha() and not key.startswith("Appendix") else "core"


def citations(line: str, path: str = "") -> list[tuple[str, str]]:
    """(namespace, section key) of every citation in one line of `path`."""
    found = []
    ns, last_end = None, 0
    for m in _TOKEN.finditer(line):
        prefix = next((i for i in range(len(_PREFIXES)) if m.group(f"p{i}")), None)
        if prefix is not None:
            ns, last_end = _PREFIXES[prefix][1], m.end()
            continue
        if ns is not None and not _CHAIN_GAP.fullmatch(line[last_end:m.start()]):
            ns = None                     # prose between: the chain has ended
        key = _key(m)
        found.append((ns or _default_namespace(path, key), key))
        last_end = m.end()
    return found


def headings(text: str) -> set[str]:
    """Section keys of a document's headings: `## §2.8 ...`, `## Part A ...`, `## Appendix A`."""
    keys = set()
    for line in text.splitlines():
        h = _HEADING.match(line)
        if h:
            m = _HEADING_ID.match(h.group(1).strip().lstrip("`*"))
            if m:
                keys.add(_key(m))
    return keys


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode()
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []                        # not a git checkout (e.g. an unpacked sdist)
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames
                           if not d.startswith(".") and d not in ("build", "__pycache__")]
            files += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames]
    return sorted(f.replace(os.sep, "/") for f in files if (ROOT / f).is_file())


def _texts() -> dict[str, str]:
    texts = {}
    for f in _tracked_files():
        try:
            texts[f] = (ROOT / f).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue                      # binary files cite nothing
    return texts


@pytest.fixture(scope="module")
def texts():
    return _texts()


def test_citation_parser():
    line = "(core §7.1 #5, #20-#23, §3.5; fsf §A.7, Part E.1) see semantics §1, §6"
    assert citations(line) == [("core", "7.1"), ("core", "3.5"), ("fsf", "A.7"), ("fsf", "E.1"),
                               ("semantics", "1"), ("semantics", "6")]
    assert citations("core §1.1 / Appendix A") == [("core", "1.1"), ("core", "Appendix A")]
    assert citations("As fsf Part A, with the fixed hash of §1.", DOCS["semantics"]) == [
        ("fsf", "A"), ("semantics", "1")]
    assert citations("# §7.1 #31 and §B.2 vector 3", "tests/x.py") == [("core", "7.1"),
                                                                       ("fsf", "B.2")]
    assert citations("docs/perf_anchors.md §5 and core §4.2–§4.4") == [
        ("perf", "5"), ("core", "4.2"), ("core", "4.4")]
    assert citations("no citation: core §x, 10 % of §") == []
    assert headings("## §2 Ops\n### §2.8 Save\n## Part A — Filters\n### §A.8 Save\n"
                    "## Appendix A: protos\n## 3. Optimizers\n#### B.3.1 not a section id\n") == {
        "2", "2.8", "A", "A.8", "Appendix A", "3"}


def test_every_spec_citation_resolves_to_a_heading(texts):
    docs = {ns: headings(texts.get(path, "")) for ns, path in DOCS.items()}
    missing_docs = [path for ns, path in DOCS.items() if path not in texts]
    assert not missing_docs, f"reference docs missing from the repository: {missing_docs}"
    cited, broken = 0, []
    for path, text in texts.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            for ns, key in citations(line, path):
                cited += 1
                if key not in docs[ns]:
                    broken.append(f"{path}:{lineno}: {ns} §{key} has no heading in {DOCS[ns]}")
    assert cited > 0, "no citations found: the parser or the file list is broken"
    assert not broken, "citations that resolve to no heading:\n" + "\n".join(broken)


def test_nothing_points_outside_the_repository(texts):
    bad = []
    for path, text in texts.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            bad += [f"{path}:{lineno}: {s!r}" for s in _FORBIDDEN if s in line]
            if not path.startswith("docs/"):
                bad += [f"{path}:{lineno}: write docs/{m.group(0)}"
                        for m in _BARE_DOC_NAME.finditer(line)]
    assert not bad, "references to files a clone does not have:\n" + "\n".join(bad)


def test_markdown_links_point_to_existing_files(texts):
    pages = [p for p in texts if p == "README.md" or (p.startswith("docs/") and p.endswith(".md"))]
    assert "README.md" in pages
    broken = []
    for page in pages:
        for m in _MD_LINK.finditer(texts[page]):
            target = m.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue                  # external URL or an anchor on the same page
            resolved = (ROOT / page).parent / target.split("#", 1)[0]
            if not resolved.exists():
                broken.append(f"{page}: [{target}] -> {os.path.relpath(resolved, ROOT)}")
    assert not broken, "markdown links to missing files:\n" + "\n".join(broken)


def test_asv_project_url_is_not_another_project():
    # asv.conf.json allows // comment lines; the title link of the published pages must not
    # lead to Monolith (or any other project's site).
    text = (ROOT / "asv.conf.json").read_text(encoding="utf-8")
    conf = json.loads("\n".join(line for line in text.splitlines()
                                if not line.lstrip().startswith("//")))
    url = conf.get("project_url", "#")      # asv's default is "#"
    is_remote = re.match(r"[a-z][a-z0-9+.-]*://", url) is not None
    assert not is_remote or "hashtable-lab" in url, (
        f"asv.conf.json project_url {url!r} points at another project's site")
