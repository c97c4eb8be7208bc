"""Nearest neighbours and radius queries by blocked distance computation: memory bounded by `block_size`.

    r = neighbors.knn(x_nd, k=10)                    # KNNResult(indices [n, k], distances [n, k]), exact
    r = neighbors.knn(x_nd, 10, queries=q_md)        # the k nearest rows of x for each row of q
    r = neighbors.binned_knn(x_nd, 10)               # approximate: the nearest of each of 8192 column bins
    r = neighbors.projected_knn(key, x_nd, 10)       # approximate, for many features: PCA candidates, reranked
    c_n = neighbors.radius_counts(x_nd, eps=0.5)     # rows of x within eps of each row, itself included

Queries run in blocks of rows (`lax.map`); ties go to the lower index. Radius queries sort the rows along
their widest coordinate once and compute only the tiles that can hold pairs within eps.

Design and measurements: docs/design/neighbour_embeddings.md.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from research import checks, sharding

_HIGHEST = lax.Precision.HIGHEST
_METRICS = ("euclidean", "cosine")
_DIRECT_MAX_D = 8  # up to this many features, squared distances by direct differences
_EPS32 = float(np.finfo(np.float32).eps)


class KNNResult(NamedTuple):
    """The k nearest rows of x for each query.

    indices: [m, k] int32, rows of x, nearest first (equal distances: lower index first).
    distances: [m, k] float32, Euclidean distance or 1 - cosine similarity.
    """

    indices: jax.Array
    distances: jax.Array


# ---------------------------------------------------------------------------
# Shared pieces


def _sq_dist(q_bd, x_cd):
    """Squared Euclidean distances [b, c]: direct differences for small d, else the clamped expansion."""
    d = q_bd.shape[1]
    if d <= _DIRECT_MAX_D:
        sq = jnp.zeros((q_bd.shape[0], x_cd.shape[0]), q_bd.dtype)
        for f in range(d):  # unrolled: one fused elementwise pass, no [b, c, d] temporary
            sq = sq + jnp.square(q_bd[:, f, None] - x_cd[None, :, f])
        return sq
    qq_b = jnp.sum(q_bd * q_bd, axis=-1)
    xx_c = jnp.sum(x_cd * x_cd, axis=-1)
    qx_bc = jnp.dot(q_bd, x_cd.T, precision=_HIGHEST)
    return jnp.maximum(qq_b[:, None] - 2.0 * qx_bc + xx_c[None, :], 0.0)


def _block_rows(n: int, block_size: int) -> int:
    """Rows per block: block_size, or n when that is smaller (a small input is not padded up to a block)."""
    return max(1, min(block_size, n))


def _map_blocks(fn, q_md, block_size: int):
    """Maps fn(rows_b, q_bd) over the rows of q in blocks of block_size rows; returns its outputs as [m, ...].

    rows_b: [b] int32, the row numbers of the block, consecutive on one device (padding: zero rows numbered m or
    more, whose outputs are dropped). fn returns a pytree of [b, ...] arrays. The blocks run one after another (`lax.map`), so only one
    block's temporaries are alive at a time. Queries sharded on an explicit mesh are blocked across the devices
    (`sharding.to_blocks`), so each device answers its own.
    """
    m = q_md.shape[0]
    b, shards = _block_rows(m, block_size), sharding.sample_shards(q_md)
    rows_kb = sharding.to_blocks(jnp.arange(-m, 0, dtype=jnp.int32), b, shards) + m  # the padding's zeros -> m
    out = lax.map(lambda a: fn(*a), (rows_kb, sharding.to_blocks(q_md, b, shards)))
    return jax.tree.map(lambda o: sharding.from_blocks(o, m, shards), out)


# ---------------------------------------------------------------------------
# k nearest neighbours


def unit_rows(x_nd):
    """Rows scaled to unit norm; zero rows stay zero (cosine similarity 0 with everything, no NaN)."""
    norm_n = jnp.sqrt(jnp.sum(x_nd * x_nd, axis=-1, keepdims=True))
    return x_nd / jnp.where(norm_n > 0, norm_n, 1.0)


@functools.partial(jax.jit, static_argnames=("k", "metric", "block_size", "exclude_self"))
def _knn(x_nd, q_md, *, k, metric, block_size, exclude_self):
    x_nd = sharding.unsharded(x_nd, x_nd).astype(jnp.float32)  # every device searches all of x for its queries
    q_md = q_md.astype(jnp.float32)
    if metric == "cosine":
        x_nd, q_md = unit_rows(x_nd), unit_rows(q_md)
    else:
        mean_d = jnp.mean(x_nd, axis=0)
        x_nd, q_md = x_nd - mean_d, q_md - mean_d
    cols_n = jnp.arange(x_nd.shape[0], dtype=jnp.int32)

    def block(rows_b, q_bd):
        if metric == "cosine":
            dist_bn = jnp.clip(1.0 - jnp.dot(q_bd, x_nd.T, precision=_HIGHEST), 0.0, 2.0)
        else:
            dist_bn = _sq_dist(q_bd, x_nd)  # squared: same order, one sqrt per neighbour at the end
        if exclude_self:
            dist_bn = jnp.where(rows_b[:, None] == cols_n[None, :], jnp.inf, dist_bn)
        neg_bk, idx_bk = lax.top_k(-dist_bn, k)
        return idx_bk.astype(jnp.int32), -neg_bk

    idx_mk, dist_mk = _map_blocks(block, q_md, block_size)
    if metric == "euclidean":
        dist_mk = jnp.sqrt(dist_mk)
    return KNNResult(idx_mk, dist_mk)


def knn(x, k: int, *, queries=None, metric: str = "euclidean", block_size: int = 1024) -> KNNResult:
    """The k nearest rows of x [n, d] for each query row, by exact blocked distances.

    Args:
      x: [n, d] data (NumPy or JAX), finite; cast to float32.
      k: neighbours per query, 1 <= k <= n (n - 1 when queries is None).
      queries: [m, d] query rows; None: the rows of x themselves, each one's own index excluded
        from its neighbours (other rows equal to it are still neighbours, at distance 0).
      metric: "euclidean" (true distances) or "cosine" (1 - cosine similarity; a zero row has
        similarity 0 with everything, distance 1).
      block_size: queries per block; each block holds a [block_size, n] distance matrix.

    Returns:
      KNNResult(indices [m, k] int32, distances [m, k] float32), nearest first; equal distances
      are ordered by lower index.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    x = checks.as_matrix(x)
    n, d = x.shape
    block_size = checks.check_positive_int(block_size, "block_size")
    exclude_self = queries is None
    if exclude_self:
        q = x
    else:
        q = checks.as_matrix(queries, "queries")
        if q.shape[1] != d:
            raise ValueError(f"queries have {q.shape[1]} features but x has {d}; they must match.")
    if isinstance(k, bool) or int(k) != k or int(k) < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}.")
    k = int(k)
    limit = n - 1 if exclude_self else n
    if k > limit:
        what = f"the {n} rows of x less the query itself" if exclude_self else f"the {n} rows of x"
        raise ValueError(
            f"k={k} is larger than the number of candidate neighbours ({limit}: {what}); use k <= {limit} or more data."
        )
    return _knn(jnp.asarray(x), jnp.asarray(q), k=k, metric=metric, block_size=block_size, exclude_self=exclude_self)


