"""k-NN and radius counts against brute force; DBSCAN against scikit-learn; bad inputs; compile-once."""

import jax
import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from research.cluster import dbscan
from research.embed import cells, neighbors, tiles


def points(n, d, seed=0):
    return (np.random.default_rng(seed).normal(size=(n, d)) * 3 + 10).astype(np.float32)


def brute_dist(q, x, metric):
    q, x = q.astype(np.float64), x.astype(np.float64)
    if metric == "cosine":
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        xn = np.linalg.norm(x, axis=1, keepdims=True)
        return 1.0 - (q / np.where(qn > 0, qn, 1)) @ (x / np.where(xn > 0, xn, 1)).T
    return np.sqrt(np.maximum(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))


# ---------------------------------------------------------------------------
# knn


@pytest.mark.parametrize("d", [3, 12])  # direct differences; the expansion
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("separate_queries", [False, True])
def test_knn_equals_brute_force(d, metric, separate_queries):
    x = points(53, d)
    if metric == "cosine":
        x[4] = 0.0  # a zero row: distance 1 to everything, no NaN
    q = points(19, d, seed=1) if separate_queries else None
    k = 6
    ours = neighbors.knn(x, k, queries=q, metric=metric, block_size=7)  # 53 and 19 are not multiples of 7
    dist = brute_dist(x if q is None else q, x, metric)
    if q is None:
        np.fill_diagonal(dist, np.inf)  # self excluded
    want_idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    idx, got = np.asarray(ours.indices), np.asarray(ours.distances)
    assert idx.shape == got.shape == (dist.shape[0], k) and idx.dtype == np.int32
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(got, np.take_along_axis(dist, want_idx, 1), atol=2e-5 if metric == "cosine" else 2e-4)
    if q is None:
        assert not np.any(idx == np.arange(len(x))[:, None])


def test_knn_ties_go_to_the_lower_index():
    x = np.array([[0.0], [1.0], [1.0], [1.0], [2.0]], np.float32)
    ours = neighbors.knn(x, 4, queries=np.array([[1.0]], np.float32), block_size=1)
    np.testing.assert_array_equal(np.asarray(ours.indices), [[1, 2, 3, 0]])
    np.testing.assert_array_equal(np.asarray(ours.distances), [[0, 0, 0, 1]])
    own = neighbors.knn(x, 3, block_size=2)  # a duplicate of the query is a neighbour, the query is not
    np.testing.assert_array_equal(np.asarray(own.indices)[1:4], [[2, 3, 0], [1, 3, 0], [1, 2, 0]])


def test_knn_one_block_equals_many():
    x = points(40, 2, seed=3)
    a, b = neighbors.knn(x, 5, block_size=1024), neighbors.knn(x, 5, block_size=3)
    np.testing.assert_array_equal(np.asarray(a.indices), np.asarray(b.indices))
    # XLA may fuse the two shapes differently: the last bit of a distance can differ.
    np.testing.assert_allclose(np.asarray(a.distances), np.asarray(b.distances), rtol=1e-6)


# ---------------------------------------------------------------------------
# radius_counts


@pytest.mark.parametrize("d", [2, 12])
def test_radius_counts_equal_brute_force(d):
    x = points(61, d, seed=2)
    x[10] = x[11]  # a duplicate
    dist = brute_dist(x, x, "euclidean")
    pairs = np.unique(dist[np.triu_indices(len(x), 1)])
    for q in (0.05, 0.3):
        i = int(q * len(pairs))
        eps = (pairs[i] + pairs[i + 1]) / 2  # between two pair distances: float32 rounding cannot flip a pair
        got = np.asarray(neighbors.radius_counts(x, eps, block_size=7))
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, (dist <= eps).sum(1))


def test_radius_counts_include_self_and_exactly_eps():
    x = np.stack(np.meshgrid(np.arange(5.0), np.arange(4.0)), -1).reshape(-1, 2).astype(np.float32)  # unit grid
    got = np.asarray(neighbors.radius_counts(x, 1.0, block_size=3)).reshape(4, 5)
    want = np.full((4, 5), 5)
    want[[0, -1], :] -= 1
    want[:, [0, -1]] -= 1
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(neighbors.radius_counts(x, 0.5)), np.ones(20))


