"""Clustering metrics as the deep-clustering papers (DEC, IDEC, N2D) report them.

Label metrics (acc, nmi, ari, purity, matched confusion, precision/recall) work
on the host in NumPy: they only need the [n_classes, n_clusters] contingency
table. Geometry metrics (inertia, silhouette) are jitted JAX reductions over
the samples, so they run on MNIST-sized data (70k x 784) in bounded memory.

Labels may be any integers (e.g. -1 for DBSCAN noise, non-contiguous ids); a
cluster id is never assumed to equal a class id.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from research.checks import as_matrix, check_labels, check_positive_int


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Returns both labelings as int64 [n]; raises ValueError naming the problem."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D [n_samples], got shape {y.shape}.")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}; they must have the same length."
        )
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty; metrics need at least one sample.")
    return check_labels(y_true, len(y_true), "y_true"), check_labels(y_pred, len(y_true), "y_pred")


def _codes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values of y, each sample's index among them): np.unique(y, return_inverse=True), counted
    with one bincount when y holds integers of a small range (cluster ids, classes), as it nearly always does.
    unique sorts: on 120M labels it held several GB for a few seconds; the count holds one index array."""
    if y.dtype.kind in "iu" and y.size:
        lo, hi = int(y.min()), int(y.max())
        if hi - lo < 1 << 20:
            present = np.bincount((y - lo) if lo else y, minlength=hi - lo + 1) > 0
            index = np.cumsum(present) - 1
            return (np.flatnonzero(present) + lo).astype(y.dtype), index[(y - lo) if lo else y]
    return np.unique(y, return_inverse=True)


def _table(y_true: np.ndarray, y_pred: np.ndarray):
    (classes, ci), (clusters, ki) = _codes(y_true), _codes(y_pred)
    flat = np.bincount(ci * len(clusters) + ki, minlength=len(classes) * len(clusters))
    return flat.reshape(len(classes), len(clusters)).astype(np.int64), classes, clusters