@functools.partial(jax.jit, static_argnames=("k", "bins", "block_size"))
def _binned_knn(x_nd, *, k, bins, block_size):
    x_nd = x_nd.astype(jnp.float32)
    x_nd = x_nd - jnp.mean(x_nd, axis=0)
    n = x_nd.shape[0]
    cols = -(-n // bins) * bins
    xx_c = jnp.pad(jnp.sum(x_nd * x_nd, axis=-1), (0, cols - n), constant_values=jnp.inf)  # padding never wins
    x_cd = jnp.pad(x_nd, ((0, cols - n), (0, 0)))
    cols_c = jnp.arange(cols, dtype=jnp.int32)

    def block(rows_b, q_bd):
        score_bc = xx_c[None, :] - 2.0 * jnp.dot(q_bd, x_cd.T, precision=_HIGHEST)
        score_bc = jnp.where(rows_b[:, None] == cols_c[None, :], jnp.inf, score_bc)  # not itself
        score_bgs = score_bc.reshape(q_bd.shape[0], cols // bins, bins)  # column g * bins + s is in bin s
        g_bs = jnp.argmin(score_bgs, axis=1)
        best_bs = jnp.take_along_axis(score_bgs, g_bs[:, None, :], axis=1)[:, 0]
        neg_bk, s_bk = lax.top_k(-best_bs, k)
        sq_bk = jnp.maximum(jnp.sum(q_bd * q_bd, axis=-1, keepdims=True) - neg_bk, 0.0)
        return (jnp.take_along_axis(g_bs, s_bk, axis=1) * bins + s_bk).astype(jnp.int32), jnp.sqrt(sq_bk)

    return KNNResult(*_map_blocks(block, x_nd, block_size))


def binned_knn(x, k: int, *, bins: int = 8192, block_size: int = 1024) -> KNNResult:
    """Approximate k nearest neighbours of the rows of x [n, d] among themselves (each row's own index
    excluded): the k nearest of the nearest row in each of `bins` strided column bins, column j in bin
    j mod bins. Exact when n <= bins (one column a bin). Distances are Euclidean, from the expansion.
    A true neighbour is missed only when a nearer one shares its bin; how often, and the speed-up on MNIST:
    docs/design/neighbour_embeddings.md.
    """
    x = checks.as_matrix(x)
    n = x.shape[0]
    bins = checks.check_positive_int(bins, "bins")
    block_size = checks.check_positive_int(block_size, "block_size")
    k = checks.check_positive_int(k, "k")
    if k > min(n - 1, bins):
        raise ValueError(f"k must be at most min(n - 1, bins) = {min(n - 1, bins)}, got {k}.")
    if n <= bins:
        return knn(x, k, block_size=block_size)
    return _binned_knn(jnp.asarray(x), k=k, bins=bins, block_size=block_size)


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def _rerank(x_nd, cand_mc, *, k, block_size):
    x_nd = x_nd.astype(jnp.float32)

    def block(rows_b, cand_bc):
        cand_bc = jnp.minimum(cand_bc, x_nd.shape[0] - 1)  # padding rows of the last block
        diff_bcd = x_nd[cand_bc] - x_nd[jnp.minimum(rows_b, x_nd.shape[0] - 1)][:, None, :]
        sq_bc = jnp.sum(diff_bcd * diff_bcd, axis=-1)
        # Drop the row itself and repeated candidates (keep the first of each).
        dup_bc = jnp.any(
            (cand_bc[:, :, None] == cand_bc[:, None, :]) & jnp.tri(cand_bc.shape[1], k=-1, dtype=bool)[None], axis=-1
        )
        sq_bc = jnp.where(dup_bc | (cand_bc == rows_b[:, None]), jnp.inf, sq_bc)
        neg_bk, j_bk = lax.top_k(-sq_bc, k)
        return jnp.take_along_axis(cand_bc, j_bk, axis=1), jnp.sqrt(-neg_bk)

    return KNNResult(*_map_blocks(block, cand_mc, block_size))


def rerank(x, candidates, k: int, *, block_size: int = 1024) -> KNNResult:
    """The k nearest of each row's candidate rows by exact Euclidean distances in x [n, d].

    candidates: [n, c] int32 row numbers per row of x (its own number and repeats are ignored), e.g. the
    neighbours found in a cheaper projection of x. Memory: [block_size, c, d] at a time.
    """
    x = checks.as_matrix(x)
    cand = np.asarray(candidates)
    if cand.ndim != 2 or cand.shape[0] != x.shape[0] or cand.dtype.kind not in "iu":
        raise ValueError(f"candidates must be integer row numbers [n={x.shape[0]}, c]; got {cand.dtype} {cand.shape}.")
    if cand.size and (cand.min() < 0 or cand.max() >= x.shape[0]):
        raise ValueError(f"candidates must be row numbers in [0, {x.shape[0]}); got {cand.min()}..{cand.max()}.")
    if not 1 <= int(k) < cand.shape[1]:
        raise ValueError(
            f"k={k} needs more candidates per row than k (the row itself may be among them); got {cand.shape[1]}."
        )
    block_size = checks.check_positive_int(block_size, "block_size")
    return _rerank(jnp.asarray(x), jnp.asarray(cand, jnp.int32), k=int(k), block_size=block_size)


def projected_knn(
    key, x, k: int, *, dims: int = 100, candidates: int | None = None, bins: int = 8192, block_size: int = 1024
):
    """Approximate k nearest neighbours of the rows of x [n, d] for large d (e.g. raw pixels): the
    `candidates` (default 3k) nearest in the first `dims` principal components, found by `binned_knn`
    with `bins` bins (bins=0: exactly), reranked by exact distances in x. Exact kNN when dims >= d. A
    neighbour missed in the projection stays missed; on MNIST (PCA-100, 60 candidates for 19 neighbours)
    the pixel-space kNN graph this gives is what UMAP needs.
    """
    from research.embed import pca  # the projection; pca itself needs nothing from here

    x = checks.as_matrix(x)
    dims = checks.check_positive_int(dims, "dims")
    if dims >= x.shape[1]:
        return knn(x, k, block_size=block_size)
    c = min(x.shape[0] - 1, candidates or 3 * int(k))
    _, z = pca.fit_transform(key, x, dims)
    cand = binned_knn(z, c, bins=bins, block_size=block_size) if bins else knn(z, c, block_size=block_size)
    return rerank(x, cand.indices, k, block_size=block_size)


# ---------------------------------------------------------------------------
# Radius queries


class RadiusIndex(NamedTuple):
    """The rows of x prepared for blocked radius queries (`radius_fold`).

    x_nd: [n, d] float32, the rows centred on their mean and sorted along `key_n`.
    key_n: [n] float32, ascending: each sorted row's value of the coordinate of largest variance.
    order_n: [n] int32, the original row number of each sorted row.
    """

    x_nd: jax.Array
    key_n: jax.Array
    order_n: jax.Array


def radius_index(x_nd) -> RadiusIndex:
    """Sorts the rows of x [n, d] along their coordinate of largest variance (traceable, call it under jit)."""
    x_nd = x_nd.astype(jnp.float32)
    x_nd = x_nd - jnp.mean(x_nd, axis=0)
    axis = jnp.argmax(jnp.var(x_nd, axis=0))
    key_n = jnp.take(x_nd, axis, axis=1)
    order_n = jnp.argsort(key_n, stable=True).astype(jnp.int32)
    return RadiusIndex(x_nd[order_n], key_n[order_n], order_n)


def _window_margin(index: RadiusIndex, eps):
    """How far beyond eps along the key a pair found within eps can lie, rounding included.

    Extra columns cost time, never correctness (each pair is tested on its distance), so this errs wide.
    """
    d = index.x_nd.shape[1]
    slack = 4.0 * _EPS32 * jnp.max(jnp.abs(index.key_n))  # rounding of key - margin
    if d <= _DIRECT_MAX_D:
        return eps * (1.0 + 1e-4) + slack
    # The expansion's error grows with the squared norms: a pair computed within eps may be a little beyond.
    r2 = jnp.max(jnp.sum(index.x_nd * index.x_nd, axis=-1))
    return jnp.sqrt(eps * eps + 4.0 * (d + 4) * _EPS32 * 4.0 * r2) + slack


def radius_fold(index: RadiusIndex, eps, block_size: int, init, fold, col_values=None):
    """For each sorted row of x, folds `fold` over the tiles of columns that can hold a row within eps.

    A blocked reduction over the pairs (i, j) with |x_i - x_j| <= eps, in the sorted order of `index`,
    that never holds more than a [block_size, block_size] tile. Traceable: call it under jit.

    Args:
      index: from `radius_index`.
      eps: the radius (Euclidean; pairs at distance exactly eps count).
      block_size: rows per query block and per column tile.
      init: init(b) -> the carry for a block of b rows, a pytree of [b, ...] arrays.
      fold: fold(carry, rows_b, cols_c, within_bc, sq_bc, vals_c) -> carry, for one tile. rows_b and
        cols_c are sorted row numbers (padding rows and columns are numbered >= n; padding columns
        are never within); within_bc: bool, the pair is within eps; sq_bc: squared distances;
        vals_c: `col_values` for the tile's columns.
      col_values: a pytree of [n, ...] arrays in sorted order, sliced per tile for `fold`.

    Returns:
      The final carry of each row, [n, ...], in sorted order.
    """
    x_nd, key_n = index.x_nd, index.key_n
    n, d = x_nd.shape
    b = _block_rows(n, block_size)
    n_pad = -(-n // b) * b
    x_pad = jnp.pad(x_nd, ((0, n_pad - n), (0, 0)))
    vals_pad = jax.tree.map(lambda v: jnp.pad(v, [(0, n_pad - n)] + [(0, 0)] * (v.ndim - 1)), col_values)
    eps2 = jnp.square(jnp.asarray(eps, jnp.float32))
    margin = _window_margin(index, jnp.asarray(eps, jnp.float32))
    self_included = d > _DIRECT_MAX_D  # direct differences give 0 on the diagonal; the expansion may not

    def block(rows_b, q_bd):
        lo = key_n[rows_b[0]] - margin
        hi = key_n[jnp.minimum(rows_b[-1], n - 1)] + margin
        first = jnp.searchsorted(key_n, lo, side="left")
        stop = jnp.searchsorted(key_n, hi, side="right")

        def tile(t, carry):
            start = t * b
            cols_c = start + jnp.arange(b, dtype=jnp.int32)
            sq_bc = _sq_dist(q_bd, lax.dynamic_slice_in_dim(x_pad, start, b))
            within_bc = (sq_bc <= eps2) & (cols_c < n)[None, :]
            if self_included:
                within_bc = within_bc | (rows_b[:, None] == cols_c[None, :])
            vals_c = jax.tree.map(lambda v: lax.dynamic_slice_in_dim(v, start, b), vals_pad)
            return fold(carry, rows_b, cols_c, within_bc, sq_bc, vals_c)

        return lax.fori_loop(first // b, (stop + b - 1) // b, tile, init(b))

    return _map_blocks(block, x_nd, block_size)


def _count_fold(count_b, rows_b, cols_c, within_bc, sq_bc, vals_c):
    return count_b + jnp.sum(within_bc, axis=1, dtype=jnp.int32)


def count_within(index: RadiusIndex, eps, block_size: int):
    """[n] int32, in sorted order: rows within eps of each sorted row, itself included (traceable)."""
    return radius_fold(index, eps, block_size, lambda b: jnp.zeros((b,), jnp.int32), _count_fold)


@functools.partial(jax.jit, static_argnames=("block_size",))
def _radius_counts(x_nd, eps, *, block_size):
    index = radius_index(x_nd)
    counts_n = count_within(index, eps, block_size)
    return jnp.zeros_like(counts_n).at[index.order_n].set(counts_n)


def radius_counts(x, eps: float, *, block_size: int = 1024) -> jax.Array:
    """[n] int32: how many rows of x [n, d] lie within Euclidean distance eps of each row.

    The row itself is counted, as scikit-learn's DBSCAN counts its neighbourhoods, and so is a pair
    at distance exactly eps. Blocked as `radius_fold`: at most [block_size, block_size] distances
    at a time.
    """
    x = checks.as_matrix(x)
    eps = checks.check_positive_float(eps, "eps", meaning="the neighbourhood radius")
    block_size = checks.check_positive_int(block_size, "block_size")
    return _radius_counts(jnp.asarray(x), jnp.float32(eps), block_size=block_size)
