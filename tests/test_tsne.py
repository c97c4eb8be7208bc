"""Neighbour embeddings: calibration of the kNN graph's weights, and embeddings that keep clusters apart."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph

from research.embed import neighbors, tsne


def blobs(n_per=60, k=3, d=10, seed=0):
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(k, d)) * 10
    return np.concatenate([c + rng.normal(size=(n_per, d)) for c in centroids]).astype(np.float32), np.repeat(
        np.arange(k), n_per
    )


@pytest.mark.parametrize("perplexity", [5.0, 30.0])
def test_calibrated_perplexity_matches_the_target(perplexity):
    x, _ = blobs()
    nn = neighbors.knn(x, int(3 * perplexity))
    p, beta = tsne.perplexity_conditionals(nn.distances, perplexity)
    p = np.asarray(p, np.float64)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    entropy = -np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-300)), 0.0), 1)
    np.testing.assert_allclose(np.exp(entropy), perplexity, atol=1e-3 * perplexity)
    assert np.all(np.asarray(beta) > 0)


def test_fuzzy_weights_sum_to_log2_k_and_the_graphs_are_symmetric():
    x, _ = blobs()
    nn = neighbors.knn(x, 14)
    w, _ = tsne.fuzzy_weights(nn.distances)
    np.testing.assert_allclose(np.asarray(w).sum(1), np.log2(15), rtol=1e-4)
    assert np.allclose(np.asarray(w)[:, 0], 1.0)  # the nearest neighbour has full membership
    for g, total in ((tsne.umap_graph(nn), None), (tsne.tsne_graph(nn, 5.0), 1.0)):
        dense = np.zeros((len(x), len(x)))
        dense[np.asarray(g.rows), np.asarray(g.cols)] = np.asarray(g.weights)
        np.testing.assert_allclose(dense, dense.T, atol=1e-7)
        assert np.all(np.diff(np.asarray(g.rows)) >= 0) and np.all(np.diag(dense) == 0)
        if total is not None:
            assert dense.sum() == pytest.approx(total, rel=1e-5)


def test_umap_edge_batches_sum_each_edge_at_both_ends():
    x = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32)
    g = tsne.umap_graph(neighbors.knn(x, 6))
    b = tsne._edge_batches(jax.random.key(0), g, substeps=3)
    att = jax.random.normal(jax.random.key(1), (*b.rows.shape, 2))  # any per-edge move, [S, G, 2]
    for s in range(3):
        assert np.all(np.diff(np.asarray(b.ends[s])) >= 0)  # sorted, as the segment sum is told
        got = jax.ops.segment_sum(att[s][b.edge[s]] * b.sign[s][:, None], b.ends[s], 120, indices_are_sorted=True)
        want = jax.ops.segment_sum(att[s], b.rows[s], 120) - jax.ops.segment_sum(att[s], b.cols[s], 120)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    # Every edge i < j of the graph is in exactly one sub-step.
    real = np.asarray(b.p) > 0
    pairs = set(zip(np.asarray(b.rows)[real].tolist(), np.asarray(b.cols)[real].tolist()))
    upper = np.asarray(g.rows) < np.asarray(g.cols)
    assert pairs == set(zip(np.asarray(g.rows)[upper].tolist(), np.asarray(g.cols)[upper].tolist()))
    assert int(real.sum()) == int(upper.sum())


def test_ab_for_min_dist_matches_umap_learn():
    # umap-learn's find_ab_params(spread=1, min_dist=0.1): a = 1.5769, b = 0.8951 (its default curve).
    a, b = tsne.find_ab(0.1)
    assert a == pytest.approx(1.5769, abs=1e-3) and b == pytest.approx(0.8951, abs=1e-3)
    d = np.linspace(0.0, 3.0, 50)
    fitted = 1.0 / (1.0 + a * d ** (2 * b))
    wanted = np.where(d < 0.1, 1.0, np.exp(-(d - 0.1)))
    assert np.max(np.abs(fitted - wanted)) < 0.1


def bridged_blobs(n_per=60, n_bridge=6, seed=0):
    """blobs() joined by two chains of points (label -1) from blob 0 to 1 and 1 to 2: a connected kNN graph."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(3, 10)) * 10
    parts = [c + rng.normal(size=(n_per, 10)) for c in centroids]
    t = np.linspace(0, 1, n_bridge + 2)[1:-1, None]
    chains = [centroids[0] + t * (centroids[1] - centroids[0]), centroids[1] + t * (centroids[2] - centroids[1])]
    y = np.concatenate([np.repeat(np.arange(3), n_per), np.full(2 * n_bridge, -1)])
    return np.concatenate(parts + chains).astype(np.float32), y


