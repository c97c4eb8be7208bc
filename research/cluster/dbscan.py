"""DBSCAN (Ester et al. 1996) as one jitted function: scikit-learn's core points, noise and clusters of cores.

    r = dbscan.fit(x_nd, eps=0.3, min_samples=10)    # DBSCANResult(labels [n] (-1: noise), core_mask [n], n_clusters)

Neighbourhoods come from pairs laid out once and reused by every step: the pairs within eps, found through
boxes around tiles of rows in k-d order (`method="tiles"`, `research.embed.tiles`: any dimension), or the
candidate pairs of a grid of eps-sized cells (`method="cells"`, `research.embed.cells`: low dimension); or from
blocked passes over rows sorted along one axis, once per step (`method="blocked"`, `neighbors.radius_fold`:
flat memory). "auto" takes tiles when they fit in `max_pairs`, else blocked. Counts give the core points;
their connected components come from min-label propagation with hooking and pointer jumping (after FastSV,
Zhang et al. 2020) in a `lax.while_loop`; border points join their nearest core's cluster, and clusters are
numbered in the order in which scikit-learn discovers them.

The steps in detail: docs/design/neighbour_embeddings.md#dbscan.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from research import checks, sharding
from research.embed import cells, neighbors, tiles


class DBSCANResult(NamedTuple):
    """A DBSCAN partition.

    labels: [n] int32, cluster of each point, -1 for noise; clusters are numbered 0.. in order
      of their smallest core point index.
    core_mask: [n] bool, core points (at least min_samples points within eps, itself included).
    n_clusters: [] int32.
    """

    labels: jax.Array
    core_mask: jax.Array
    n_clusters: jax.Array


def _min_label_fold(m_b, rows_b, cols_c, within_bc, sq_bc, label_c):
    """Smallest label among the tile's columns within eps (non-core columns carry the sentinel n)."""
    big = jnp.iinfo(jnp.int32).max
    return jnp.minimum(m_b, jnp.min(jnp.where(within_bc, label_c[None, :], big), axis=1))


def _nearest_fold(carry, rows_b, cols_c, within_bc, sq_bc, vals_c):
    """Nearest core within eps: (squared distance, original index, label), ties to the lowest original index."""
    best_sq_b, best_orig_b, best_label_b = carry
    core_c, orig_c, label_c = vals_c
    sq_bc = jnp.where(within_bc & core_c[None, :], sq_bc, jnp.inf)
    sq_b = jnp.min(sq_bc, axis=1)
    big = jnp.iinfo(jnp.int32).max
    j_b = jnp.argmin(jnp.where(sq_bc == sq_b[:, None], orig_c[None, :], big), axis=1)
    orig_b, label_b = orig_c[j_b], label_c[j_b]
    # A row with no core in the tile has sq_b = inf; it must not take the tile's lowest index.
    better = jnp.isfinite(sq_b) & ((sq_b < best_sq_b) | ((sq_b == best_sq_b) & (orig_b < best_orig_b)))
    return (
        jnp.where(better, sq_b, best_sq_b),
        jnp.where(better, orig_b, best_orig_b),
        jnp.where(better, label_b, best_label_b),
    )


def to_roots(label_n):
    """Pointer jumping: label = label[label] until every label is a root (label[v] <= v, so it stops)."""
    return jax.lax.while_loop(lambda lab: jnp.any(lab[lab] != lab), lambda lab: lab[lab], label_n)


def _components(index, core_n, eps, block_size):
    """Component label (a sorted position, the root) of each core point; non-core points keep their own.

    Returns (label [n] int32 in sorted order, passes [] int32).
    """
    n = core_n.shape[0]
    big = jnp.iinfo(jnp.int32).max

    def neighbour_min(label_n):
        m_n = neighbors.radius_fold(
            index,
            eps,
            block_size,
            lambda b: jnp.full((b,), big, jnp.int32),
            _min_label_fold,
            col_values=jnp.where(core_n, label_n, big),
        )
        return jnp.where(core_n, m_n, big)  # non-core rows neither move nor hook anything

    def step(state):
        label_n, _, passes = state
        m_n = neighbour_min(label_n)  # <= label_n on cores: a core is its own neighbour
        new_n = jnp.minimum(label_n, m_n).at[label_n].min(m_n)  # hook the tree label_n points to
        new_n = to_roots(new_n)
        return new_n, jnp.any(new_n != label_n), passes + 1

    init = (jnp.arange(n, dtype=jnp.int32), jnp.array(True), jnp.zeros((), jnp.int32))
    label_n, _, passes = jax.lax.while_loop(lambda s: s[1], step, init)
    return label_n, passes


