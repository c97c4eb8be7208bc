"""Spherical k-means: k-means on the unit hypersphere with cosine similarity (Dhillon & Modha 2001).

    res = spherical_kmeans.fit(key, x_nd, 10)     # KMeansResult; the centroids [k, d] are unit vectors
    labels_n = spherical_kmeans.predict(res.centroids, x_nd)

A point goes to the centroid of largest cosine similarity; a centroid is the normalised sum of its members.
`inertia` is the summed cosine distance sum_n (1 - cos(x_n, c_label)): lower is better. Seeding is
`kmeans`' k-means++ on the normalised rows (spherical k-means++, Endo & Miyamoto 2015), and the restarts are
fused as in `kmeans`. All but the empty-cluster repair are reductions over the sample axis.

Design and benchmark: docs/design/kmeans.md#spherical-k-means.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from research import checks, sharding, timing
from research.cluster import kmeans
from research.cluster.kmeans import KMeansResult

__all__ = ["KMeansResult", "fit", "fit_timed", "normalize_rows", "predict"]

_HIGHEST = lax.Precision.HIGHEST


class _Loop(NamedTuple):
    """Loop state for R restarts."""

    centers: jax.Array  # [R, k, d] unit centroids
    labels: jax.Array  # [n, R] int32, -1 before the first assignment
    n_iter: jax.Array  # [R] int32
    done: jax.Array  # [R] bool
    converged: jax.Array  # [R] bool


def _unit(v, axis=-1):
    """v / |v| along `axis`; rows of norm 0 stay 0 (callers guard them).

    Each row is first divided by its largest |entry|, so the squared norm neither overflows (rows past ~1e19 in
    float32) nor underflows (rows under ~1e-19): the direction of any finite nonzero row is found.
    """
    scale = jnp.max(jnp.abs(v), axis=axis, keepdims=True)
    v = v / jnp.where(scale > 0, scale, 1.0)
    norm = jnp.sqrt(jnp.sum(v * v, axis=axis, keepdims=True))
    return v / jnp.where(norm > 0, norm, 1.0)


def _similarities(x_nd, c_rkd):
    """Cosine similarities [n, R, k] of unit rows to unit centroids: one [n, d] x [d, R*k] product."""
    r, k, d = c_rkd.shape
    return jnp.dot(x_nd, c_rkd.reshape(r * k, d).T, precision=_HIGHEST).reshape(-1, r, k)


def _relocate_empty(labels_nr, best_nr, counts_rk, active_r):
    """Gives each empty cluster one of the points least similar to their centroid (kmeans' rule on the sphere).

    The j-th empty cluster of a restart takes its j-th worst-fit point. Returns new labels [n, R].
    """
    k = counts_rk.shape[1]
    empty_rk = (counts_rk == 0) & active_r[:, None]

    def relocate(labels_nr):
        _, worst_rk = lax.top_k(-sharding.unsharded(best_nr.T, best_nr), k)  # [R, k], least similar first
        rank_rk = jnp.cumsum(empty_rk, axis=1) - 1
        pt_rk = jnp.take_along_axis(worst_rk, jnp.maximum(rank_rk, 0), axis=1)
        pt = jnp.where(empty_rk, pt_rk, labels_nr.shape[0])  # out of range: dropped
        r_idx = jnp.broadcast_to(jnp.arange(empty_rk.shape[0])[:, None], pt.shape)
        j_idx = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32)[None, :], pt.shape)
        return sharding.scatter(labels_nr, (pt, r_idx), j_idx)

    return lax.cond(jnp.any(empty_rk), relocate, lambda lab: lab, labels_nr)


def _iteration(s: _Loop, x_nd, tol, max_iter):
    """Assignment, empty-cluster repair, normalised-sum update, for every restart still running."""
    r, k, _ = s.centers.shape
    active_r = ~s.done
    sim_nrk = _similarities(x_nd, s.centers)
    labels = jnp.where(active_r[None, :], jnp.argmax(sim_nrk, axis=-1).astype(jnp.int32), s.labels)
    best_nr = jnp.max(sim_nrk, axis=-1)
    counts_rk = jnp.sum(jax.nn.one_hot(labels, k, dtype=x_nd.dtype), axis=0)
    labels = _relocate_empty(labels, best_nr, counts_rk, active_r)

    onehot_nrk = jax.nn.one_hot(labels, k, dtype=x_nd.dtype)
    sums = jnp.dot(
        onehot_nrk.reshape(-1, r * k).T, x_nd, precision=_HIGHEST, out_sharding=sharding.replicated(x_nd)
    ).reshape(r, k, -1)
    norm_rk = jnp.sqrt(jnp.sum(sums * sums, axis=-1))
    # A cluster whose members cancel out (x and -x) has no direction: its centroid stays.
    new_c = jnp.where(norm_rk[..., None] > 0, sums / jnp.maximum(norm_rk, 1e-30)[..., None], s.centers)
    new_c = jnp.where(active_r[:, None, None], new_c, s.centers)

    shift_r = jnp.sum((new_c - s.centers) ** 2, axis=(1, 2))
    stable_r = jnp.all(labels == s.labels, axis=0)
    n_iter = s.n_iter + active_r
    conv_r = active_r & (stable_r | (shift_r <= tol))
    return _Loop(
        centers=new_c,
        labels=labels,
        n_iter=n_iter,
        converged=s.converged | conv_r,
        done=s.done | conv_r | (n_iter >= max_iter),
    )


@functools.partial(jax.jit, static_argnames=("n_clusters", "n_init", "init"))
def _fit(key, x_nd, init_rkd, tol, max_iter, *, n_clusters, n_init, init):
    x_nd = _unit(x_nd.astype(jnp.float32))
    if init_rkd is None:
        ones_n = jnp.ones(x_nd.shape[:1], x_nd.dtype)  # |x|^2 of unit rows
        init_rkd = kmeans._init_centers(key, x_nd, ones_n, n_clusters, n_init, init)
    init_rkd = _unit(init_rkd.astype(jnp.float32))
    r = init_rkd.shape[0]
    s = _Loop(
        centers=init_rkd,
        labels=jnp.zeros_like(x_nd[:, :1], jnp.int32) + jnp.zeros((1, r), jnp.int32) - 1,  # laid out like x
        n_iter=jnp.zeros((r,), jnp.int32),
        done=jnp.zeros((r,), bool) | (max_iter <= 0),
        converged=jnp.zeros((r,), bool),
    )
    body = functools.partial(_iteration, x_nd=x_nd, tol=tol, max_iter=max_iter)
    s = lax.while_loop(lambda s: ~jnp.all(s.done), body, s)
    # Final assignment against the final centroids (the loop's labels refer to the previous ones).
    sim_nrk = _similarities(x_nd, s.centers)
    labels_nr = jnp.argmax(sim_nrk, axis=-1).astype(jnp.int32)
    cost_r = jnp.sum(1.0 - jnp.max(sim_nrk, axis=-1), axis=0)
    best = jnp.argmin(cost_r)
    centroids, labels = s.centers[best], labels_nr[:, best]
    # The winner's objective from direct differences, free of the cancellation in 1 - cos near 1.
    cost = 0.5 * jnp.sum((x_nd - sharding.lookup(centroids, labels)) ** 2)
    return KMeansResult(centroids, labels, cost, s.n_iter[best], s.converged[best], cost_r)


@jax.jit
def _row_max_abs(x_nd):
    return jnp.max(jnp.abs(x_nd.astype(jnp.float32)), axis=-1)


def _check_no_zero_rows(x, name="x"):
    """Raises ValueError naming the rows of x that have no direction (all zeros in float32)."""
    zero = np.flatnonzero(np.asarray(_row_max_abs(x)) <= 0)
    if zero.size:
        raise ValueError(
            f"{name} has {zero.size} rows of norm 0 (first: {zero[:5].tolist()}); spherical k-means needs a "
            "direction for every row. Drop those rows (x[norms > 0])."
        )


def _prepare(key, x, n_clusters, n_init, max_iter, tol, init):
    """Checks the public arguments; returns (args, static kwargs) for `_fit`."""
    x, n_clusters, n_init, max_iter, init_rkd, method = kmeans._check_args(x, n_clusters, n_init, max_iter, tol, init)
    if init_rkd is not None and np.any(np.sum(np.square(np.asarray(init_rkd)), axis=-1) <= 0):
        raise ValueError("init centroids include a zero vector, which has no direction; give nonzero centroids.")
    x = jnp.asarray(x)
    _check_no_zero_rows(x)
    args = (key, x, init_rkd, jnp.float32(tol), jnp.int32(max_iter))
    static = {"n_clusters": n_clusters, "n_init": n_init if init_rkd is None else init_rkd.shape[0], "init": method}
    return args, static


def fit(
    key, x, n_clusters: int, *, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4, init="k-means++"
) -> KMeansResult:
    """Fits spherical k-means to the directions of the rows of x [n, d]; returns the best of `n_init` restarts.

    Rows are normalised to unit length first (a row of norm 0 raises ValueError).

    Args:
      key: a jax.random key; the same key gives the same bits.
      x: [n, d] data (NumPy or JAX, possibly sharded along n). Cast to float32.
      n_clusters: k, 1 <= k <= n.
      n_init: restarts, run together; the one with the lowest summed cosine distance is returned.
      max_iter: iterations per restart at most.
      tol: a restart stops when the squared shift of its unit centroids, summed over
        centroids, is at most tol (no data scale to apply on the sphere), or when no label changes.
      init: "k-means++" (k-means++ on the normalised rows, i.e. on the cosine distance), "random"
        (k distinct rows), or centroids [k, d] or [n_init, k, d] (normalised here).

    Returns:
      KMeansResult: centroids [k, d] unit vectors; labels [n] (argmax cosine similarity);
      inertia = sum_n (1 - cos(x_n, centroid)), the objective minimised (mean cosine similarity is
      1 - inertia / n); n_iter; converged; inertia_per_init [n_init].
    """
    args, static = _prepare(key, x, n_clusters, n_init, max_iter, tol, init)
    return _fit(*args, **static)


def fit_timed(key, x, n_clusters: int, **kwargs) -> timing.Timed:
    """`fit` with compilation and the run timed apart: Timed(out=KMeansResult, compile_seconds, run_seconds)."""
    return timing.fit_timed(fit, _prepare, _fit, key, x, n_clusters, **kwargs)


@jax.jit
def _predict(c_kd, x_nd):
    return jnp.argmax(jnp.dot(_unit(x_nd), _unit(c_kd).T, precision=_HIGHEST), axis=-1).astype(jnp.int32)


def predict(centroids, x):
    """Index of the centroid [k, d] most cosine-similar to each row of x [n, d]: [n] int32."""
    c = checks.as_matrix(centroids, "centroids")
    x = checks.as_matrix(x)
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but the centroids have {c.shape[1]}.")
    x = jnp.asarray(x, jnp.float32)
    _check_no_zero_rows(x)
    _check_no_zero_rows(jnp.asarray(c, jnp.float32), "centroids")
    return _predict(jnp.asarray(c, jnp.float32), x)


def normalize_rows(x):
    """x [n, d] with every row scaled to unit length (float32); rows of norm 0 raise ValueError."""
    x = jnp.asarray(checks.as_matrix(x), jnp.float32)
    _check_no_zero_rows(x)
    return _unit(x)
