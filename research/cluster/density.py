"""Density clustering of a low-dimensional picture (a 2-D t-SNE, say) with its settings chosen without labels.

    labels, params, chosen, title = density.cluster(z_n2, eps=None, min_samples=10)   # HDBSCAN, 1% clusters
    labels, ... = density.cluster(z_n2, eps=2.4, min_samples=100)                     # DBSCAN at a given radius
    labels, ... = density.cluster(z_n2, eps=0.0, min_samples=10)                      # DBSCAN, radius from the data

eps None: HDBSCAN (research.cluster.hdbscan) with min_cluster_size 1% of the points unless given: each cluster is
kept at the radii where it holds together longest, so no single radius has to fit every digit. A number > 0:
scikit-learn's DBSCAN partition at that radius (research.cluster.dbscan). 0: DBSCAN at the radius that makes
`eps_quantile` of the points core points. Why HDBSCAN is the default: docs/design/neighbour_embeddings.md#hdbscan.
"""

from __future__ import annotations

import numpy as np

from research.cluster import dbscan, hdbscan
from research.embed import neighbors


def parse_eps(text: str):
    """An eps given as text: None for "auto" (HDBSCAN), else a float >= 0; False when it is neither."""
    if text.strip().lower() == "auto":
        return None
    try:
        eps = float(text)
    except ValueError:
        return False
    return eps if 0 <= eps < float("inf") else False


def choose_eps(z_nd, min_samples: int, quantile: float) -> float:
    """The `quantile` of each point's distance to its min_samples-th nearest neighbour (itself counted first,
    as DBSCAN counts it): at 0.9, nine points in ten are core points."""
    kth = neighbors.knn(z_nd, max(1, min_samples - 1)).distances[:, -1]
    return float(np.quantile(np.asarray(kth), quantile))


def default_min_cluster_size(n: int, given: int | None) -> int:
    """`given`, else 1% of the n points (at least 2): the smallest group worth calling a cluster."""
    return given if given is not None else max(2, round(0.01 * n))


def cluster(z_nd, *, eps: float | None, min_samples: int, eps_quantile: float = 0.9, min_cluster_size=None):
    """The density clustering of z [n, d]: (labels [n] (-1: noise), params for a checkpoint, a dict of what was
    chosen for results.json, a title fragment). See the module docstring for eps."""
    if eps is None:
        size = default_min_cluster_size(len(z_nd), min_cluster_size)
        res = hdbscan.fit(z_nd, min_samples, size)
        chosen = {
            "method": "hdbscan",
            "min_cluster_size": size,
            # DBSCAN with a radius below this (and the same min_samples) keeps every chosen cluster apart.
            "eps": float(res.eps_birth.min()) if res.n_clusters else None,
            "eps_birth": np.round(res.eps_birth, 4).tolist(),
            "stability": np.round(res.stability, 2).tolist(),
        }
        title = f"HDBSCAN (min_samples {min_samples}, min_cluster_size {size})"
        return res.labels, {"core_distances": res.core_distances}, chosen, title
    eps = eps or choose_eps(z_nd, min_samples, eps_quantile)
    res = dbscan.fit(z_nd, eps, min_samples, block_size=256)
    title = f"DBSCAN (eps {eps:.3g}, min_samples {min_samples})"
    return np.asarray(res.labels), {"core_mask": np.asarray(res.core_mask)}, {"method": "dbscan", "eps": eps}, title
