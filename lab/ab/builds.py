"""The two builds an A/B run compares, and the cache that builds them (as asv keeps one
environment per commit).

A build spec is one of:
- `current`: this environment (the interpreter running `hashlab`, with the package it has
  installed, e.g. the checkout's editable install);
- the path of a Python interpreter (another venv with hashtable-lab installed);
- a git ref of the checkout (`main`, `HEAD~1`, a sha), optionally followed by patches,
  `REF+FILE.patch[+FILE2.patch...]`: exported with `git archive`, patched (`git apply`), and
  installed into a venv of its own under the cache folder, keyed by commit and patches. The venv holds only hashtable-lab itself; every dependency comes from
  this environment (a `.pth` line naming its site-packages), so both builds run on the same
  numpy, scipy and TensorFlow and a build costs one compile of the native engine.

`ensure` returns a `Build`: the interpreter to start workers with and what it is.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import venv

CURRENT = "current"
READY = "READY.json"
RECIPE = 2                      # bump when the way builds are made changes: old ones rebuild
KEEP = 8                        # builds kept in the cache (least recently used go first)...
KEEP_RECENT_S = 24 * 3600       # ...but none used in the last day (a session may be using it)


class BuildError(Exception):
    """A build spec that cannot be resolved or built (the message says why)."""


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    text: str                             # the build, without its patches
    patches: tuple[str, ...] = ()         # unified diffs applied to a ref's export

    @classmethod
    def parse(cls, text: str) -> "BuildSpec":
        """`REF`, `REF+a.patch+b.patch`, `current` or an interpreter's path."""
        spec, *patches = text.split("+")
        if not spec or any(not p for p in patches):
            raise BuildError(f"{text!r}: expected REF, REF+FILE.patch, `current` or the path "
                             f"of a Python interpreter")
        return cls(spec, tuple(patches))

    def __str__(self) -> str:
        return "+".join((self.text, *self.patches))

    @property
    def kind(self) -> str:
        if self.text == CURRENT:
            return "current"
        if os.sep in self.text and os.path.isfile(self.text) and os.access(self.text,
                                                                            os.X_OK):
            return "python"
        return "ref"


@dataclasses.dataclass(frozen=True)
class Build:
    python: str                           # interpreter the workers run on
    description: str                      # for people: what this build is
    commit: str | None = None
    dirty: bool | None = None
    patches: tuple[str, ...] = ()         # names of the patches applied
    root: str | None = None               # cache folder of a built ref

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def repo_root(cwd: str | None = None) -> str:
    out = _git(["rev-parse", "--show-toplevel"], cwd or os.getcwd(), check=False)
    if out.returncode:
        raise BuildError(f"{os.path.abspath(cwd or os.getcwd())} is not a git checkout: a git "
                         f"ref can only be built from inside the repository (or pass the "
                         f"path of a Python interpreter, or `current`)")
    return out.stdout.strip()


def default_cache(root: str) -> str:
    return os.environ.get("HASHLAB_AB_CACHE") or os.path.join(root, ".hashlab", "ab-builds")


def ensure(spec: BuildSpec, cache: str | None = None, log=print, cuda: bool = False) -> Build:
    """The build `spec` names, building it first when it is a ref not yet in the cache."""
    for patch in spec.patches:
        if not os.path.isfile(patch):
            raise BuildError(f"{spec}: patch {patch}: no such file")
    if spec.kind == "current":
        if spec.patches:
            raise BuildError("a patch applies to a git ref, not to `current` (name the ref: "
                             "e.g. HEAD)")
        from lab.timing import git_info
        info = git_info()
        dirty = " with uncommitted changes" if info["dirty"] else ""
        return Build(sys.executable, f"this environment ({sys.executable}; checkout at "
                     f"{(info['commit'] or 'no commit')[:12]}{dirty})", info["commit"],
                     info["dirty"])
    if spec.kind == "python":
        if spec.patches:
            raise BuildError("a patch applies to a git ref, not to an interpreter")
        return Build(os.path.abspath(spec.text), f"the interpreter {spec.text}")
    root = repo_root()
    commit = _resolve(root, spec.text)
    return _built(root, commit, spec, cache or default_cache(root), log, cuda)


def _git(args, cwd, check=True, binary=False):
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=not binary)
    except OSError as exc:
        raise BuildError(f"cannot run git: {exc}") from exc
    if check and out.returncode:
        err = out.stderr.decode(errors="replace") if binary else out.stderr
        raise BuildError(f"git {' '.join(args)}: {err.strip()}")
    return out


def _resolve(root: str, ref: str) -> str:
    if ref.startswith("-"):
        raise BuildError(f"{ref!r} is not a git ref")
    out = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root, check=False)
    if out.returncode:
        raise BuildError(f"{ref!r} is neither `current`, an interpreter nor a commit of the "
                         f"checkout at {root}")
    return out.stdout.strip()


def _key(commit: str, patches, cuda: bool) -> str:
    h = hashlib.sha256(f"{RECIPE} {sys.version} cuda={cuda}".encode())
    for path in patches:
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return f"{commit[:12]}-{h.hexdigest()[:10]}"