# ---------------------------------------------------------------------------
# DBSCAN


def blobs_with_noise(seed, n_noise=0, d=2, std=0.5, n=360):
    """n points: 4 blobs and n_noise uniform ones (one n for all, so the fits share one compilation)."""
    x, _ = make_blobs(n - n_noise, d, centers=4, cluster_std=std, random_state=seed)
    noise = np.random.default_rng(seed).uniform(x.min(0) - 2, x.max(0) + 2, size=(n_noise, d))
    return np.concatenate([x, noise]).astype(np.float32)


def assert_matches_sklearn(x, eps, min_samples, block_size, method="auto"):
    ours = dbscan.fit(x, eps, min_samples, block_size=block_size, method=method)
    ref = DBSCAN(eps=eps, min_samples=min_samples).fit(x.astype(np.float64))
    labels, core = np.asarray(ours.labels), np.asarray(ours.core_mask)
    assert labels.dtype == np.int32 and core.dtype == bool
    np.testing.assert_array_equal(np.flatnonzero(core), ref.core_sample_indices_)
    assert int(ours.n_clusters) == ref.labels_.max() + 1
    np.testing.assert_array_equal(labels < 0, ref.labels_ < 0)  # the same noise
    # Core points: the same clusters, numbered alike (by smallest core index, scikit-learn's discovery order).
    assert adjusted_rand_score(ref.labels_[core], labels[core]) == 1.0
    np.testing.assert_array_equal(labels[core], ref.labels_[core])
    # Border points (the documented rule): the cluster of their nearest core point within eps, ties to the lowest
    # index. scikit-learn gives one to whichever neighbouring cluster reaches it first, so the two agree wherever
    # a border point's core neighbours all lie in one cluster; elsewhere scikit-learn's is one of those clusters.
    dist = brute_dist(x, x, "euclidean")
    near = (dist <= eps) & core[None, :]
    n_ambiguous = 0
    for i in np.flatnonzero(~core & (labels >= 0)):
        options = set(labels[near[i]])
        nearest = np.argmin(np.where(near[i], dist[i], np.inf))  # the first of equal distances
        assert labels[i] == labels[nearest], i
        assert ref.labels_[i] in options, i
        if len(options) == 1:
            assert labels[i] == ref.labels_[i], i
        n_ambiguous += len(options) > 1
    assert set(np.unique(labels)) <= set(range(-1, int(ours.n_clusters)))
    return ours, n_ambiguous


@pytest.mark.parametrize(
    "seed, n_noise, eps, min_samples, block_size, n_ambiguous",
    [
        # The first two hold a border point within eps of cores of two clusters: the nearest-core rule decides
        # (in the first, scikit-learn's label for it differs from ours).
        (0, 0, 0.3, 5, 64, 1),
        (1, 0, 0.25, 10, 64, 1),
        (2, 0, 0.5, 3, 7, 0),
        (3, 60, 0.4, 5, 64, 0),  # uniform noise points
        (3, 60, 0.6, 15, 1024, 0),  # one block
        (4, 30, 0.2, 1, 64, 0),  # min_samples 1: every point is core
    ],
)
@pytest.mark.parametrize("method", ["cells", "blocked"])
def test_dbscan_matches_sklearn(seed, n_noise, eps, min_samples, block_size, n_ambiguous, method):
    x = blobs_with_noise(seed, n_noise)
    ours, ambiguous = assert_matches_sklearn(x, eps, min_samples, block_size, method)
    assert ambiguous == n_ambiguous
    assert int(ours.n_clusters) >= 2
    if n_noise and min_samples > 1:
        assert np.any(np.asarray(ours.labels) < 0)


@pytest.mark.parametrize("method", ["cells", "blocked"])  # tiles: the tests below
def test_dbscan_matches_sklearn_in_higher_dimension(method):
    x = blobs_with_noise(5, n_noise=40, d=12, std=1.0)  # the expansion path of the distances
    assert_matches_sklearn(x, 3.5, 5, 64, method)


