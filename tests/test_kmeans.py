"""k-means: scikit-learn parity, pruning, determinism, bad inputs, compile-once, sharding."""

import textwrap

import binaries
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from research.cluster import kmeans


def blobs(n=600, d=5, centers=4, std=2.5, seed=0):
    x, y = make_blobs(n, d, centers=centers, cluster_std=std, random_state=seed)
    return x.astype(np.float32), y


def sklearn_fit(x, init):
    return KMeans(len(init), init=init, n_init=1, algorithm="lloyd", tol=1e-4, max_iter=300).fit(x)


@pytest.mark.parametrize("prune", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_init_gives_sklearn_result(prune, seed):
    # Overlapping blobs, so Lloyd takes several iterations and pruning has work to skip.
    x, _ = blobs(std=4.0, seed=seed)
    init = np.asarray(kmeans.kmeans_plusplus(jax.random.key(seed), x, 4))
    ours = kmeans.fit(jax.random.key(0), x, 4, init=init, prune=prune)
    ref = sklearn_fit(x, init)
    np.testing.assert_array_equal(np.asarray(ours.labels), ref.labels_)
    np.testing.assert_allclose(np.asarray(ours.centroids), ref.cluster_centers_, atol=1e-5)
    np.testing.assert_allclose(float(ours.inertia), ref.inertia_, rtol=1e-5)
    assert int(ours.n_iter) == ref.n_iter_
    assert bool(ours.converged)


def test_pruned_equals_full_on_both_paths():
    # Many iterations from a random init; a small budget forces full passes, a large one sparse steps.
    x, _ = blobs(n=2000, d=8, centers=12, std=3.0, seed=3)
    key = jax.random.key(5)
    plain = kmeans.fit(key, x, 12, n_init=4, init="random", prune=False)
    for budget in (0.02, 0.3, 1.0):
        pruned = kmeans.fit(key, x, 12, n_init=4, init="random", prune=True, prune_budget=budget)
        np.testing.assert_array_equal(np.asarray(pruned.labels), np.asarray(plain.labels))
        np.testing.assert_allclose(np.asarray(pruned.centroids), np.asarray(plain.centroids), atol=1e-5)
        np.testing.assert_array_equal(np.asarray(pruned.n_iter), np.asarray(plain.n_iter))


def test_true_indices_is_nonzero_with_a_size():
    rng = np.random.default_rng(0)
    for mask in (rng.random(300) < 0.1, rng.random(300) < 0.9, np.zeros(300, bool), np.ones(300, bool)):
        for size in (1, 7, 40, 300):
            (want,) = jnp.nonzero(mask, size=size, fill_value=300)
            np.testing.assert_array_equal(np.asarray(kmeans._true_indices(jnp.asarray(mask), size)), np.asarray(want))


def test_sparse_steps_are_taken():
    x, _ = blobs(n=2000, d=8, centers=12, std=3.0, seed=3)
    args, static = kmeans._prepare(jax.random.key(5), x, 12, 4, 300, 1e-4, "random", True, 0.5)
    res, n_full = kmeans._fit(*args, **static)
    assert int(n_full) < int(res.n_iter)  # some iterations skipped the full pass


def test_jit_equals_no_jit():
    x, _ = blobs(n=200, d=3, centers=3, std=3.0)
    # Eager mode pays per op executed: a few iterations of the loop body say as much as fifty.
    args, static = kmeans._prepare(jax.random.key(1), x, 3, 2, 4, 1e-4, "k-means++", True, 0.5)
    # One gather size: eager mode compiles every op at every shape it meets. The other sizes are checked
    # jitted, against the plain loop, by test_pruned_equals_full_on_both_paths.
    static["budget"] = static["budget"][:1]
    jitted, _ = kmeans._fit(*args, **static)
    with jax.disable_jit():
        eager, _ = kmeans._fit(*args, **static)
    np.testing.assert_array_equal(np.asarray(jitted.labels), np.asarray(eager.labels))
    np.testing.assert_allclose(np.asarray(jitted.centroids), np.asarray(eager.centroids), atol=1e-5)
    assert int(jitted.n_iter) == int(eager.n_iter)


def test_same_key_same_bits_other_key_other_init():
    x, _ = blobs(n=500, d=4, centers=6, std=4.0)
    a = kmeans.fit(jax.random.key(7), x, 6, n_init=3)
    b = kmeans.fit(jax.random.key(7), x, 6, n_init=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    c1 = kmeans.kmeans_plusplus(jax.random.key(7), x, 6)
    c2 = kmeans.kmeans_plusplus(jax.random.key(8), x, 6)
    assert not np.array_equal(np.asarray(c1), np.asarray(c2))


def test_best_restart_is_kept():
    x, _ = blobs(n=500, d=4, centers=8, std=3.0)
    res = kmeans.fit(jax.random.key(0), x, 8, n_init=6, init="random")
    per = np.asarray(res.inertia_per_init)
    assert per.shape == (6,)
    np.testing.assert_allclose(float(res.inertia), per.min(), rtol=1e-5)
    np.testing.assert_allclose(float(res.inertia), ((x - np.asarray(res.centroids)[res.labels]) ** 2).sum(), rtol=1e-5)


def test_plusplus_picks_data_points_one_per_blob():
    x, y = make_blobs(300, 2, centers=[[0, 0], [50, 0], [0, 50]], cluster_std=0.5, random_state=0)
    c = np.asarray(kmeans.kmeans_plusplus(jax.random.key(0), x.astype(np.float32), 3))
    rows = [np.flatnonzero(np.all(np.isclose(x.astype(np.float32), ci), axis=1)) for ci in c]
    assert all(len(r) == 1 for r in rows)
    assert sorted(y[[r[0] for r in rows]]) == [0, 1, 2]


@pytest.mark.parametrize("prune", [False, True])
def test_empty_cluster_is_repaired(prune):
    x, _ = blobs(n=300, d=2, centers=3, std=1.0)
    init = np.array([x[0], x[150], x[299], [1e4, 1e4]], np.float32)  # the last centroid attracts no point
    res = kmeans.fit(jax.random.key(0), x, 4, init=init, prune=prune)
    counts = np.bincount(np.asarray(res.labels), minlength=4)
    assert np.all(counts > 0) and np.all(np.isfinite(np.asarray(res.centroids)))
    ref = sklearn_fit(x, init)
    np.testing.assert_array_equal(np.asarray(res.labels), ref.labels_)
    np.testing.assert_allclose(np.asarray(res.centroids), ref.cluster_centers_, atol=1e-4)


def test_degenerate_data_never_gives_nan():
    same = np.ones((20, 3), np.float32)
    res = kmeans.fit(jax.random.key(0), same, 3, n_init=2)
    assert np.all(np.isfinite(np.asarray(res.centroids))) and float(res.inertia) == 0.0
    one = kmeans.fit(jax.random.key(0), np.arange(12, dtype=np.float32).reshape(6, 2), 1)
    np.testing.assert_allclose(np.asarray(one.centroids)[0], [5.0, 6.0])
    exact = kmeans.fit(jax.random.key(0), np.eye(4, dtype=np.float32), 4)
    assert float(exact.inertia) == 0.0 and len(set(np.asarray(exact.labels).tolist())) == 4


def test_predict_and_transform_match_sklearn():
    x, _ = blobs()
    init = np.asarray(kmeans.kmeans_plusplus(jax.random.key(0), x, 4))
    ref = sklearn_fit(x, init)
    xq = x[:50] + 0.3
    np.testing.assert_array_equal(np.asarray(kmeans.predict(ref.cluster_centers_, xq)), ref.predict(xq))
    np.testing.assert_allclose(np.asarray(kmeans.transform(ref.cluster_centers_, xq)), ref.transform(xq), atol=1e-4)
    with pytest.raises(ValueError, match="features"):
        kmeans.predict(ref.cluster_centers_, x[:, :3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_clusters": 0}, "at least 1"),
        ({"n_clusters": 11}, "larger than the number of samples"),
        ({"n_clusters": 2.5}, "whole number"),
        ({"n_clusters": 2, "n_init": 0}, "n_init"),
        ({"n_clusters": 2, "tol": float("nan")}, "tol"),
        ({"n_clusters": 2, "init": "kmeans++"}, "init must be one of"),
        ({"n_clusters": 2, "init": np.zeros((3, 2))}, r"shape \[2, 2\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    x = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match=match):
        kmeans.fit(jax.random.key(0), x, **kwargs)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, np.inf]]), "2 NaN or infinite"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros(5), "2-D"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_bad_data_raise_clear_errors(x, match):
    with pytest.raises(ValueError, match=match):
        kmeans.fit(jax.random.key(0), x, 1)


def test_loop_compiles_once_per_shape():
    rng = np.random.default_rng(0)
    kmeans.fit(jax.random.key(0), rng.normal(size=(97, 3)), 5, n_init=2)
    before = kmeans._fit._cache_size()
    for seed in range(3):  # new data, key, tolerance and iteration cap: no new trace
        kmeans.fit(jax.random.key(seed), rng.normal(size=(97, 3)), 5, n_init=2, tol=10.0**-seed, max_iter=20 + seed)
    assert kmeans._fit._cache_size() == before


def test_sharded_data_gives_the_same_result():
    # Two host devices need a fresh process: the device count is fixed when JAX starts.
    code = textwrap.dedent(
        """
        import jax, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from sklearn.datasets import make_blobs
        from research.cluster import kmeans
        assert jax.device_count() == 2
        x = make_blobs(400, 6, centers=5, cluster_std=3.0, random_state=1)[0].astype(np.float32)
        # Pruning's gathers and scatters under both mesh types; the plain loop (reductions only) under
        # the explicit one, which asks how every contraction is laid out.
        runs = [(jax.sharding.AxisType.Auto, True), (jax.sharding.AxisType.Explicit, False),
                (jax.sharding.AxisType.Explicit, True)]
        for axis_type, prune in runs:
            mesh = jax.make_mesh((2,), ("data",), axis_types=(axis_type,))
            xs = jax.device_put(x, NamedSharding(mesh, P("data", None)))
            a = kmeans.fit(jax.random.key(3), x, 5, n_init=3, prune=prune)
            with jax.set_mesh(mesh):
                b = kmeans.fit(jax.random.key(3), xs, 5, n_init=3, prune=prune)
            np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
            np.testing.assert_allclose(np.asarray(a.centroids), np.asarray(b.centroids), atol=1e-5)
        print("ok")
        """
    )
    binaries.run_on_host_devices(code)


def test_jax_input_is_accepted():
    x, _ = blobs(n=100)
    a = kmeans.fit(jax.random.key(0), x, 3, n_init=2)
    b = kmeans.fit(jax.random.key(0), jnp.asarray(x), 3, n_init=2)
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