@functools.partial(jax.jit, static_argnames=("block_size",))
def _fit(x_nd, eps, min_samples, *, block_size):
    index = neighbors.radius_index(x_nd)
    order_n = index.order_n
    core_n = neighbors.count_within(index, eps, block_size) >= min_samples  # sorted order from here on
    root_n, passes = _components(index, core_n, eps, block_size)

    # Border points: the component of the nearest core point within eps.
    big = jnp.iinfo(jnp.int32).max
    _, near_orig_n, near_root_n = neighbors.radius_fold(
        index,
        eps,
        block_size,
        lambda b: (jnp.full((b,), jnp.inf), jnp.full((b,), big, jnp.int32), jnp.full((b,), -1, jnp.int32)),
        _nearest_fold,
        col_values=(core_n, order_n, root_n),
    )
    root_n = jnp.where(core_n, root_n, jnp.where(near_orig_n < big, near_root_n, -1))
    return _number(root_n, core_n, order_n), passes


def _number(root_n, core_n, order_n) -> DBSCANResult:
    """The result from each sorted point's root (-1: noise): clusters numbered by their smallest core point
    index (original order), everything back in the original order."""
    n = root_n.shape[0]
    is_root_n = core_n & (root_n == jnp.arange(n))
    first_n = jnp.full((n,), n, jnp.int32).at[jnp.where(core_n, root_n, n)].min(order_n, mode="drop")
    starts_n = jnp.zeros((n,), jnp.int32).at[jnp.where(is_root_n, first_n, n)].set(1, mode="drop")
    cluster_of_first_n = jnp.cumsum(starts_n) - 1
    cluster_of_root_n = cluster_of_first_n[jnp.minimum(first_n, n - 1)]
    labels_n = jnp.where(root_n >= 0, cluster_of_root_n[jnp.maximum(root_n, 0)], -1)
    labels = jnp.zeros((n,), jnp.int32).at[order_n].set(labels_n)
    core_mask = jnp.zeros((n,), bool).at[order_n].set(core_n)
    return DBSCANResult(labels, core_mask, jnp.sum(is_root_n, dtype=jnp.int32))


METHODS = ("auto", "cells", "tiles", "blocked")


def _prepare(x, eps, min_samples, block_size, method="blocked", max_pairs=2**25):
    x = checks.as_matrix(sharding.on_one_device(x))  # rows sharded over devices are gathered: it runs on one
    eps = checks.check_positive_float(eps, "eps", meaning="the neighbourhood radius")
    min_samples = checks.check_positive_int(min_samples, "min_samples")
    block_size = checks.check_positive_int(block_size, "block_size")
    max_pairs = checks.check_positive_int(max_pairs, "max_pairs")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    args = (jnp.asarray(x), jnp.float32(eps), jnp.int32(min_samples))
    if method == "cells":
        count = int(cells.candidate_count(args[0], args[1]))
        if count > max_pairs:
            raise ValueError(
                f"the grid finds {count} candidate pairs, more than max_pairs={max_pairs}: eps is large for the "
                "data's density, or the data has too many dimensions for a grid; use method='blocked' or 'tiles'."
            )
        return _fit_cells, args, {"capacity": cells.capacity_for(count)}
    if method in ("tiles", "auto"):
        stage, capacity = tiles.search(args[0], args[1], max_pairs)
        if stage is not None:
            return _fit_tiles, (stage.arrays, args[2]), {"capacity": capacity}
        if method == "tiles":
            raise ValueError(
                f"the tiles lay out {capacity} entries or more, more than max_pairs={max_pairs}: eps is large "
                "for the data's density; raise max_pairs or use method='blocked'."
            )
    return _fit, args, {"block_size": block_size}


def method_for(x, eps: float, min_samples: int = 5, *, method: str = "auto", max_pairs: int = 2**25) -> str:
    """The method `fit` runs with these arguments: "cells", "tiles" or "blocked" ("auto" resolved)."""
    fn = _prepare(x, eps, min_samples, 1, method, max_pairs)[0]
    return {_fit_cells: "cells", _fit_tiles: "tiles"}.get(fn, "blocked")