@pytest.mark.parametrize(
    "d, seed, n_noise, eps, min_samples",
    [(10, 8, 60, 2.0, 10), (10, 9, 0, 1.5, 1)],  # 5-D: the next test
)
def test_dbscan_tiles_match_sklearn(d, seed, n_noise, eps, min_samples):
    # n = 360 is not a multiple of a tile (16 rows) or a super tile (256): both end in padding.
    x = blobs_with_noise(seed, n_noise, d=d, std=0.6)
    ours, _ = assert_matches_sklearn(x, eps, min_samples, 64, "tiles")
    assert int(ours.n_clusters) >= 2 or min_samples == 1
    if n_noise:
        assert np.any(np.asarray(ours.labels) < 0)


@pytest.mark.parametrize("d", [5, 10])
def test_tiles_find_every_pair_within_eps_once(d):
    x = blobs_with_noise(d, n_noise=40, d=d, std=0.6)  # the shapes of the DBSCAN tests: no new compilation
    x[7] = x[8]  # a duplicate point
    eps = 1.5
    stage, capacity = tiles.search(x, eps, max_pairs=2**22)
    p = jax.jit(tiles.pairs, static_argnums=1)(stage.arrays, capacity)
    valid = np.asarray(p.valid_t)
    count = int(stage.count)
    assert valid.sum() == count and np.all(valid[:count]) and not np.any(valid[count:])
    order = np.asarray(p.order_n)
    assert sorted(order.tolist()) == list(range(len(x)))
    rows, cols = order[np.asarray(p.rows_t)[valid]], order[np.asarray(p.cols_t)[valid]]
    found = {(min(i, j), max(i, j)) for i, j in zip(rows.tolist(), cols.tolist(), strict=True)}
    assert len(found) == count and np.all(rows != cols)  # each unordered pair once, no point with itself
    sq = np.zeros((len(x), len(x)), np.float32)
    for f in range(d):  # float32, summed feature by feature as the tiles sum them
        sq += np.square(x[:, None, f] - x[None, :, f])
    want = {(i, j) for i, j in zip(*np.nonzero(sq <= np.float32(eps) ** 2), strict=True) if i < j}
    assert found == want and (7, 8) in found
    np.testing.assert_allclose(np.asarray(p.sq_t)[valid], sq[rows, cols], rtol=1e-5, atol=1e-6)
    # The boxes pruned: fewer distances computed than all pairs.
    assert tiles.TILE**2 * int(tiles.next_stage(tiles.prepare(x, eps), 1024).count) < len(x) ** 2 / 2


def test_dbscan_auto_takes_tiles_above_three_dimensions():
    x = blobs_with_noise(7, n_noise=40, d=5, std=0.6)
    assert dbscan.method_for(x, 1.2) == "tiles" and dbscan.method_for(x, 1.2, max_pairs=100) == "blocked"
    assert_matches_sklearn(x, 1.2, 5, 64, "auto")
    with pytest.raises(ValueError, match=r"more than max_pairs=100.*method='blocked'"):
        dbscan.fit(x, 1.2, 5, method="tiles", max_pairs=100)
    size = dbscan._fit_tiles._cache_size()
    dbscan.fit(x, 1.2, 8)  # a new min_samples: the same compilation
    assert dbscan._fit_tiles._cache_size() == size


