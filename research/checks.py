"""Input checks at the public boundary, with errors a user can act on.

Every public `fit`/`load` calls these before anything is traced, so a bad
input fails with a message naming the argument, never with a NaN result or an
XLA shape error deep inside a jitted loop.
"""

from __future__ import annotations

import functools
import math

import numpy as np


def as_matrix(x, name: str = "x", dtype=np.float32):
    """Returns `x` as a 2-D finite array; raises ValueError saying what is wrong.

    JAX arrays are checked on their device (so sharded data is not gathered to
    the host) and returned as they are; anything else becomes a NumPy array of
    `dtype`.
    """
    import jax
    import jax.numpy as jnp

    if not isinstance(x, jax.Array):
        try:
            x = np.asarray(x, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} must be numeric, convertible to {np.dtype(dtype).name}: {e}") from None
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [n_samples, n_features], got shape {tuple(x.shape)}; "
            "flatten images with x.reshape(len(x), -1) or add an axis with x[:, None]."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): it needs at least one sample and one feature.")
    if isinstance(x, jax.Array):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(dtype)
        bad = int(_count_nonfinite(x))
    else:
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(
            f"{name} has {bad} NaN or infinite values; impute or drop them first "
            "(e.g. research.data.tabular for CSV files)."
        )
    return x


@functools.cache
def _nonfinite_counter():
    """One jitted counter for the process (built on first use, so importing this module stays light)."""
    import jax
    import jax.numpy as jnp

    return jax.jit(lambda a: jnp.sum(~jnp.isfinite(a)))


def _count_nonfinite(x):
    return _nonfinite_counter()(x)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_squares_fit_float32(x, name: str = "x") -> None:
    """Raises ValueError when x [n, d] is so large that sums of squared distances between its rows could
    overflow float32 (about 3.4e38): what k-means computes. The bound is 4 n d max|x|^2 (a squared distance is
    at most d (2 max|x|)^2, the inertia n of them); past it the message names max|x| and asks to standardise."""
    n, d = x.shape
    biggest = float(_max_abs(x))
    limit = math.sqrt(FLOAT32_MAX / (4.0 * n * d))
    if not biggest <= limit:
        raise ValueError(
            f"{name} is too large for float32 k-means: max |{name}| = {biggest:.3g}, but with {n} rows of {d} "
            f"features the summed squared distances can overflow float32 once max |{name}| passes {limit:.3g}. "
            "Standardise the features (subtract the mean, divide by the standard deviation) or rescale them."
        )


def _max_abs(x):
    """max |x| over every entry (on the device for a JAX array, on the host otherwise)."""
    import jax

    if isinstance(x, jax.Array):
        return _max_abs_jit()(x)
    return np.max(np.abs(np.asarray(x, np.float64)))


@functools.cache
def _max_abs_jit():
    import jax
    import jax.numpy as jnp

    return jax.jit(lambda a: jnp.max(jnp.abs(a.astype(jnp.float32))))


def check_n_clusters(n_clusters, n_samples: int, name: str = "n_clusters") -> int:
    """Returns `n_clusters` as an int in [1, n_samples] or raises ValueError."""
    if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters:
        raise ValueError(f"{name} must be a whole number, got {n_clusters!r}.")
    n_clusters = int(n_clusters)
    if n_clusters < 1:
        raise ValueError(f"{name} must be at least 1, got {n_clusters}.")
    if n_clusters > n_samples:
        raise ValueError(
            f"{name}={n_clusters} is larger than the number of samples ({n_samples}); "
            f"use at most {n_samples} clusters or more data."
        )
    return n_clusters


def check_positive_int(value, name: str) -> int:
    """Returns `value` as an int >= 1 or raises ValueError naming it."""
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
    return int(value)


