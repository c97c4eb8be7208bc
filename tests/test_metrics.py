"""Parity of research.metrics with scikit-learn and brute force on small data."""

import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

from research import metrics

# (n_classes, n_clusters): equal, more clusters, fewer clusters.
SHAPES = [(4, 4), (4, 6), (5, 3)]


def _labelings(seed, n_classes, n_clusters, n=200):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n) * 3 - 1  # non-contiguous, includes -1
    # Partly informative predictions so matching matters.
    y_pred = np.where(rng.random(n) < 0.6, (y_true + 1) // 3 % n_clusters, rng.integers(0, n_clusters, n))
    return y_true, y_pred * 7 + 5


def _brute_acc(y_true, y_pred):
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    if len(clusters) <= len(classes):
        maps = (dict(zip(clusters, p)) for p in itertools.permutations(classes, len(clusters)))
    else:
        maps = (dict(zip(p, classes)) for p in itertools.permutations(clusters, len(classes)))
    for m in maps:
        best = max(best, sum(m.get(k) == c for c, k in zip(y_true, y_pred)))
    return best / len(y_true)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_classes,n_clusters", SHAPES)
def test_label_metrics_match_sklearn_and_brute_force(seed, n_classes, n_clusters):
    y_true, y_pred = _labelings(seed, n_classes, n_clusters)
    assert metrics.nmi(y_true, y_pred) == pytest.approx(skm.normalized_mutual_info_score(y_true, y_pred), abs=1e-10)
    assert metrics.ari(y_true, y_pred) == pytest.approx(skm.adjusted_rand_score(y_true, y_pred), abs=1e-10)
    assert metrics.acc(y_true, y_pred) == pytest.approx(_brute_acc(y_true, y_pred), abs=1e-12)
    mapping = metrics.match_clusters(y_true, y_pred)
    assert len(mapping) == min(n_classes, n_clusters) == len(set(mapping.values()))
    conf = metrics.matched_confusion(y_true, y_pred)
    assert conf.shape == (n_classes, n_classes + 1) and conf.sum() == len(y_true)
    assert np.trace(conf) / len(y_true) == pytest.approx(metrics.acc(y_true, y_pred))


@pytest.mark.parametrize("n_classes,n_clusters", SHAPES)
def test_precision_recall_matches_sklearn_on_matched_predictions(n_classes, n_clusters):
    y_true, y_pred = _labelings(3, n_classes, n_clusters)
    mapping = metrics.match_clusters(y_true, y_pred)
    unmatched = y_true.min() - 1  # a label no class has, so it is never a true positive
    mapped = np.array([mapping.get(k, unmatched) for k in y_pred])
    want = skm.precision_recall_fscore_support(y_true, mapped, labels=np.unique(y_true), zero_division=0)
    for got, ref in zip(metrics.precision_recall(y_true, y_pred), want[:3]):
        np.testing.assert_allclose(got, ref, atol=1e-12)


def test_perfect_relabelled_clustering_and_purity_by_hand():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    relabel = np.array([9, 9, -1, -1, 4, 4, 4])
    assert metrics.evaluate(y_true, relabel) == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0, "purity": 1.0})
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2])  # majorities: 0 -> 2 of 3, 1 -> 2 of 3, 2 -> 1 of 1
    assert metrics.purity(y_true, y_pred) == pytest.approx(5 / 7)
    table, classes, _ = metrics.contingency(y_true, y_pred)
    np.testing.assert_array_equal(table, [[2, 0, 0], [1, 1, 0], [0, 2, 1]])
    np.testing.assert_array_equal(classes, [0, 1, 2])


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 5)) * 4
    labels = np.repeat([0, 1, 2], [20, 17, 13])
    x = (centers[labels] + rng.normal(size=(50, 5))).astype(np.float32)
    x = np.concatenate([x, rng.normal(size=(1, 5)).astype(np.float32) * 10])
    return x, np.append(labels * 5 - 3, 42)  # non-contiguous labels plus a singleton cluster


@pytest.mark.parametrize("block_size", [7, 1024])  # 7 does not divide 51
def test_silhouette_matches_sklearn(block_size):
    x, labels = _blobs()
    got = metrics.silhouette_samples(x, labels, block_size=block_size)
    np.testing.assert_allclose(got, skm.silhouette_samples(x, labels), atol=1e-4)
    assert got[-1] == 0.0
    assert metrics.silhouette(x, labels, block_size=block_size) == pytest.approx(
        skm.silhouette_score(x, labels), abs=1e-4
    )


def test_silhouette_sampling_is_deterministic_and_validates():
    x, labels = _blobs(1)
    a = metrics.silhouette(x, labels, sample_size=30, seed=3, block_size=8)
    assert a == metrics.silhouette(x, labels, sample_size=30, seed=3, block_size=8)
    assert a != metrics.silhouette(x, labels, sample_size=30, seed=4, block_size=8)
    with pytest.raises(ValueError, match="distinct labels"):
        metrics.silhouette(x, np.zeros(len(x), int))
    with pytest.raises(ValueError, match="distinct labels"):
        metrics.silhouette_samples(x, np.arange(len(x)))


def test_inertia_matches_numpy():
    rng = np.random.default_rng(0)
    x, c = rng.normal(size=(40, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    labels = rng.integers(0, 4, 40)
    want = np.sum((x.astype(np.float64) - c[labels]) ** 2)
    assert metrics.inertia(x, labels, c) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="index centroids"):
        metrics.inertia(x, labels + 1, c)


@pytest.mark.parametrize(
    "fn",
    [
        metrics.acc,
        metrics.nmi,
        metrics.ari,
        metrics.purity,
        metrics.evaluate,
        metrics.precision_recall,
        metrics.contingency,
    ],
)
def test_bad_labels_raise(fn):
    with pytest.raises(ValueError, match="5 labels.*4"):
        fn(np.zeros(5, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="1-D"):
        fn(np.zeros((2, 2), int), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="integer"):
        fn(np.array([0.5, 1.0]), np.array([0, 1]))