def contingency(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of (class, cluster) pairs.

    Returns (table [n_classes, n_clusters] int64, classes [n_classes], clusters [n_clusters]),
    with `classes` and `clusters` the sorted distinct labels indexing the rows and columns.
    """
    return _table(*_check_pair(y_true, y_pred))


def _matching(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Rectangular tables are fine: min(n_classes, n_clusters) pairs are matched.
    rows, cols = linear_sum_assignment(table, maximize=True)
    return rows, cols


def match_clusters(y_true, y_pred) -> dict[int, int]:
    """One-to-one map cluster -> class maximising the number of agreeing samples (Hungarian).

    Only min(n_classes, n_clusters) clusters are matched. With more clusters than
    classes the extra clusters are absent from the dict: their samples count as
    errors for `acc`. With fewer clusters some classes have no cluster.
    """
    table, classes, clusters = _table(*_check_pair(y_true, y_pred))
    rows, cols = _matching(table)
    return {int(clusters[c]): int(classes[r]) for r, c in zip(rows, cols)}


def acc(y_true, y_pred) -> float:
    """Unsupervised clustering accuracy (DEC): max over one-to-one cluster->class maps of the matched fraction.

    Samples in clusters left unmatched (more clusters than classes) count as errors.
    """
    return _acc(_table(*_check_pair(y_true, y_pred))[0])


def _acc(table) -> float:
    rows, cols = _matching(table)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information, I / mean(H_true, H_pred) (sklearn's default 'arithmetic')."""
    return _nmi(_table(*_check_pair(y_true, y_pred))[0])


def _nmi(table) -> float:
    if table.shape == (1, 1):
        return 1.0  # two identical one-cluster labelings; sklearn's convention
    n = table.sum()
    i, j = np.nonzero(table)
    nij = table[i, j].astype(np.float64)
    a, b = table.sum(1).astype(np.float64), table.sum(0).astype(np.float64)
    mi = float(np.sum(nij / n * (np.log(nij * n) - np.log(a[i] * b[j]))))
    if mi <= 0.0:
        return 0.0
    denom = max(0.5 * (_entropy(a) + _entropy(b)), np.finfo(np.float64).eps)
    return float(min(mi / denom, 1.0))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index (Hubert & Arabie), equal to sklearn's adjusted_rand_score."""
    return _ari(_table(*_check_pair(y_true, y_pred))[0])


def _ari(table) -> float:
    # Python ints: the pair counts overflow int64 products beyond ~100k samples.
    n = int(table.sum())
    sq = int((table.astype(object) ** 2).sum())
    a, b = table.sum(1).astype(object), table.sum(0).astype(object)
    tp = sq - n
    fp = int((table.astype(object) @ b).sum()) - sq
    fn = int((table.T.astype(object) @ a).sum()) - sq
    tn = n * n - fp - fn - sq
    if fn == 0 and fp == 0:
        return 1.0  # identical partitions, including the all-singletons / one-cluster cases
    return float(2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def purity(y_true, y_pred) -> float:
    """Fraction of samples whose cluster's majority class is their class (not one-to-one: rewards many clusters)."""
    return _purity(_table(*_check_pair(y_true, y_pred))[0])


def _purity(table) -> float:
    return float(table.max(0).sum() / table.sum())


def matched_confusion(y_true, y_pred) -> np.ndarray:
    """Confusion matrix after mapping clusters to classes with `match_clusters`.

    Returns int64 [n_classes, n_classes + 1]: row i is the true class classes[i]
    (sorted distinct labels of y_true), column j < n_classes the class a sample's
    cluster was matched to, and the last column counts samples whose cluster was
    left unmatched (only nonzero with more clusters than classes). Its trace / n is `acc`.
    """
    table, classes, clusters = _table(*_check_pair(y_true, y_pred))
    rows, cols = _matching(table)
    conf = np.zeros((len(classes), len(classes) + 1), np.int64)
    target = np.full(len(clusters), len(classes))  # unmatched clusters go to the last column
    target[cols] = rows
    np.add.at(conf.T, target, table.T)
    return conf


def precision_recall(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (precision [C], recall [C], f1 [C]) after matching, in sorted class order.

    Samples in unmatched clusters are false negatives of their class and false
    positives of none. Undefined ratios (0/0, e.g. a class with no cluster) are 0,
    as sklearn's precision_recall_fscore_support(zero_division=0).
    """
    conf = matched_confusion(y_true, y_pred)
    tp = np.diag(conf[:, :-1]).astype(np.float64)

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    precision = ratio(tp, conf[:, :-1].sum(0).astype(np.float64))
    recall = ratio(tp, conf.sum(1).astype(np.float64))
    return precision, recall, ratio(2 * precision * recall, precision + recall)


def evaluate(y_true, y_pred) -> dict[str, float]:
    """The numbers experiments report: {'acc', 'nmi', 'ari', 'purity'} as floats."""
    table = _table(*_check_pair(y_true, y_pred))[0]  # all four read the one contingency table
    return {"acc": _acc(table), "nmi": _nmi(table), "ari": _ari(table), "purity": _purity(table)}


@jax.jit
def _inertia(x_nd, labels_n, centroids_kd):
    return jnp.sum(jnp.square(x_nd - centroids_kd[labels_n]))


def inertia(x_nd, labels_n, centroids_kd) -> float:
    """Sum over samples of the squared distance to the assigned centroid.

    x_nd: [n, d] float32; labels_n: [n] ints in [0, k), indices into centroids_kd: [k, d].
    """
    x_nd = as_matrix(x_nd, "x_nd")
    centroids_kd = as_matrix(centroids_kd, "centroids_kd")
    labels_n = check_labels(labels_n, x_nd.shape[0], "labels_n")
    if centroids_kd.shape[1] != x_nd.shape[1]:
        raise ValueError(f"centroids_kd has {centroids_kd.shape[1]} features but x_nd has {x_nd.shape[1]}.")
    k = centroids_kd.shape[0]
    if labels_n.min() < 0 or labels_n.max() >= k:
        raise ValueError(
            f"labels_n must index centroids_kd, i.e. lie in [0, {k}); got [{labels_n.min()}, {labels_n.max()}]."
        )
    return float(_inertia(x_nd, jnp.asarray(labels_n, jnp.int32), centroids_kd))


@functools.partial(jax.jit, static_argnames=("n_clusters", "block_size"))
def _silhouette_samples(x_nd, labels_n, *, n_clusters: int, block_size: int):
    n = x_nd.shape[0]
    # Distances are translation invariant; centring shrinks ||a||^2 + ||b||^2 and so the
    # cancellation error of the expansion below.
    x_nd = x_nd - jnp.mean(x_nd, axis=0)
    sq_n = jnp.sum(x_nd * x_nd, axis=1)
    onehot_nk = jax.nn.one_hot(labels_n, n_clusters, dtype=x_nd.dtype)
    n_blocks = -(-n // block_size)
    pad = n_blocks * block_size - n
    rows_bbd = jnp.pad(x_nd, ((0, pad), (0, 0))).reshape(n_blocks, block_size, -1)
    idx_bb = jnp.arange(n_blocks * block_size).reshape(n_blocks, block_size)

    def block_sums(args):
        xb_bd, idx_b = args
        d2_bn = jnp.sum(xb_bd * xb_bd, axis=1)[:, None] - 2.0 * xb_bd @ x_nd.T + sq_n[None, :]
        dist_bn = jnp.sqrt(jnp.maximum(d2_bn, 0.0))
        # A point's distance to itself is exactly 0, not the expansion's rounding residue.
        dist_bn = jnp.where(idx_b[:, None] == jnp.arange(n)[None, :], 0.0, dist_bn)
        return dist_bn @ onehot_nk  # [block, k]: distance sums to each cluster

    sums_nk = jax.lax.map(block_sums, (rows_bbd, idx_bb)).reshape(-1, n_clusters)[:n]
    counts_k = jnp.sum(onehot_nk, axis=0)
    own_n = onehot_nk.astype(bool)
    count_own = counts_k[labels_n]
    a_n = jnp.sum(jnp.where(own_n, sums_nk, 0.0), axis=1) / jnp.maximum(count_own - 1.0, 1.0)
    b_n = jnp.min(jnp.where(own_n, jnp.inf, sums_nk / counts_k[None, :]), axis=1)
    s_n = (b_n - a_n) / jnp.maximum(jnp.maximum(a_n, b_n), jnp.finfo(x_nd.dtype).tiny)
    return jnp.where(count_own > 1, s_n, 0.0)  # singletons score 0, as in sklearn


def _prepare(x_nd, labels_n):
    x_nd = as_matrix(x_nd, "x_nd")
    labels_n = check_labels(labels_n, x_nd.shape[0], "labels_n")
    _, codes_n = np.unique(labels_n, return_inverse=True)
    return x_nd, codes_n


def _silhouette_from_codes(x_nd, codes_n, block_size) -> np.ndarray:
    n = x_nd.shape[0]
    n_labels = int(codes_n.max()) + 1
    if not 2 <= n_labels <= n - 1:
        raise ValueError(
            f"Silhouette needs 2 <= number of distinct labels <= n_samples - 1; got {n_labels} labels for {n} samples."
        )
    block_size = min(check_positive_int(block_size, "block_size"), n)
    s_n = _silhouette_samples(
        jnp.asarray(x_nd, jnp.float32), jnp.asarray(codes_n, jnp.int32), n_clusters=n_labels, block_size=block_size
    )
    return np.asarray(s_n, np.float64)


def silhouette_samples(x_nd, labels_n, *, block_size: int = 1024) -> np.ndarray:
    """Per-sample silhouette (b - a) / max(a, b) with Euclidean distances, float64 [n].

    Computed in row blocks of `block_size` against all points, so memory is
    O(block_size * n); a sample alone in its cluster scores 0.
    """
    x_nd, codes_n = _prepare(x_nd, labels_n)
    return _silhouette_from_codes(x_nd, codes_n, block_size)


def silhouette(x_nd, labels_n, *, sample_size: int | None = None, seed: int = 0, block_size: int = 1024) -> float:
    """Mean silhouette coefficient, like sklearn's silhouette_score.

    With `sample_size`, it is computed on that many points drawn without
    replacement (the same points for the same `seed`), as sklearn's sample_size does.
    """
    x_nd, codes_n = _prepare(x_nd, labels_n)
    if sample_size is not None:
        sample_size = check_positive_int(sample_size, "sample_size")
        n = x_nd.shape[0]
        if sample_size < n:
            idx = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))
            x_nd = x_nd[jnp.asarray(idx)] if isinstance(x_nd, jax.Array) else x_nd[idx]
            _, codes_n = np.unique(codes_n[idx], return_inverse=True)
    return float(np.mean(_silhouette_from_codes(x_nd, codes_n, block_size)))


def elbow_k(ks, inertia):
    """The K whose point is farthest from the chord of the (K, inertia) curve, both axes scaled to [0, 1].

    Returns None with fewer than three points or a flat curve.
    """
    ks = np.asarray(ks, np.float64)
    y = np.asarray(inertia, np.float64)
    if len(ks) < 3 or not np.all(np.isfinite(y)) or np.ptp(y) == 0:
        return None
    xs = (ks - ks[0]) / (ks[-1] - ks[0])
    ys = (y - y.min()) / np.ptp(y)
    # Distance to the line through the first and last points: |cross product| / chord length.
    dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
    dist = np.abs(dx * (ys - ys[0]) - dy * (xs - xs[0])) / math.hypot(dx, dy)
    return int(ks[int(np.argmax(dist))])