def check_positive_float(value, name: str, *, allow_zero: bool = False, meaning: str = "") -> float:
    """Returns `value` as a finite float > 0 (>= 0 with allow_zero) or raises ValueError naming it."""
    bound = ">= 0" if allow_zero else "> 0"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number {bound}, got {value!r}.") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {bound}{f' ({meaning})' if meaning else ''}, got {value!r}.")
    return v


def check_labels(y, n_samples: int, name: str = "y") -> np.ndarray:
    """Returns `y` as int64 [n_samples] or raises ValueError."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D [n_samples], got shape {y.shape}.")
    if len(y) != n_samples:
        raise ValueError(f"{name} has {len(y)} labels but there are {n_samples} samples; they must match.")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer labels, got dtype {y.dtype}.")
    return y.astype(np.int64)


def as_streamed_matrix(x, name: str = "x", chunk_bytes: int = 64 << 20):
    """`as_matrix` for data read in pieces (a memory-mapped .npy, an array larger than device memory).

    NumPy arrays (np.memmap included) are checked one chunk of rows at a time and
    returned as they are, in their own dtype: no copy, no float32 conversion, and
    no temporary the size of the array (a whole-array `np.isfinite` would take a
    quarter of its size in booleans). The caller casts each piece it reads. The
    pages of a memory-mapped array are let go after each chunk
    (`release_mapped_pages`). Anything else goes through `as_matrix`.
    """
    if not isinstance(x, np.ndarray):
        return as_matrix(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [n_samples, n_features], got shape {tuple(x.shape)}; "
            "reshape it (a memory-mapped array reshapes without a copy when it is in C order)."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): it needs at least one sample and one feature.")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}.")
    if x.dtype.kind == "f":
        rows = max(1, chunk_bytes // max(1, x.shape[1] * x.dtype.itemsize))
        bad = 0
        for start in range(0, x.shape[0], rows):
            chunk = x[start : start + rows]
            # A finite sum proves the chunk finite without a boolean temporary; only a NaN, an inf or an
            # overflow of the sum makes us count.
            with np.errstate(over="ignore", invalid="ignore"):
                total = np.add.reduce(chunk, axis=None)
            if not np.isfinite(total):
                bad += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
            release_mapped_pages(x)
        if bad:
            raise ValueError(
                f"{name} has {bad} NaN or infinite values; impute or drop them first "
                "(e.g. research.data.tabular for CSV files)."
            )
    return x


def release_mapped_pages(x) -> bool:
    """Drops the pages of a memory-mapped array from this process's resident set; True if x is one.

    A pass over an np.memmap maps every page it reads into the process, so its
    resident size grows to the whole file although the pages are only the OS
    page cache's. madvise(MADV_DONTNEED) unmaps them (the data stays cached and
    is read again on the next access), which keeps the resident size to what the
    process really holds. Shared maps ("r", "r+", "w+") only: a copy-on-write
    map ("c") would lose its private writes. Anything else is left alone.
    """
    return _advise(x, "MADV_DONTNEED")


def expect_access(x, pattern: str) -> bool:
    """Tells the OS how a memory-mapped array will be read next: "random" (rows here and there: no read-ahead)
    or "sequential" (whole passes: read far ahead); True if x is one and the advice was taken.

    On a file larger than memory, random rows with the default read-ahead each pull in a window of the pages
    around them: mini-batch k-means read 540 GB from disk within four minutes on a 30.7 GB file, never reaching
    its labelling pass (docs/design/multi_process.md)."""
    return _advise(x, {"random": "MADV_RANDOM", "sequential": "MADV_SEQUENTIAL"}[pattern])


def _advise(x, advice: str) -> bool:
    """madvise(advice) on the mmap under x (a shared one, see release_mapped_pages); True if it was given."""
    import mmap

    obj = x
    while obj is not None:
        if isinstance(obj, np.memmap) and obj.mode == "c":
            return False
        if isinstance(obj, mmap.mmap):
            if hasattr(mmap, advice) and not obj.closed:
                obj.madvise(getattr(mmap, advice))
                return True
            return False
        obj = getattr(obj, "base", None)
    return False
