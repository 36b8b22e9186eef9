"""Argument checks shared by every engine: one wording for every bad-input error.

Policy (docs/semantics.md §8): ids are 1-D int64; rows are float32 [n, dim] (or flat
[n*dim]); values and gradients must be finite. Nothing is cast silently except Python
lists/tuples, which become arrays of the required dtype when that is exact (a float id or a
string value is rejected, not truncated or parsed).
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

from engines.formats.manifest import MAX_SHARDS

MAX_REQ_TIME = (1 << 32) - 1          # entry timestamps are uint32 seconds
MAX_GLOBAL_STEP = (1 << 63) - 1       # an int64 step counter that starts at 0
MAX_INT64 = (1 << 63) - 1
MAX_SHARD_INDEX = (1 << 31) - 1       # save_as_tensor's shard inputs are int32, as Monolith's
_INT64 = np.iinfo(np.int64)


def _as_array(x, dtype, name):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__array__") or hasattr(x, "__dlpack__"):
        # numpy-convertible (incl. device arrays with host copies, tf tensors)
        try:
            return np.asarray(x)
        except Exception as exc:  # pragma: no cover - depends on the foreign array type
            raise TypeError(f"{name}: cannot convert {type(x).__name__} to a numpy array: "
                            f"{exc}") from exc
    if isinstance(x, (list, tuple)):
        return _from_sequence(x, np.dtype(dtype), name)
    raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")


def _from_sequence(x, dtype: np.dtype, name: str) -> np.ndarray:
    """A Python list/tuple as an array of dtype, converting only what converts exactly:
    integers for an integer dtype (never floats, which would be truncated), integers or
    floats for a float dtype (never strings or bools)."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name}: cannot convert to {dtype.name}: {exc}") from exc
    if arr.size == 0:
        return arr.astype(dtype)
    allowed = "iu" if dtype.kind in "iu" else "iuf"
    if arr.dtype.kind not in allowed:
        what = "integers that fit int64" if dtype.kind in "iu" else "numbers"
        raise TypeError(f"{name}: a list must hold {what}, got {arr.dtype} values "
                        f"(e.g. {arr.reshape(-1)[0]!r})")
    if dtype == np.int64 and arr.dtype == np.uint64 and arr.max() > _INT64.max:
        raise TypeError(f"{name}: {int(arr.max())} does not fit int64")
    return arr.astype(dtype)


def check_ids(ids, name: str = "ids") -> np.ndarray:
    arr = _as_array(ids, np.int64, name)
    if arr.dtype != np.int64:
        raise TypeError(f"{name} must have dtype int64, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def check_rows(rows, n: int, dim: int | None, name: str, finite: bool = True) -> np.ndarray:
    """float32 [n, dim]; a flat [n*dim] array is reshaped. dim=None accepts any row width."""
    arr = _as_array(rows, np.float32, name)
    if arr.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32, got {arr.dtype}")
    if dim is None:
        if arr.ndim == 1:
            if n == 0:
                arr = arr.reshape(0, 1 if arr.size == 0 else arr.size)
            elif arr.size % n:
                raise ValueError(f"{name}: {arr.size} elements do not split into {n} rows")
            else:
                arr = arr.reshape(n, arr.size // n)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"{name} must have shape [{n}, width], got {arr.shape}")
    else:
        if arr.ndim == 1 and arr.size == n * dim:
            arr = arr.reshape(n, dim)
        if arr.ndim != 2:
            raise ValueError(f"{name} must have shape [{n}, {dim}], got {arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows but ids has {n} elements")
        if arr.shape[1] != dim:
            raise ValueError(f"{name} rows must have width {dim} (the table dim), "
                             f"got {arr.shape[1]}")
    arr = np.ascontiguousarray(arr)
    if finite:
        check_finite(arr, name)
    return arr


def check_out(out, n: int, dim: int, name: str) -> np.ndarray:
    """A caller's output buffer: a writable, C-contiguous float32 numpy array [n, dim]."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32, got {out.dtype}")
    if out.shape != (n, dim):
        raise ValueError(f"{name} must have shape [{n}, {dim}], got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writable C-contiguous array")
    return out


def check_flat(x, size: int, name: str, finite: bool = True) -> np.ndarray:
    arr = _as_array(x, np.float32, name)
    if arr.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32, got {arr.dtype}")
    arr = np.ascontiguousarray(arr).reshape(-1)
    if arr.size != size:
        raise ValueError(f"{name} must have {size} elements, got {arr.size}")
    if finite:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = f"row {int(bad[0])}" if arr.ndim == 2 else f"element {int(bad[0])}"
        raise ValueError(f"{name} contains a non-finite value (NaN or Inf) at {where}; "
                         f"values and gradients must be finite")


def check_int(x, name: str) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(x).__name__}")
    return int(x)


def check_req_time(x, name: str = "req_time") -> int:
    """A request time in seconds: what an entry's uint32 timestamp can hold."""
    value = check_int(x, name)
    if not 0 <= value <= MAX_REQ_TIME:
        raise ValueError(f"{name} must be in [0, 2**32 - 1] (seconds; entry timestamps are "
                         f"uint32), got {value}")
    return value


def check_global_step(x, name: str = "global_step") -> int:
    value = check_int(x, name)
    if not 0 <= value <= MAX_GLOBAL_STEP:
        raise ValueError(f"{name} must be in [0, 2**63 - 1], got {value}")
    return value


def check_range(x, name: str, low: int, high: int, high_text: str | None = None) -> int:
    """An integer in [low, high]; the message names the argument and the range."""
    value = check_int(x, name)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high_text or high}], got {value}")
    return value


