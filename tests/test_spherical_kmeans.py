"""Spherical k-means: parity with a NumPy reference, objective, determinism, bad inputs, binary run."""

import json

import jax
import numpy as np
import pytest
from binaries import run
from sklearn.datasets import make_blobs

from research import checkpointing
from research.cluster import kmeans, spherical_kmeans


def directions(n=600, d=5, centers=4, std=3.0, seed=0):
    """Blobs around the origin-shifted centroids: clusters of directions with some overlap."""
    x, y = make_blobs(n, d, centers=centers, cluster_std=std, random_state=seed)
    return x.astype(np.float32), y


def reference(x, init, tol=1e-4, max_iter=300):
    """Spherical k-means in NumPy float64, one restart, the same rules as ours."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = init / np.linalg.norm(init, axis=1, keepdims=True)
    k, prev = len(c), None
    for it in range(1, max_iter + 1):
        sim = x @ c.T
        labels, best = sim.argmax(1), sim.max(1)
        worst = np.argsort(best, kind="stable")  # least similar first
        for j, e in enumerate(np.flatnonzero(np.bincount(labels, minlength=k) == 0)):
            labels[worst[j]] = e
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        norm = np.linalg.norm(sums, axis=1, keepdims=True)
        new = np.where(norm > 0, sums / np.maximum(norm, 1e-30), c)
        shift, c = ((new - c) ** 2).sum(), new
        if (prev is not None and np.array_equal(labels, prev)) or shift <= tol:
            break
        prev = labels
    sim = x @ c.T
    return c, sim.argmax(1), it, float((1 - sim.max(1)).sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_same_init_gives_reference_result(seed):
    x, _ = directions(seed=seed)
    init = np.asarray(kmeans.kmeans_plusplus(jax.random.key(seed), x, 4))
    ours = spherical_kmeans.fit(jax.random.key(0), x, 4, init=init)
    c, labels, n_iter, cost = reference(x.astype(np.float64), init.astype(np.float64))
    np.testing.assert_array_equal(np.asarray(ours.labels), labels)
    np.testing.assert_allclose(np.asarray(ours.centroids), c, atol=1e-5)
    np.testing.assert_allclose(float(ours.inertia), cost, rtol=1e-4)
    assert int(ours.n_iter) == n_iter and bool(ours.converged)


def test_empty_cluster_is_repaired_like_the_reference():
    x, _ = directions()
    x = np.abs(x) + 0.1  # all in the positive orthant
    init = np.array([x[0], x[150], x[299], -np.ones(5)], np.float32)  # the last one attracts no point
    ours = spherical_kmeans.fit(jax.random.key(0), x, 4, init=init)
    c, labels, _, _ = reference(x.astype(np.float64), init.astype(np.float64))
    assert np.all(np.bincount(np.asarray(ours.labels), minlength=4) > 0)
    np.testing.assert_array_equal(np.asarray(ours.labels), labels)
    np.testing.assert_allclose(np.asarray(ours.centroids), c, atol=1e-5)


def test_objective_unit_centroids_and_best_restart():
    x, _ = directions()
    res = spherical_kmeans.fit(jax.random.key(3), x, 4, n_init=2)
    c, labels = np.asarray(res.centroids), np.asarray(res.labels)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-6)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_array_equal(labels, np.argmax(xn @ c.T, axis=1))
    np.testing.assert_allclose(float(res.inertia), np.sum(1 - np.sum(xn * c[labels], axis=1)), rtol=1e-4)
    per = np.asarray(res.inertia_per_init)
    assert per.shape == (2,)
    np.testing.assert_allclose(float(res.inertia), per.min(), rtol=1e-4)


def test_only_directions_matter():
    x, _ = directions()
    scale = np.random.default_rng(0).uniform(0.01, 100.0, (len(x), 1)).astype(np.float32)
    a = spherical_kmeans.fit(jax.random.key(1), x, 4, n_init=2)
    b = spherical_kmeans.fit(jax.random.key(1), x * scale, 4, n_init=2)
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
    np.testing.assert_allclose(np.asarray(a.centroids), np.asarray(b.centroids), atol=1e-5)


def test_jit_equals_no_jit():
    x, _ = directions(n=120, d=3, centers=3)
    init = x[[0, 40, 80]]  # eager k-means++ is slow; the seeding is kmeans' own, tested there
    args, static = spherical_kmeans._prepare(jax.random.key(1), x, 3, 1, 4, 1e-4, init)
    jitted = spherical_kmeans._fit(*args, **static)
    with jax.disable_jit():
        eager = spherical_kmeans._fit(*args, **static)
    np.testing.assert_array_equal(np.asarray(jitted.labels), np.asarray(eager.labels))
    np.testing.assert_allclose(np.asarray(jitted.centroids), np.asarray(eager.centroids), atol=1e-5)
    assert int(jitted.n_iter) == int(eager.n_iter)


def test_same_key_same_bits_and_compiles_once():
    x, _ = directions()
    a = spherical_kmeans.fit(jax.random.key(7), x, 4, n_init=2)
    before = spherical_kmeans._fit._cache_size()
    b = spherical_kmeans.fit(jax.random.key(7), x, 4, n_init=2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    spherical_kmeans.fit(jax.random.key(8), x + 1, 4, n_init=2, tol=1e-2, max_iter=7)  # traced: no new trace
    assert spherical_kmeans._fit._cache_size() == before


def test_predict_and_fit_timed():
    x, _ = directions()
    t = spherical_kmeans.fit_timed(jax.random.key(0), x, 4, n_init=2)
    # The timed fit is `fit` with the same arguments (its keywords reach the jitted loop), to the bit.
    plain = spherical_kmeans.fit(jax.random.key(0), x, 4, n_init=2)
    assert np.asarray(t.out.inertia_per_init).shape == (2,)
    for u, v in zip(t.out, plain, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    np.testing.assert_array_equal(np.asarray(spherical_kmeans.predict(t.out.centroids, 3.0 * x)), t.out.labels)
    with pytest.raises(ValueError, match="features"):
        spherical_kmeans.predict(t.out.centroids, x[:, :3])
    with pytest.raises(ValueError, match="norm 0"):
        spherical_kmeans.predict(t.out.centroids, np.zeros((2, 5)))


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (None, {"n_clusters": 0}, "at least 1"),
        (None, {"n_clusters": 11}, "larger than the number of samples"),
        (None, {"n_clusters": 2, "n_init": 0}, "n_init"),
        (None, {"n_clusters": 2, "tol": -1.0}, "tol"),
        (None, {"n_clusters": 2, "init": "kmeans++"}, "init must be one of"),
        (None, {"n_clusters": 2, "init": np.zeros((2, 2))}, "zero vector"),
        (np.array([[0.0, 1.0], [np.nan, 2.0]]), {"n_clusters": 1}, "1 NaN or infinite"),
        (np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]), {"n_clusters": 1}, r"2 rows of norm 0 .*\[1, 3\]"),
    ],
)
def test_bad_inputs_raise_clear_errors(x, kwargs, match):
    x = np.random.default_rng(0).normal(size=(10, 2)) if x is None else x
    with pytest.raises(ValueError, match=match):
        spherical_kmeans.fit(jax.random.key(0), x, **kwargs)


def test_binary_on_digits(tmp_path):
    out = run(["experiments.spherical_kmeans", "--dataset=digits", "--n_init=2", "--seed=1"], tmp_path)
    wd = tmp_path / "checkpoints" / "spherical_kmeans" / "digits-seed1"
    results = json.loads((wd / "results.json").read_text())
    for key in ("acc", "nmi", "ari", "inertia", "mean_cosine", "n_iter", "converged", "fit_seconds"):
        assert key in results, key
    assert 0.5 < results["acc"] <= 1 and 0.5 < results["mean_cosine"] < 1
    assert json.loads((wd / "config.json").read_text())["n_init"] == 2
    assert np.load(wd / "labels.npy").shape == (1797,)
    assert (wd / "plots" / "clusters.png").stat().st_size > 10_000
    c = np.asarray(checkpointing.load_pytree(wd / "ckpt")["centroids"])
    assert c.shape == (10, 64)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    assert out.stdout.strip().splitlines()[-1].startswith("spherical_kmeans digits/all K=10: acc=")
