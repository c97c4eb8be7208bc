"""HDBSCAN (Campello et al. 2013; McInnes & Healy 2017): the clusters that persist longest over all DBSCAN radii.

    r = hdbscan.fit(x_nd, min_samples=10, min_cluster_size=700)
    # HDBSCANResult(labels [n] (-1: noise), n_clusters, core_distances [n], stability [k], eps_birth [k])

A point's core distance is the distance to its min_samples-th nearest point (itself counted first, as DBSCAN
and scikit-learn count it); two points are joined at radius max(core_i, core_j, d_ij) (mutual reachability),
so the clusters of DBSCAN(eps, min_samples)'s core points at every eps are the components of the edges up to
eps. Their minimum spanning tree holds the whole hierarchy. We build it over the n_neighbors-nearest-neighbour
graph (jitted: `neighbors.knn`, then Boruvka's algorithm in a `lax.while_loop`); parts that this graph leaves
apart join at the radius of the longest tree edge. The tree is condensed (a split that leaves fewer than
min_cluster_size points on one side is points falling out, not a new cluster) and the clusters of largest
excess of mass (stability: the sum over its points of 1/eps at which they leave, less 1/eps at its birth) are
chosen, the root excluded, as scikit-learn's `HDBSCAN` chooses them (NumPy; O(n)).

Why and how it was measured: docs/design/neighbour_embeddings.md#hdbscan.
"""

from __future__ import annotations

import collections
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from research import checks
from research.cluster.dbscan import to_roots
from research.embed import neighbors


class HDBSCANResult(NamedTuple):
    """An HDBSCAN partition (NumPy arrays).

    labels: [n] int32, cluster of each point, -1 for noise; clusters numbered 0.. from the top of the tree.
    n_clusters: int.
    core_distances: [n] float32, distance to the min_samples-th nearest point, itself counted.
    stability: [n_clusters] float64, each chosen cluster's excess of mass (in units of 1/distance).
    eps_birth: [n_clusters] float64, the radius below which the cluster stands apart from the rest: DBSCAN
      with a smaller eps (and the same min_samples) finds it, or parts of it.
    """

    labels: np.ndarray
    n_clusters: int
    core_distances: np.ndarray
    stability: np.ndarray
    eps_birth: np.ndarray


@jax.jit
def _spanning_forest(x_nd, idx_nk, dist_nk, min_samples):
    """Minimum spanning forest of the kNN graph (idx_nk, dist_nk: each point's k nearest others) under mutual
    reachability.

    Returns (core [n], lo [e], hi [e], weight [e], in_tree [e] bool) over e = 2 n k directed edges (each kNN
    edge both ways); each tree edge is marked once.
    """
    n, k = idx_nk.shape
    core_n = jnp.pad(dist_nk, ((0, 0), (1, 0)))[:, min_samples - 1]  # itself first, at distance 0
    # Both directions of every kNN edge, so a component sees an edge that only the other end's list holds.
    near = jnp.repeat(jnp.arange(n, dtype=jnp.int32), k)
    src, dst = jnp.concatenate([near, idx_nk.reshape(-1)]), jnp.concatenate([idx_nk.reshape(-1), near])
    lo, hi = jnp.minimum(src, dst), jnp.maximum(src, dst)
    # The distance again from (lo, hi), so both directions of an edge weigh the same to the last bit (the
    # search's two rows may round differently) and the order below is total: no cycles.
    d = jnp.sqrt(jnp.sum(jnp.square(x_nd[lo] - x_nd[hi]), axis=1))
    w = jnp.maximum(jnp.maximum(core_n[src], core_n[dst]), d)
    e = src.shape[0]
    big = jnp.iinfo(jnp.int32).max
    node = jnp.arange(n, dtype=jnp.int32)
    seg_min = functools.partial(jax.ops.segment_min, num_segments=n)

    def step(state):
        comp_n, in_tree, _ = state
        cs = comp_n[src]
        out = cs != comp_n[dst]
        # Each component's lightest outgoing edge under the total order (weight, lo, hi), so no cycles form
        # but pairs of components that chose the same edge.
        cand = out & (w == seg_min(jnp.where(out, w, jnp.inf), cs)[cs])
        cand &= lo == seg_min(jnp.where(cand, lo, big), cs)[cs]
        cand &= hi == seg_min(jnp.where(cand, hi, big), cs)[cs]
        pick_n = seg_min(jnp.where(cand, jnp.arange(e, dtype=jnp.int32), big), cs)
        has = (comp_n == node) & (pick_n < big)
        target = jnp.where(has, comp_n[dst[jnp.minimum(pick_n, e - 1)]], comp_n)
        mutual = (target[target] == node) & (node < target)  # the lower of such a pair stays a root
        target = jnp.where(mutual, node, target)
        in_tree = in_tree.at[jnp.where(has & ~mutual, pick_n, e)].set(True, mode="drop")  # one mark per edge
        return to_roots(target)[comp_n], in_tree, jnp.any(has)

    init = (node, jnp.zeros((e,), bool), jnp.array(True))
    _, in_tree, _ = jax.lax.while_loop(lambda s: s[2], step, init)
    return core_n, lo, hi, w, in_tree


