"""The density step of experiments.tsne_dbscan (research.cluster.density): HDBSCAN by default, the notes' DBSCAN
settings by flags."""

import numpy as np
from sklearn.metrics import adjusted_rand_score

from research.cluster import dbscan, density


def blobs_with_noise():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], np.float32)
    x = np.vstack([c + rng.normal(size=(150, 2)) for c in centres] + [rng.uniform(-10, 30, (60, 2))])
    return x.astype(np.float32), np.repeat(np.arange(4), 150)


def test_the_automatic_choice_finds_the_blobs_and_leaves_the_noise():
    x, y = blobs_with_noise()
    labels, params, chosen, _ = density.cluster(x, eps=None, min_samples=10)
    assert chosen["method"] == "hdbscan" and chosen["min_cluster_size"] == 7  # 1% of 660 points
    assert len(set(labels[labels >= 0])) == 4 and adjusted_rand_score(y, labels[:600]) > 0.97
    assert np.mean(labels[600:] < 0) > 0.4  # uniform noise: what falls far from the blobs stays noise
    assert params["core_distances"].shape == (660,) and 0 < chosen["eps"] < 20


def test_the_notes_settings_reach_dbscan_unchanged():
    assert density.parse_eps("auto") is None and density.parse_eps("2.4") == 2.4
    assert density.parse_eps("0") == 0 and density.parse_eps("-1") is False
    x, _ = blobs_with_noise()
    x *= 0.5  # denser, so that 100 points fall within 2.4
    labels, params, chosen, title = density.cluster(x, eps=2.4, min_samples=100)
    want = dbscan.fit(x, 2.4, 100, block_size=256)
    assert chosen == {"method": "dbscan", "eps": 2.4} and "eps 2.4, min_samples 100" in title
    np.testing.assert_array_equal(labels, np.asarray(want.labels))
    np.testing.assert_array_equal(params["core_mask"], np.asarray(want.core_mask))
    assert len(set(labels[labels >= 0])) == 4