def fit(
    x, eps: float, min_samples: int = 5, *, method: str = "auto", block_size: int = 1024, max_pairs: int = 2**25
) -> DBSCANResult:
    """DBSCAN of x [n, d] (Euclidean): scikit-learn's `DBSCAN(eps, min_samples)` partition.

    Args:
      x: [n, d] data (NumPy or JAX), finite; cast to float32.
      eps: neighbourhood radius, > 0; points at distance exactly eps are neighbours.
      min_samples: a point is a core point when at least this many points (itself included) lie
        within eps of it.
      method: "tiles" lays the pairs within eps out once, found through boxes around tiles of rows
        (`research.embed.tiles`; any dimension, memory grows with the pairs), and runs each step as a
        segment reduction over them; "cells" does the same with the candidate pairs of a grid
        (`research.embed.cells`; up to about 3 dimensions); "blocked" folds over [block_size,
        block_size] tiles of the rows sorted along one axis, once per step (memory stays flat);
        "auto": tiles when their arrays fit in `max_pairs`, else blocked.
      block_size: rows per block and per column tile of the blocked method.
      max_pairs: the largest arrays "auto", "tiles" and "cells" lay out (entries: pairs, distances).

    Returns:
      DBSCANResult(labels [n] int32 (-1: noise), core_mask [n] bool, n_clusters [] int32). Core
      points and noise are scikit-learn's exactly (up to float32 rounding of distances within
      about 1e-7 of eps); a border point near cores of two clusters goes to its nearest core's
      cluster, where scikit-learn takes the first cluster to reach it.
    """
    fn, args, static = _prepare(x, eps, min_samples, block_size, method, max_pairs)
    return fn(*args, **static)[0]


# --- pairs laid out once (tiles, cell lists), every step a segment reduction over them ----------------------------


@functools.partial(jax.jit, static_argnames=("capacity",))
def _fit_cells(x_nd, eps, min_samples, *, capacity):
    p = cells.candidate_pairs(x_nd, eps, capacity)
    within_t = p.valid_t & (p.sq_t <= jnp.square(eps))
    return _fit_pairs(p.rows_t, p.cols_t, within_t, p.sq_t, p.order_n, min_samples, rows_sorted=True)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _fit_tiles(arrays, min_samples, *, capacity):
    p = tiles.pairs(arrays, capacity)
    return _fit_pairs(p.rows_t, p.cols_t, p.valid_t, p.sq_t, p.order_n, min_samples, both_ways=True)


def _fit_pairs(rows_t, cols_t, within_t, sq_t, order_n, min_samples, *, rows_sorted=False, both_ways=False):
    """DBSCAN from a layout of pairs: within_t marks the pairs within eps (pairs of a point with itself may be
    among them or not). A pair (i, j) tells i about j, and j about i as well when both_ways (each unordered
    pair laid out once); every step is a segment reduction over the pairs, grouped by row when rows_sorted."""
    n = order_n.shape[0]
    big = jnp.iinfo(jnp.int32).max

    def reduce_min(value, mask, fill):
        """[n]: for each point i, the smallest value(i, j) over its pairs (i, j) where mask(i, j) (fill if none);
        value and mask take the [pairs] index arrays of the two ends."""
        out_n = jax.ops.segment_min(
            jnp.where(mask(rows_t, cols_t), value(rows_t, cols_t), fill), rows_t, n, indices_are_sorted=rows_sorted
        )
        if both_ways:
            out_n = jnp.minimum(
                out_n, jax.ops.segment_min(jnp.where(mask(cols_t, rows_t), value(cols_t, rows_t), fill), cols_t, n)
            )
        return out_n

    within_t = within_t & (rows_t != cols_t)  # the point itself is counted once, below
    counts_n = jax.ops.segment_sum(within_t.astype(jnp.int32), rows_t, n, indices_are_sorted=rows_sorted) + 1
    if both_ways:
        counts_n = counts_n + jax.ops.segment_sum(within_t.astype(jnp.int32), cols_t, n)
    core_n = counts_n >= min_samples
    link_t = within_t & core_n[rows_t] & core_n[cols_t]

    def step(state):  # as `_components`: the smallest label among core neighbours, hooking, pointer jumping
        label_n, _, passes = state
        m_n = reduce_min(lambda i, j: label_n[j], lambda i, j: link_t, big)
        new_n = to_roots(jnp.minimum(label_n, m_n).at[label_n].min(m_n))
        return new_n, jnp.any(new_n != label_n), passes + 1

    init = (jnp.arange(n, dtype=jnp.int32), jnp.array(True), jnp.zeros((), jnp.int32))
    root_n, _, passes = jax.lax.while_loop(lambda s: s[1], step, init)

    # Border points: the component of the nearest core within eps (ties: the lowest original index).
    def reach(i, j):  # pairs from a non-core point i to a core point j
        return within_t & ~core_n[i] & core_n[j]

    best_n = reduce_min(lambda i, j: sq_t, reach, jnp.inf)
    near_orig_n = reduce_min(lambda i, j: order_n[j], lambda i, j: reach(i, j) & (sq_t == best_n[i]), big)
    position_n = jnp.zeros((n,), jnp.int32).at[order_n].set(jnp.arange(n, dtype=jnp.int32))
    near_root_n = root_n[position_n[jnp.minimum(near_orig_n, n - 1)]]
    root_n = jnp.where(core_n, root_n, jnp.where(near_orig_n < big, near_root_n, -1))
    return _number(root_n, core_n, order_n), passes
