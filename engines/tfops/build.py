"""Builds the TensorFlow op library (`_hashlab_tfops.so`) on first use, into a cache.

A custom-op library is tied to the exact TensorFlow it was compiled against, and pip builds
this package in an isolated environment without TensorFlow, so the library cannot be part of
the wheel. Instead the wheel carries the C++ sources (the op kernels in engines/tfops/src and
the native core in engines/native/src) and the first `load()` compiles them with
`tf.sysconfig`'s flags into

    $HASHLAB_TFOPS_CACHE  (default: $XDG_CACHE_HOME/hashtable-lab/tfops or ~/.cache/...)
        tf<version>-<key>/_hashlab_tfops.so

where `key` hashes the TensorFlow version and flags, the compiler, our flags and every
source and header. Later loads (any process) find it there. Concurrent first loads wait on a
file lock; a build is renamed into place only when complete. `python -m engines.tfops build`
builds ahead of time (CI does, so a compiler error shows up as its own step).
"""
from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

LIB_NAME = "_hashlab_tfops.so"
OPS_SRC = Path(__file__).resolve().parent / "src"
CORE_SRC = Path(__file__).resolve().parent.parent / "native" / "src"
# The core's nanobind module file is not part of the table core.
CORE_EXCLUDE = frozenset({"bindings.cc"})
# The native engine's numerics (engines/native/CMakeLists.txt): never fuse a*b+c into an FMA,
# no -march=native. C++20 as the core requires; TensorFlow's headers compile under it too.
CXX_FLAGS = ("-std=c++20", "-fPIC", "-O3", "-DNDEBUG", "-ffp-contract=off", "-fno-math-errno",
             "-Wall", "-Wno-sign-compare", "-Wno-unused-parameter")
_loaded = None


class BuildError(RuntimeError):
    """The op library could not be compiled or linked; the message carries the compiler's
    command and output."""


def sources() -> list[Path]:
    core = sorted(p for p in CORE_SRC.glob("*.cc") if p.name not in CORE_EXCLUDE)
    return core + sorted(OPS_SRC.glob("*.cc"))


def _headers() -> list[Path]:
    return sorted(CORE_SRC.glob("*.h")) + sorted(OPS_SRC.glob("*.h"))


def compiler() -> str:
    """The C++ compiler ($CXX, else g++); BuildError when there is none."""
    cxx = os.environ.get("CXX", "g++")
    path = shutil.which(cxx)
    if path is None:
        raise BuildError(f"no C++ compiler: {cxx!r} is not on PATH (set CXX, or install g++)")
    return path


def _tf_flags() -> tuple[list[str], list[str]]:
    import tensorflow as tf
    compile_flags = [f for f in tf.sysconfig.get_compile_flags() if not f.startswith(("-std=",
                                                                                     "--std="))]
    return compile_flags, list(tf.sysconfig.get_link_flags())


def cache_root() -> Path:
    env = os.environ.get("HASHLAB_TFOPS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hashtable-lab" / "tfops"


def library_path() -> Path:
    """Where the library for this TensorFlow and these sources lives (built or not)."""
    import tensorflow as tf
    cxx = compiler()
    compile_flags, link_flags = _tf_flags()
    h = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    for part in (tf.__version__, tf.sysconfig.get_lib(), version, *compile_flags, *link_flags,
                 *CXX_FLAGS):
        h.update(part.encode() + b"\0")
    for path in sources() + _headers():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return cache_root() / f"tf{tf.__version__}-{h.hexdigest()[:16]}" / LIB_NAME


def has_cached_library() -> bool:
    """Whether a library built for the installed TensorFlow version sits in the cache (read
    from package metadata: TensorFlow is not imported)."""
    import importlib.metadata
    try:
        version = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(cache_root().glob(f"tf{version}-*/{LIB_NAME}"))


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        raise BuildError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                         f"{out[-6000:]}")


def _compile_and_link(out: Path, jobs: int) -> None:
    cxx = compiler()
    compile_flags, link_flags = _tf_flags()
    includes = [f"-I{CORE_SRC}", f"-I{OPS_SRC}"]
    objs = []
    cmds = []
    for src in sources():
        obj = out.parent / (src.parent.name + "_" + src.stem + ".o")
        objs.append(str(obj))
        cmds.append([cxx, *CXX_FLAGS, *includes, *compile_flags, "-c", str(src), "-o", str(obj)])
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for fut in [pool.submit(_run, cmd) for cmd in cmds]:
            fut.result()
    _run([cxx, "-shared", *objs, "-o", str(out), *link_flags, "-lpthread"])


def build(jobs: int | None = None, force: bool = False) -> Path:
    """The library's path, compiling it first when the cache does not have it."""
    path = library_path()
    if path.exists() and not force:
        return path
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent.parent / f".{path.parent.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # another process may be building it now
        if path.exists() and not force:
            return path
        jobs = jobs or max(1, min(len(sources()), os.cpu_count() or 1))
        with tempfile.TemporaryDirectory(dir=path.parent.parent, prefix=".build-") as tmp:
            staged = Path(tmp) / LIB_NAME
            started = time.perf_counter()
            _compile_and_link(staged, jobs)
            (Path(tmp) / "BUILD_INFO").write_text(
                f"built in {time.perf_counter() - started:.1f} s from {len(sources())} "
                f"sources with {jobs} jobs\n")
            path.parent.mkdir(exist_ok=True)
            for name in (LIB_NAME, "BUILD_INFO"):
                os.replace(Path(tmp) / name, path.parent / name)
    return path


def load():
    """The loaded op library module (tf.load_op_library), built first when needed."""
    global _loaded
    if _loaded is None:
        import tensorflow as tf
        _loaded = tf.load_op_library(str(build()))
    return _loaded