@pytest.mark.parametrize("d", [1, 2, 3, 12])
def test_grid_candidates_hold_every_pair_within_eps_once(d):
    rng = np.random.default_rng(d)
    x = np.concatenate([rng.normal(size=(150, d)), rng.normal(size=(50, d)) * 0.05 + 3]).astype(np.float32)
    x[7] = x[8]  # a duplicate point
    eps = 0.4
    count = int(cells.candidate_count(x, eps))
    p = cells.candidate_pairs(x, eps, capacity=cells.capacity_for(count))
    valid = np.asarray(p.valid_t)
    assert valid.sum() == count and np.all(valid[:count]) and not np.any(valid[count:])
    order = np.asarray(p.order_n)
    rows, cols = order[np.asarray(p.rows_t)[valid]], order[np.asarray(p.cols_t)[valid]]
    assert np.all(np.diff(np.asarray(p.rows_t)[valid]) >= 0)  # grouped by row, for sorted segment reductions
    found = set(zip(rows.tolist(), cols.tolist(), strict=True))
    assert len(found) == count  # no pair twice
    within = brute_dist(x, x, "euclidean") <= eps * (1 - 1e-5)
    missing = [(i, j) for i, j in zip(*np.nonzero(within), strict=True) if (i, j) not in found]
    assert not missing
    sq = np.asarray(p.sq_t)[valid]
    np.testing.assert_allclose(sq, np.sum((x[rows] - x[cols]) ** 2, axis=1), atol=1e-4)
    assert count < 200 * 200  # the grid filtered something out


def test_dbscan_methods_agree_and_the_grid_refuses_too_many_pairs():
    x = blobs_with_noise(6, n_noise=40)
    a = dbscan.fit(x, 0.4, 5, method="cells")
    b = dbscan.fit(x, 0.4, 5, method="blocked")
    c = dbscan.fit(x, 0.4, 5, max_pairs=100)  # auto falls back to the blocked method
    t = dbscan.fit(x, 0.4, 5)  # auto: tiles
    for f in a._fields:
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)))
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(c, f)))
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(t, f)))
    with pytest.raises(ValueError, match=r"more than max_pairs=100.*method='blocked'"):
        dbscan.fit(x, 0.4, 5, method="cells", max_pairs=100)
    with pytest.raises(ValueError, match="method must be one of"):
        dbscan.fit(x, 0.4, 5, method="grid")
    assert dbscan.method_for(x, 0.4) == "tiles" and dbscan.method_for(x, 0.4, max_pairs=100) == "blocked"


def test_dbscan_border_point_between_clusters_goes_to_its_nearest_core():
    # Two dense runs of points; the border point 5.9 touches core 5.0 of the left run (0.9) and core 6.5 of the
    # right one (0.6), and is not core itself (3 neighbours with eps 1).
    left = np.arange(0.0, 5.01, 0.5)
    right = np.arange(6.5, 11.51, 0.5)
    x = np.concatenate([left, [5.9], right, [20.0]])[:, None].astype(np.float32)
    ours = dbscan.fit(x, 1.0, 4, block_size=4)
    labels = np.asarray(ours.labels)
    assert int(ours.n_clusters) == 2
    assert labels[len(left)] == 1 and not np.asarray(ours.core_mask)[len(left)]
    assert labels[-1] == -1
    np.testing.assert_array_equal(labels[: len(left)], 0)


def test_dbscan_does_not_recompile_for_new_eps_or_min_samples():
    x = blobs_with_noise(0)
    a = dbscan.fit(x, 0.3, 5, block_size=64, method="blocked")
    size = dbscan._fit._cache_size()
    b = dbscan.fit(x, 0.4, 8, block_size=64, method="blocked")
    assert dbscan._fit._cache_size() == size
    c = dbscan.fit(x, 0.3, 5, block_size=64, method="blocked")
    for f in a._fields:
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(c, f)))
    assert not np.array_equal(np.asarray(a.core_mask), np.asarray(b.core_mask))
    # The grid's arrays are sized by the candidate count, rounded up: a new min_samples, or an eps whose pairs
    # fit the same size, reuses the compilation.
    dbscan.fit(x, 0.3, 5, method="cells")
    size = dbscan._fit_cells._cache_size()
    same = cells.capacity_for(int(cells.candidate_count(x, 0.3))) == cells.capacity_for(
        int(cells.candidate_count(x, 0.31))
    )
    assert same
    dbscan.fit(x, 0.3, 8, method="cells")
    dbscan.fit(x, 0.31, 5, method="cells")
    assert dbscan._fit_cells._cache_size() == size


# ---------------------------------------------------------------------------
# Bad inputs


