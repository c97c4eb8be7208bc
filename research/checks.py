"""Input checks at the public boundary, with errors a user can act on.

Every public `fit`/`load` calls these before anything is traced, so a bad
input fails with a message naming the argument, never with a NaN result or an
XLA shape error deep inside a jitted loop.
"""

from __future__ import annotations

import functools

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
