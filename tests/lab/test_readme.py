"""The README's Python snippet runs where a new user first tries it: in the repository root,
with the package installed as the README says (the source tree must not shadow it)."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_readme_python_snippet_runs_in_the_repository_root(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert '"reports/example/table"' in code
    code = code.replace('"reports/example/table"', repr(str(tmp_path / "table")))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.glob("table-*-of-*")), "the snippet's save wrote no checkpoint"