def test_bad_inputs_raise_clear_errors():
    x = points(10, 2)
    with pytest.raises(ValueError, match=r"k=10 .*candidate neighbours \(9.*query itself.*k <= 9"):
        neighbors.knn(x, 10)
    with pytest.raises(ValueError, match=r"k=11 .*\(10: the 10 rows of x\).*k <= 10"):
        neighbors.knn(x, 11, queries=x[:3])
    with pytest.raises(ValueError, match="k must be a whole number >= 1"):
        neighbors.knn(x, 0)
    with pytest.raises(ValueError, match="metric must be one of .*'manhattan'"):
        neighbors.knn(x, 3, metric="manhattan")
    with pytest.raises(ValueError, match="queries have 3 features but x has 2"):
        neighbors.knn(x, 3, queries=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="block_size must be a whole number >= 1"):
        neighbors.knn(x, 3, block_size=0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x has 1 NaN or infinite"):
        neighbors.knn(bad, 3)
    with pytest.raises(ValueError, match="queries has 1 NaN or infinite"):
        neighbors.knn(x, 3, queries=bad)
    with pytest.raises(ValueError, match="x has 1 NaN or infinite"):
        neighbors.radius_counts(bad, 1.0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        neighbors.radius_counts(x, 0.0)
    with pytest.raises(ValueError, match="x has 1 NaN or infinite"):
        dbscan.fit(bad, 0.5)
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="eps must be a finite number > 0"):
            dbscan.fit(x, eps)
    with pytest.raises(ValueError, match="min_samples must be a whole number >= 1"):
        dbscan.fit(x, 0.5, 0)
    with pytest.raises(ValueError, match="must be 2-D"):
        dbscan.fit(x[:, 0], 0.5)


# ---------------------------------------------------------------------------
# reranking and the projected (approximate) kNN


def test_rerank_of_a_superset_equals_exact_knn_and_projection_finds_most():
    x = points(300, 40)
    exact = neighbors.knn(x, 8)
    # Candidates: the 20 exact nearest, shuffled, with the row itself and a repeat mixed in.
    cand = np.asarray(neighbors.knn(x, 20).indices)
    cand = np.random.default_rng(0).permuted(cand, axis=1)
    cand = np.concatenate([cand, np.arange(300)[:, None], cand[:, :1]], axis=1)
    got = neighbors.rerank(x, cand, 8, block_size=64)
    np.testing.assert_array_equal(np.asarray(got.indices), np.asarray(exact.indices))
    np.testing.assert_allclose(np.asarray(got.distances), np.asarray(exact.distances), rtol=1e-5)
    # With all the features kept the projection is exact; with fewer it still finds most neighbours.
    import jax

    full = neighbors.projected_knn(jax.random.key(0), x, 8, dims=40)
    np.testing.assert_array_equal(np.asarray(full.indices), np.asarray(exact.indices))
    low = np.asarray(neighbors.projected_knn(jax.random.key(0), x, 8, dims=20, candidates=40).indices)
    recall = np.mean([len(set(a) & set(b)) / 8 for a, b in zip(low, np.asarray(exact.indices))])
    assert recall > 0.9, recall


def test_binned_knn_keeps_the_nearest_winners_of_the_column_bins():
    x = points(600, 12)
    k, bins = 5, 64
    got = neighbors.binned_knn(x, k, bins=bins, block_size=128)
    dist = brute_dist(x, x, "euclidean")
    np.fill_diagonal(dist, np.inf)
    # Reference: the nearest column of each bin (column j is in bin j mod bins), then the k nearest of those.
    winners = np.stack([np.arange(s, 600, bins)[np.argmin(dist[:, s::bins], axis=1)] for s in range(bins)], 1)
    ref = np.take_along_axis(winners, np.argsort(np.take_along_axis(dist, winners, 1), axis=1)[:, :k], 1)
    np.testing.assert_array_equal(np.asarray(got.indices), ref)
    np.testing.assert_allclose(np.asarray(got.distances), np.take_along_axis(dist, ref, 1), rtol=1e-4)
    # It is an approximation of the exact kNN that misses few neighbours; with one column a bin it is exact.
    exact = np.asarray(neighbors.knn(x, k).indices)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ref, exact)])
    assert 0.85 < recall < 1.0, recall
    np.testing.assert_array_equal(np.asarray(neighbors.binned_knn(x, k, bins=600).indices), exact)
    with pytest.raises(ValueError, match="k must be"):
        neighbors.binned_knn(x, bins + 1, bins=bins)