def assert_blobs_apart(emb, y):
    """Each point's 5 nearest neighbours in the embedding are from its own blob, and it is nearer its own blob's
    centre than any other's."""
    near = np.asarray(neighbors.knn(emb, 5).indices)
    assert np.all(y[near] == y[:, None])
    centroids = np.stack([emb[y == c].mean(0) for c in range(3)])
    assert np.array_equal(np.argmin(((emb[:, None] - centroids[None]) ** 2).sum(-1), 1), y)


# Every start is random noise, in which the blobs overlap (one step from it fails assert_blobs_apart): only the
# optimisation can take them apart. (A PCA start of blobs() is already separated.)
@pytest.mark.parametrize(
    "method,kw",
    [
        ("tsne", {"perplexity": 10.0, "n_iter": 400}),  # grid repulsion (2-D)
        ("tsne", {"perplexity": 10.0, "n_iter": 400, "repulsion": "exact"}),
        # The sampled repulsion is a noisy estimate: with 400 steps one point of 180 was still on its way home on
        # one CPU (3 Dec; its blob had taken it by step 600).
        ("tsne", {"perplexity": 10.0, "n_iter": 600, "repulsion": "sampled", "negative_samples": 32}),
        ("umap", {"n_neighbors": 10, "n_epochs": 100}),
    ],
)
def test_separated_blobs_come_apart_from_a_random_start(method, kw):
    x, y = blobs()
    emb = np.asarray(getattr(tsne, method)(jax.random.key(0), x, dim=2, init="random", **kw).embedding)
    assert emb.shape == (len(x), 2) and np.isfinite(emb).all()
    assert_blobs_apart(emb, y)


def graph_matrix(g, n):
    return scipy.sparse.csr_matrix(
        (np.asarray(g.weights, np.float64), (np.asarray(g.rows), np.asarray(g.cols))), (n, n)
    )


def test_umap_on_a_connected_graph_starts_from_its_eigenmap():
    x, y = bridged_blobs()
    res = tsne.umap(jax.random.key(0), x, dim=2, n_neighbors=10, n_epochs=100)
    w = graph_matrix(res.graph, len(x))
    assert scipy.sparse.csgraph.connected_components(w, directed=False)[0] == 1  # so the spectral start ran
    emb = np.asarray(res.embedding)
    assert np.isfinite(emb).all()
    assert_blobs_apart(emb[y >= 0], y[y >= 0])
    # The start: ARPACK's eigenvectors 2-3 of D^-1/2 W D^-1/2 span the same plane as a dense solver's.
    z = tsne.spectral_layout(res.graph, len(x), 2)
    deg = np.asarray(w.sum(1)).ravel()
    vals, vecs = np.linalg.eigh((w / np.sqrt(np.outer(deg, deg))).toarray())  # ascending
    assert vals[-1] == pytest.approx(1.0) and vals[-3] - vals[-4] > 0.1  # eigenvectors 2-3 are well defined
    np.testing.assert_allclose(np.linalg.svd(z.T @ vecs[:, -3:-1])[1], 1.0, atol=1e-4)  # cosines of the angles
    np.testing.assert_allclose(z.T @ z, np.eye(2), atol=1e-6)
    # blobs() alone gives three components: no eigenmap, the caller starts from PCA.
    xb, _ = blobs()
    assert tsne.spectral_layout(tsne.umap_graph(neighbors.knn(xb, 9)), len(xb), 2) is None


def test_padded_attraction_equals_the_edge_list_sum():
    # Rows of every degree: the dense part holds each row's first `width` edges, the rest go to the edge list.
    x, _ = blobs()
    g = tsne.tsne_graph(neighbors.knn(x, 20), 7.0)
    y = jnp.asarray(np.random.default_rng(1).normal(size=(len(x), 2)), jnp.float32)
    pg = tsne._padded(g, len(x), quantile=0.5)
    assert pg.rest.rows.shape[0] > 0
    rows, cols, w = (np.asarray(a, np.float64) for a in g)
    d = np.asarray(y, np.float64)[rows.astype(int)] - np.asarray(y, np.float64)[cols.astype(int)]
    expect = np.zeros((len(x), 2))
    np.add.at(expect, rows.astype(int), (w / (1 + (d**2).sum(1)))[:, None] * d)
    np.testing.assert_allclose(np.asarray(tsne._attraction(y, pg)), expect, rtol=1e-4, atol=1e-9)


