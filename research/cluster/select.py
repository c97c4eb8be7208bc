"""Choosing K without labels: k-means inertia (elbow), silhouette and GMM BIC, each as a curve over K.

  el = select.elbow(key, x, ks, n_init=3)                       # Elbow(ks, inertia, labels, k)
  sil = select.silhouette(x, ks, el.labels, sample_size=10_000)   # or labels: a function K -> labels
  b = select.bic(key, x, ks, labels_init=el.labels)              # BIC(ks, bic, aic, lower_bound, ...)

x: [n, d] float32; ks: increasing ints in [1, n]. The rules: elbow, the K whose point is farthest from the
chord of the inertia curve, both axes scaled to [0, 1] (Kneedle, Satopaa et al. 2011; needs 3 K); silhouette,
the highest mean silhouette (Rousseeuw 1987), defined where the labels have 2..n-1 clusters; BIC, the lowest
(Schwarz 1978). Ties go to the smaller K. Keys: K's k-means and GMM keys are `keys(key, K)`, so a curve does
not change when other K are added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from absl import logging

from research import checks, metrics
from research.cluster import gmm, kmeans


class Elbow(NamedTuple):
    ks: np.ndarray  # [m] int
    inertia: np.ndarray  # [m] float64: the k-means inertia at each K
    labels: list  # [m] arrays [n] int32: the k-means labels at each K
    k: int | None  # the elbow; None with fewer than three K or a flat curve


class Silhouette(NamedTuple):
    ks: np.ndarray  # [m] int
    scores: np.ndarray  # [m] float64: the mean silhouette; NaN where the labels have < 2 or > n - 1 clusters
    labels: list  # [m] arrays [n]: the labels scored
    k: int | None  # the highest score; None when no K has one


class BIC(NamedTuple):
    ks: np.ndarray  # [m] int
    bic: np.ndarray  # [m] float64; NaN where the mixture failed (it collapsed at that K)
    aic: np.ndarray  # [m] float64
    lower_bound: np.ndarray  # [m] float64: mean log-likelihood per sample
    converged: np.ndarray  # [m] bool
    labels: list  # [m] arrays [n] int32, or None where the mixture failed
    k: int | None  # the lowest BIC; None when every mixture failed


def keys(key, k: int):
    """(k-means key, GMM key) for K: split(fold_in(key, K))."""
    return tuple(jax.random.split(jax.random.fold_in(key, k)))


def check_ks(ks, n_samples: int) -> np.ndarray:
    """ks as an int array: at least one, strictly increasing, each in [1, n_samples]; ValueError otherwise."""
    arr = np.asarray(ks)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ks must be a non-empty sequence of whole numbers, got {ks!r}.")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"ks must be strictly increasing, got {arr.tolist()}.")
    if arr[0] < 1 or arr[-1] > n_samples:
        raise ValueError(f"every K must be in [1, {n_samples}] (the number of samples), got {arr.tolist()}.")
    return arr.astype(np.int64)


def elbow(key, x, ks: Sequence[int], *, n_init: int = 3, **kmeans_kwargs) -> Elbow:
    """k-means (research.cluster.kmeans.fit, `n_init` restarts) at each K; the inertia curve and its elbow."""
    x = checks.as_matrix(x)
    ks = check_ks(ks, x.shape[0])
    fits = [kmeans.fit(keys(key, int(k))[0], x, int(k), n_init=n_init, **kmeans_kwargs) for k in ks]
    inertia = np.array([float(f.inertia) for f in fits])
    return Elbow(ks, inertia, [np.asarray(f.labels) for f in fits], metrics.elbow_k(ks, inertia))


def mean_silhouette(x, labels, *, sample_size: int | None = None, seed: int = 0) -> float:
    """metrics.silhouette of labels [n] on x [n, d] (on `sample_size` points drawn with `seed`); NaN where it
    is not defined: fewer than 2 or more than n - 1 clusters."""
    labels = np.asarray(labels)
    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return float("nan")
    return metrics.silhouette(x, labels, sample_size=sample_size, seed=seed)


def silhouette(x, ks: Sequence[int], labels, *, sample_size: int | None = None, seed: int = 0) -> Silhouette:
    """The mean silhouette of a labelling at each K, on `sample_size` points drawn with `seed` (None: all of
    them); the K of the highest. labels: one labelling [n] per K (e.g. `Elbow.labels`), or a function K ->
    labelling (e.g. a fit at K, run here one K at a time)."""
    x = checks.as_matrix(x)
    ks = check_ks(ks, x.shape[0])
    if not callable(labels) and len(labels) != len(ks):
        raise ValueError(f"labels must hold one labelling per K ({len(ks)}), got {len(labels)}.")
    out, scores = [], []
    for i, k in enumerate(ks):
        out.append(np.asarray(labels(int(k)) if callable(labels) else labels[i]))
        scores.append(mean_silhouette(x, out[-1], sample_size=sample_size, seed=seed))
        logging.info("K=%d: silhouette %.4f", k, scores[-1])
    scores = np.asarray(scores, np.float64)
    best = int(ks[np.nanargmax(scores)]) if np.any(np.isfinite(scores)) else None
    return Silhouette(ks, scores, out, best)


def bic(
    key,
    x,
    ks: Sequence[int],
    *,
    labels_init: Sequence | None = None,
    covariance_type: str = "full",
    max_iter: int = 100,
    reg_covar: float = 1e-6,
    **gmm_kwargs,
) -> BIC:
    """A Gaussian mixture (research.cluster.gmm.fit) at each K, started from `labels_init[i]` when given (e.g.
    the elbow's k-means labels); its BIC, AIC and lower bound, and the K of the lowest BIC. A mixture that
    fails at some K (ValueError: it collapsed) gets NaN there and a warning; the other K still count."""
    x = checks.as_matrix(x)
    ks = check_ks(ks, x.shape[0])
    if labels_init is not None and len(labels_init) != len(ks):
        raise ValueError(f"labels_init must hold one labelling per K ({len(ks)}), got {len(labels_init)}.")
    rows, labels = [], []
    for i, k in enumerate(ks):
        init = {} if labels_init is None else {"labels_init": labels_init[i]}
        try:
            g = gmm.fit(
                keys(key, int(k))[1],
                x,
                int(k),
                covariance_type=covariance_type,
                max_iter=max_iter,
                reg_covar=reg_covar,
                **init,
                **gmm_kwargs,
            )
        except ValueError as e:
            logging.warning("GMM with K=%d failed: %s", k, e)
            rows.append((np.nan, np.nan, np.nan, False))
            labels.append(None)
            continue
        rows.append((gmm.bic(g.params, x), gmm.aic(g.params, x), float(g.lower_bound), bool(g.converged)))
        labels.append(np.asarray(g.labels))
    b, a, lb, conv = (np.asarray(c) for c in zip(*rows))
    b, a, lb = (np.asarray(v, np.float64) for v in (b, a, lb))
    best = int(ks[np.nanargmin(b)]) if np.any(np.isfinite(b)) else None
    return BIC(ks, b, a, lb, conv.astype(bool), labels, best)