def _site_packages() -> list[str]:
    """This environment's package folders, for the build venv's `.pth` line."""
    paths = []
    for name in ("purelib", "platlib"):
        p = sysconfig.get_paths()[name]
        if p not in paths:
            paths.append(p)
    return paths


def _built(root, commit, spec, cache, log, cuda) -> Build:
    key = _key(commit, spec.patches, cuda)
    folder = os.path.join(cache, key)
    os.makedirs(cache, exist_ok=True)
    names = tuple(os.path.basename(p) for p in spec.patches)
    label = commit[:12] + (f" ({spec.text})" if not commit.startswith(spec.text) else "") + \
        "".join(f" + {n}" for n in names)
    with open(os.path.join(cache, key + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)             # one builder per key at a time
        python = os.path.join(folder, "venv", "bin", "python")
        ready = os.path.join(folder, READY)
        if not os.path.exists(ready):
            started = time.perf_counter()
            log(f"ab: building {label} in {folder} (once; later runs reuse it)")
            shutil.rmtree(folder, ignore_errors=True)   # a build that was cut short
            try:
                _build(root, commit, spec.patches, folder, cuda)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            with open(ready, "w", encoding="utf-8") as f:
                json.dump({"commit": commit, "ref": spec.text, "patches": names,
                           "python": sys.version, "cuda": cuda,
                           "seconds": round(time.perf_counter() - started, 1)}, f)
            log(f"ab: built {label} in {time.perf_counter() - started:.0f} s")
        os.utime(ready)                              # most recently used
    _prune(cache, keep_key=key)
    return Build(python, f"{label}, built in {folder}", commit, False, names, folder)


def export(root: str, commit: str, patches, src: str) -> None:
    """The tree of `commit` into `src` (a new folder), with `patches` applied."""
    os.makedirs(src)
    archive = _git(["archive", "--format=tar", commit], root, binary=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r:") as tar:
        tar.extractall(src, filter="data")
    # `git apply` inside a repository's work tree (the cache lives in the checkout) patches
    # paths relative to that repository and silently skips the rest: make it see no
    # repository above `src`, so it works on `src` alone, as patch(1) would.
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=os.path.dirname(os.path.abspath(src)))
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    for patch in patches:
        path = os.path.abspath(patch)
        out = subprocess.run(["git", "apply", path], cwd=src, env=env, capture_output=True,
                             text=True)
        check = subprocess.run(["git", "apply", "--check", "--reverse", path], cwd=src,
                               env=env, capture_output=True, text=True)
        if out.returncode or check.returncode:
            raise BuildError(f"patch {patch} does not apply to {commit[:12]}: "
                             f"{' '.join((out.stderr + check.stderr).split())[-400:]}")


def _build(root, commit, patches, folder, cuda) -> None:
    export(root, commit, patches, os.path.join(folder, "src"))
    src = os.path.join(folder, "src")
    env_dir = os.path.join(folder, "venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = os.path.join(env_dir, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                         "['purelib'])"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with open(os.path.join(site, "_hashlab_ab_dependencies.pth"), "w") as f:
        f.write("\n".join(_site_packages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HASHLAB_CUDA="AUTO" if cuda else "OFF", PIP_DISABLE_PIP_VERSION_CHECK="1",
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 1))
    # pip and the build backend (scikit-build-core, nanobind) come from this environment too.
    cmd = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-cache-dir",
           "--no-warn-script-location", "-q", src]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise BuildError(f"building {commit[:12]} failed (pip exit {out.returncode}; needs "
                         f"scikit-build-core and nanobind here: the `bench` extra):\n{tail}")
    check = subprocess.run([python, "-P", "-c", _CHECK], env=env, capture_output=True,
                           text=True, cwd=folder)
    where, _, worker = check.stdout.strip().partition(" ")
    if check.returncode or not where.startswith(os.path.realpath(env_dir) + os.sep):
        raise BuildError(f"the build of {commit[:12]} does not import its own engine "
                         f"({(check.stdout + check.stderr).strip()[-300:]})")
    if worker != "worker":
        raise BuildError(f"{commit[:12]} predates `hashlab ab` (it has no lab.ab.worker): "
                         f"measure it with `hashlab bench --profile gate --save base.json` "
                         f"and compare with `hashlab gate`")


# What a finished build must import: its own engines package (not this environment's) and
# the A/B worker.
_CHECK = ("import os, importlib.util, engines, engines.native._native_cpu\n"
          "print(os.path.realpath(engines.__file__),\n"
          "      'worker' if importlib.util.find_spec('lab.ab.worker') else 'none')")


def _prune(cache: str, keep_key: str) -> None:
    """Keep the KEEP most recently used builds, and every build used in the last day."""
    built = []
    for name in os.listdir(cache):
        ready = os.path.join(cache, name, READY)
        if os.path.exists(ready):
            built.append((os.path.getmtime(ready), name))
    for used, name in sorted(built, reverse=True)[KEEP:]:
        if name == keep_key or time.time() - used < KEEP_RECENT_S:
            continue
        with open(os.path.join(cache, name + ".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                          # in use by another run
            shutil.rmtree(os.path.join(cache, name), ignore_errors=True)