def test_kl_divergence_ranks_a_tsne_picture_above_noise():
    x, _ = blobs()
    emb = tsne.tsne(jax.random.key(0), x, perplexity=10.0, n_iter=300).embedding
    good = tsne.kl_divergence(x, emb, perplexity=10.0)
    noise = tsne.kl_divergence(x, np.random.default_rng(0).normal(size=(len(x), 2)), perplexity=10.0)
    shuffled = tsne.kl_divergence(x, np.random.default_rng(0).permutation(np.asarray(emb)), perplexity=10.0)
    assert 0 <= good < 0.7 * noise and good < 0.7 * shuffled  # the same points, given to the wrong rows
    assert tsne.kl_divergence(x, emb, perplexity=10.0, n_samples=100) != good  # a subset of 100 rows


def test_objective_is_the_dense_kl_and_all_rows_use_every_point():
    x, _ = blobs()
    y = np.random.default_rng(1).normal(size=(len(x), 2)).astype(np.float32)
    g = tsne.tsne_graph(neighbors.knn(x, 30), 10.0)
    p = np.zeros((len(x), len(x)))
    p[np.asarray(g.rows), np.asarray(g.cols)] = np.asarray(g.weights, np.float64)
    q = 1.0 / (1.0 + ((y[:, None].astype(np.float64) - y[None]) ** 2).sum(-1))
    np.fill_diagonal(q, 0.0)
    q /= q.sum()
    on = p > 0
    expect = float(np.sum(p[on] * np.log(p[on] / q[on])))
    assert tsne.objective(y, g) == pytest.approx(expect, rel=1e-4)
    # Every row: the objective on exact neighbours.
    assert tsne.kl_divergence(x, y, perplexity=10.0, n_samples=None) == pytest.approx(expect, rel=1e-4)


@pytest.mark.parametrize("scale", [0.01, 3.0])
def test_grid_repulsion_matches_the_exact_sums(scale):
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(100, 2)) * 0.3 + 4]).astype(np.float32) * scale
    d = y[:, None].astype(np.float64) - y[None]
    q = 1.0 / (1.0 + (d**2).sum(-1))
    np.fill_diagonal(q, 0.0)
    z, rep = tsne._grid_repulsion(jnp.asarray(y), 256)
    assert float(z) == pytest.approx(q.sum(), rel=2e-3)
    exact = ((q**2)[..., None] * d).sum(1)
    assert np.linalg.norm(np.asarray(rep) - exact) < 1e-2 * np.linalg.norm(exact)


def test_same_key_same_bits_and_bad_settings():
    x, _ = blobs(n_per=30)
    a = tsne.umap(jax.random.key(3), x, n_neighbors=8, n_epochs=20).embedding
    b = tsne.umap(jax.random.key(3), x, n_neighbors=8, n_epochs=20).embedding
    assert np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="perplexity"):
        tsne.tsne(jax.random.key(0), x[:20], perplexity=30.0)
    with pytest.raises(ValueError, match="n_neighbors"):
        tsne.umap(jax.random.key(0), x, n_neighbors=1)
    with pytest.raises(ValueError, match="min_dist"):
        tsne.umap(jax.random.key(0), x, min_dist=-1.0)
    with pytest.raises(ValueError, match="init"):
        tsne.umap(jax.random.key(0), x, init="nope")
    with pytest.raises(ValueError, match="2-D only"):
        tsne.tsne(jax.random.key(0), x, dim=3, perplexity=5.0, repulsion="grid")
    with pytest.raises(ValueError, match="repulsion"):
        tsne.tsne(jax.random.key(0), x, perplexity=5.0, repulsion="fmm")
    with pytest.raises(ValueError, match="init='random'"):  # more dimensions than features: no PCA start
        tsne.tsne(jax.random.key(0), x[:, :2], dim=3, perplexity=5.0, repulsion="exact")
