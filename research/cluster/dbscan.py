"""DBSCAN (Ester et al. 1996) as one jitted function, with scikit-learn's partition.

    r = dbscan.fit(x_nd, eps=0.3, min_samples=10)    # DBSCANResult(labels, core_mask, n_clusters)

The steps, each a blocked pass over the pairs within eps (`neighbors.radius_fold`: the rows are
sorted along their widest coordinate once, and each block of rows only meets the tiles of rows
that can be within eps of it, so memory stays at [block_size, block_size] and in low dimension
most pairs are never computed):

1. Neighbourhood counts, the point itself included (scikit-learn's convention); core points
   have at least `min_samples`.
2. Connected components of the core points, two cores joined when within eps, by min-label
   propagation in a `lax.while_loop`: every core's label starts as its own (sorted) position;
   each pass takes, for every core, the minimum label m among its core neighbours, lowers its
   own label and its label's label to m (hooking the tree it points to, as in FastSV, Zhang et
   al. 2020), then follows pointers to the roots (label = label[label] until nothing moves).
   Labels only decrease and each points to a smaller position in the same component, so the
   loop stops, after a pass that changes nothing, with each component labelled by one member.
   Hooking and pointer jumping take it there in a few passes rather than one per hop.
3. Border points (not core, within eps of a core) take the component of their nearest core
   neighbour (ties: lowest index). scikit-learn gives a border point to whichever of its core
   neighbours' clusters reaches it first, so the two agree whenever a border point's core
   neighbours all lie in one cluster. Everything else is noise, -1.
4. Clusters are numbered 0.. in order of their smallest core point index, which is the order
   in which scikit-learn discovers them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from research import checks
from research.embed import neighbors


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


def _to_roots(label_n):
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
        new_n = _to_roots(new_n)
        return new_n, jnp.any(new_n != label_n), passes + 1

    init = (jnp.arange(n, dtype=jnp.int32), jnp.array(True), jnp.zeros((), jnp.int32))
    label_n, _, passes = jax.lax.while_loop(lambda s: s[1], step, init)
    return label_n, passes


@functools.partial(jax.jit, static_argnames=("block_size",))
def _fit(x_nd, eps, min_samples, *, block_size):
    n = x_nd.shape[0]
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

    # Number the components by their smallest core point index (original order).
    is_root_n = core_n & (root_n == jnp.arange(n))
    first_n = jnp.full((n,), n, jnp.int32).at[jnp.where(core_n, root_n, n)].min(order_n, mode="drop")
    starts_n = jnp.zeros((n,), jnp.int32).at[jnp.where(is_root_n, first_n, n)].set(1, mode="drop")
    cluster_of_first_n = jnp.cumsum(starts_n) - 1
    cluster_of_root_n = cluster_of_first_n[jnp.minimum(first_n, n - 1)]
    labels_n = jnp.where(root_n >= 0, cluster_of_root_n[jnp.maximum(root_n, 0)], -1)

    # Back to the original order.
    labels = jnp.zeros((n,), jnp.int32).at[order_n].set(labels_n)
    core_mask = jnp.zeros((n,), bool).at[order_n].set(core_n)
    return DBSCANResult(labels, core_mask, jnp.sum(is_root_n, dtype=jnp.int32)), passes


def _prepare(x, eps, min_samples, block_size):
    x = checks.as_matrix(x)
    eps = checks.check_positive_float(eps, "eps", meaning="the neighbourhood radius")
    min_samples = checks.check_positive_int(min_samples, "min_samples")
    block_size = checks.check_positive_int(block_size, "block_size")
    return (jnp.asarray(x), jnp.float32(eps), jnp.int32(min_samples)), {"block_size": block_size}


def fit(x, eps: float, min_samples: int = 5, *, block_size: int = 1024) -> DBSCANResult:
    """DBSCAN of x [n, d] (Euclidean): scikit-learn's `DBSCAN(eps, min_samples)` partition.

    Args:
      x: [n, d] data (NumPy or JAX), finite; cast to float32.
      eps: neighbourhood radius, > 0; points at distance exactly eps are neighbours.
      min_samples: a point is a core point when at least this many points (itself included) lie
        within eps of it.
      block_size: rows per block and per column tile: memory holds [block_size, block_size]
        distances at a time. On 70k 2-D points 256 ran fastest (smaller blocks meet narrower
        windows of the sorted rows); in high dimension the windows span most of the data.

    Returns:
      DBSCANResult(labels [n] int32 (-1: noise), core_mask [n] bool, n_clusters [] int32). Core
      points and noise are scikit-learn's exactly (up to float32 rounding of distances within
      about 1e-7 of eps); a border point near cores of two clusters goes to its nearest core's
      cluster, where scikit-learn takes the first cluster to reach it.
    """
    args, static = _prepare(x, eps, min_samples, block_size)
    return _fit(*args, **static)[0]