def _single_linkage(n, lo, hi, w):
    """The merge tree of the forest's edges, lightest first: (children lists, merge distance, size) per node;
    nodes 0..n-1 are the points, then one per edge, then (when the forest has several trees) a root over them,
    at the longest edge's distance."""
    order = np.lexsort((hi, lo, w))
    lo, hi, w = lo[order], hi[order], w[order]
    m = len(w)
    up = np.arange(n + m + 1)
    children: list = [()] * n
    dist = np.zeros(n + m + 1)
    size = np.ones(n + m + 1, np.int64)

    def find(v):
        root = v
        while up[root] != root:
            root = up[root]
        while up[v] != root:
            up[v], v = root, up[v]
        return root

    for i in range(m):
        a, b, node = find(lo[i]), find(hi[i]), n + i
        if a == b:
            raise AssertionError("the spanning forest has a cycle")  # the edge order was not total
        up[a] = up[b] = node
        children.append((a, b))
        dist[node], size[node] = w[i], size[a] + size[b]
    tops = [v for v in range(n + m) if up[v] == v]
    if len(tops) == 1:
        return children, dist[: n + m], size[: n + m], tops[0]
    root = n + m
    children.append(tuple(tops))
    dist[root] = w[-1] if m else 1.0
    size[root] = n
    return children, dist, size, root


def _condense_and_choose(n, children, dist, size, root, min_cluster_size):
    """Condensed tree, stability and the excess-of-mass choice. Returns (labels [n], stability [k], eps_birth [k])."""
    positive = dist[dist > 0]
    lam_max = 1.0 / positive.min() if positive.size else 1.0
    fell_cluster = np.zeros(n, np.int64)
    fell_lambda = np.zeros(n)
    parent, birth, csize = [-1], [0.0], [int(size[root])]
    queue = collections.deque([(root, 0)])
    while queue:
        v, c = queue.popleft()
        lam = 1.0 / dist[v] if dist[v] > 0 else lam_max
        kids = children[v]
        big = [u for u in kids if size[u] >= min_cluster_size]
        if len(big) >= 2:
            for u in big:
                parent.append(c), birth.append(lam), csize.append(int(size[u]))
                queue.append((u, len(parent) - 1))
        elif big:
            queue.append((big[0], c))
        for u in kids:
            if size[u] >= min_cluster_size:
                continue
            stack = [u]  # every point under u leaves cluster c at lam
            while stack:
                t = stack.pop()
                if t < n:
                    fell_cluster[t], fell_lambda[t] = c, lam
                else:
                    stack.extend(children[t])
    parent, birth, csize = np.array(parent), np.array(birth), np.array(csize)
    k = len(parent)
    stability = np.bincount(fell_cluster, fell_lambda - birth[fell_cluster], minlength=k)
    kids_of: list = [[] for _ in range(k)]
    for c in range(1, k):
        stability[parent[c]] += csize[c] * (birth[c] - birth[parent[c]])
        kids_of[parent[c]].append(c)
    best = stability.copy()
    chosen = np.zeros(k, bool)
    for c in range(k - 1, 0, -1):  # children come after their parents; the root (0) is never chosen
        below = best[kids_of[c]].sum()
        if below > stability[c]:
            best[c] = below
        else:
            chosen[c] = True
    label_of = np.full(k, -1)
    ids = []
    for c in range(1, k):  # top-down: the highest chosen cluster on a point's path names it
        if label_of[parent[c]] >= 0:
            label_of[c] = label_of[parent[c]]
        elif chosen[c]:
            label_of[c] = len(ids)
            ids.append(c)
    ids = np.array(ids, np.int64)
    return label_of[fell_cluster].astype(np.int32), stability[ids], 1.0 / birth[ids]


def fit(
    x, min_samples: int = 5, min_cluster_size: int = 5, *, n_neighbors: int | None = None, block_size: int = 1024
) -> HDBSCANResult:
    """HDBSCAN of x [n, d] (Euclidean): scikit-learn's `HDBSCAN(min_cluster_size, min_samples)` partition when
    the neighbour graph holds the minimum spanning tree (always with n_neighbors = n - 1), up to ties: merges
    at equal radii taken in another order may move a few points between a cluster and the noise.

    Args:
      x: [n, d] data (NumPy or JAX), finite; cast to float32.
      min_samples: a point's core distance is the distance to its min_samples-th nearest point, itself
        counted (DBSCAN's min_samples).
      min_cluster_size: the fewest points a cluster holds, >= 2; smaller splits are points leaving as noise.
      n_neighbors: neighbours per point in the graph the spanning tree is built on; default
        max(2 * min_samples, 15), at most n - 1. Larger: nearer the exact tree, more memory ([n, k]).
      block_size: query rows per block of the kNN search.

    Returns:
      HDBSCANResult(labels, n_clusters, core_distances, stability, eps_birth); see its docstring.
    """
    x = checks.as_matrix(x)
    n = x.shape[0]
    min_samples = checks.check_positive_int(min_samples, "min_samples")
    min_cluster_size = checks.check_positive_int(min_cluster_size, "min_cluster_size")
    block_size = checks.check_positive_int(block_size, "block_size")
    if n < 2:
        raise ValueError(f"HDBSCAN needs at least 2 points, got {n}.")
    if min_samples > n:
        raise ValueError(f"min_samples={min_samples} is larger than the {n} points; use min_samples <= {n}.")
    if min_cluster_size < 2:
        raise ValueError(f"min_cluster_size must be >= 2 (a cluster of one point is noise), got {min_cluster_size}.")
    k = max(2 * min_samples, 15) if n_neighbors is None else checks.check_positive_int(n_neighbors, "n_neighbors")
    k = min(max(k, min_samples - 1), n - 1)
    x = jnp.asarray(x)
    nn = neighbors.knn(x, k, block_size=block_size)
    core, lo, hi, w, in_tree = jax.device_get(_spanning_forest(x, nn.indices, nn.distances, jnp.int32(min_samples)))
    tree = _single_linkage(n, lo[in_tree], hi[in_tree], w[in_tree].astype(np.float64))
    labels, stability, eps_birth = _condense_and_choose(n, *tree, min_cluster_size)
    return HDBSCANResult(labels, len(stability), np.asarray(core), stability, eps_birth)