def check_nshards(x, name: str = "nshards") -> int:
    """A save's shard count: -1 (automatic) or one the `-%05d-of-%05d` names can express."""
    value = check_int(x, name)
    if value != -1 and not 1 <= value <= MAX_SHARDS:
        raise ValueError(f"{name} must be -1 (automatic) or in [1, {MAX_SHARDS}], got {value}")
    return value


def check_save_as_tensor(shard_idx, num_shards, limit, offset) -> tuple[int, int, int, int]:
    """(shard_idx, num_shards, limit, offset) of save_as_tensor, each range-checked: shards are
    int32 as in Monolith's op, limit and offset int64."""
    num_shards = check_range(num_shards, "num_shards", 1, MAX_SHARD_INDEX, "2**31 - 1")
    shard_idx = check_int(shard_idx, "shard_idx")
    if not 0 <= shard_idx < num_shards:
        raise ValueError(f"shard_idx must be in [0, {num_shards}), got {shard_idx}")
    limit = check_range(limit, "limit", 1, MAX_INT64, "2**63 - 1")
    offset = check_range(offset, "offset", 0, MAX_INT64, "2**63 - 1")
    return shard_idx, num_shards, limit, offset


def check_bool(x, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__}")
    return bool(x)


def check_learning_rates(lrs, num_segments: int, name: str) -> tuple[float, ...]:
    if isinstance(lrs, (numbers.Real, np.floating)) and not isinstance(lrs, (bool, np.bool_)):
        lrs = (lrs,)
    if isinstance(lrs, (str, bytes)):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got "
                        f"{type(lrs).__name__} {lrs!r}")
    try:
        arr = np.asarray(lrs)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of floats: {exc}") from exc
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a sequence of numbers, got {arr.dtype} values")
    vals = tuple(float(np.float32(v)) for v in arr.astype(np.float64).reshape(-1))
    if len(vals) != num_segments:
        raise ValueError(f"{name} must have one value per segment ({num_segments}), "
                         f"got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{name} must be finite, got {vals}")
    return vals


def check_basename(basename) -> str:
    """A checkpoint basename: a path whose file-name part prefixes the checkpoint's files.

    Rejected: a NUL byte anywhere (the OS would cut the path there), text the file system
    cannot represent (lone surrogates), and spaces or control characters in the file-name
    part (the manifest lists file names separated by spaces, one per line)."""
    if isinstance(basename, os.PathLike):
        basename = os.fspath(basename)
    if not isinstance(basename, str) or not basename:
        raise TypeError(f"basename must be a non-empty path string, got {basename!r}")
    if "\0" in basename:
        raise ValueError(f"basename must not contain a NUL byte: {basename!r}")
    try:
        basename.encode("utf-8")
        os.fsencode(basename)
    except UnicodeEncodeError as exc:
        raise ValueError(f"basename cannot be represented as a file name ({exc.reason} at "
                         f"position {exc.start}): {basename!r}") from None
    if basename.endswith(os.sep) or (os.altsep and basename.endswith(os.altsep)):
        raise ValueError(f"basename must name a file prefix, not a directory: {basename!r}")
    prefix = os.path.basename(basename)
    bad = [c for c in prefix if c == " " or ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise ValueError(f"basename: the file-name part {prefix!r} must not contain spaces or "
                         f"control characters (found {bad[0]!r})")
    return basename