def test_rerank_rejects_bad_candidates():
    x = points(20, 4)
    with pytest.raises(ValueError, match="row numbers"):
        neighbors.rerank(x, np.full((20, 5), 20), 2)
    with pytest.raises(ValueError, match="more candidates"):
        neighbors.rerank(x, np.zeros((20, 3), np.int32), 3)
    with pytest.raises(ValueError, match="integer row numbers"):
        neighbors.rerank(x, np.zeros((19, 5), np.int32), 2)


# ---------------------------------------------------------------------------
# HDBSCAN


def noisy_blobs(seed, n=400, n_noise=40):
    x, y = make_blobs(n, centers=5, cluster_std=[0.5, 1, 1.5, 0.8, 2], random_state=seed)
    noise = np.random.default_rng(seed).uniform(-12, 12, (n_noise, 2))
    return np.vstack([x, noise]).astype(np.float32), np.concatenate([y, np.full(n_noise, -1)])


@pytest.mark.parametrize(("seed", "min_samples", "min_cluster_size"), [(0, 5, 5), (3, 10, 20)])
def test_hdbscan_matches_sklearn(seed, min_samples, min_cluster_size):
    from sklearn.cluster import HDBSCAN

    from research.cluster import hdbscan

    x, _ = noisy_blobs(seed)
    want = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True).fit_predict(x)
    got = hdbscan.fit(x, min_samples, min_cluster_size, n_neighbors=len(x) - 1)  # the complete graph
    assert got.n_clusters == want.max() + 1 == len(got.stability) == len(got.eps_birth)
    # Mutual reachability makes many equal weights (a point's core distance); merged in another order than
    # scikit-learn's, a few points move between a cluster and the noise. Nothing else differs.
    assert adjusted_rand_score(want, got.labels) > 0.95
    assert np.mean((want < 0) == (got.labels < 0)) > 0.98
    sparse = hdbscan.fit(x, min_samples, min_cluster_size, n_neighbors=20)  # the default graph's size
    assert sparse.n_clusters == got.n_clusters and adjusted_rand_score(got.labels, sparse.labels) > 0.97


def test_hdbscan_tree_is_the_minimum_spanning_tree():
    import jax
    from scipy.sparse.csgraph import minimum_spanning_tree

    from research.cluster import hdbscan

    x, _ = noisy_blobs(1)
    n, min_samples = len(x), 4
    nn = neighbors.knn(x, n - 1)
    core, _, _, w, in_tree = jax.device_get(hdbscan._spanning_forest(x, nn.indices, nn.distances, min_samples))
    d = brute_dist(x, x, "euclidean")
    want_core = np.sort(d, axis=1)[:, min_samples - 1]  # itself first
    np.testing.assert_allclose(core, want_core, rtol=1e-5)
    reach = np.maximum(d, np.maximum(want_core[:, None], want_core[None, :]))
    np.fill_diagonal(reach, 0)
    assert in_tree.sum() == n - 1
    np.testing.assert_allclose(w[in_tree].astype(np.float64).sum(), minimum_spanning_tree(reach).sum(), rtol=1e-5)


def test_hdbscan_bad_inputs_raise_clear_errors():
    from research.cluster import hdbscan

    x = points(20, 2)
    with pytest.raises(ValueError, match="min_cluster_size must be >= 2"):
        hdbscan.fit(x, 5, 1)
    with pytest.raises(ValueError, match="min_samples=30 is larger than the 20 points"):
        hdbscan.fit(x, 30, 5)
    with pytest.raises(ValueError, match="finite|NaN|nan"):
        hdbscan.fit(np.full((5, 2), np.nan, np.float32), 2, 2)
