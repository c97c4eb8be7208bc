"""Mini-batch k-means: scikit-learn's step and quality, memory-mapped input, determinism, bad inputs, binary run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from binaries import run
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.datasets import make_blobs

from research import checks, data
from research.cluster import kmeans, minibatch_kmeans

# One shape for most tests (n, d, k, batch size), so the step and the seeding compile once.
N, D, K, B = 3000, 6, 8, 128


def blobs(n=N, seed=0):
    x, y = make_blobs(n, D, centers=K, cluster_std=2.0, random_state=seed)
    return x.astype(np.float32), y


def fit(x, seed=0, **kwargs):
    return minibatch_kmeans.fit(jax.random.key(seed), x, K, batch_size=B, **kwargs)


def test_step_matches_sklearn_update():
    from sklearn.cluster._kmeans import _mini_batch_step  # private: the update rule itself

    rng = np.random.default_rng(0)
    x, _ = blobs()
    centers = x[rng.choice(N, K, replace=False)].astype(np.float64)
    counts = rng.integers(1, 50, K).astype(np.float64)
    batch = x[rng.integers(0, N, B)]
    state = minibatch_kmeans._init_state(jnp.asarray(centers, jnp.float32), jax.random.key(0))
    state = state._replace(counts=jnp.asarray(counts, jnp.float32), step=jnp.int32(3), ewa=jnp.float32(50.0))
    cfg = minibatch_kmeans._Config(K, B, 1, 1, 10, 0.0, "k-means++", 3 * B, 0.0, N)  # no reassignment
    ours, _ = minibatch_kmeans._step(state, batch, minibatch_kmeans._const(cfg, N, 1.0))

    ref_centers, ref_counts = centers.copy(), counts.copy()
    new = np.empty_like(ref_centers)
    inertia = _mini_batch_step(
        batch.astype(np.float64), np.ones(B), ref_centers, new, ref_counts, np.random.RandomState(0), False
    )
    np.testing.assert_allclose(np.asarray(ours.centers), new, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.counts), ref_counts)
    # scikit-learn's inertia is the batch's, against the centroids before the update; ours goes per sample into
    # the smoothed inertia (weight 2 B / (n + 1)) that early stopping watches, as scikit-learn's does.
    alpha = min(2.0 * B / (N + 1), 1.0)
    assert float(ours.ewa) == pytest.approx(50.0 * (1 - alpha) + inertia / B * alpha, rel=1e-5)


def test_quality_close_to_sklearn_and_full_kmeans():
    x, _ = blobs()
    full = KMeans(K, n_init=3, random_state=0).fit(x).inertia_
    ours = [float(fit(x, seed).inertia) for seed in range(3)]
    theirs = [MiniBatchKMeans(K, batch_size=B, n_init=3, random_state=s).fit(x).inertia_ for s in range(3)]
    assert np.median(ours) <= 1.02 * np.median(theirs)
    assert np.median(ours) <= 1.02 * full


def test_result_is_consistent():
    x, _ = blobs()
    res = fit(x)
    labels, c = np.asarray(res.labels), np.asarray(res.centroids)
    np.testing.assert_array_equal(labels, np.asarray(kmeans.predict(c, x)))
    np.testing.assert_allclose(float(res.inertia), ((x - c[labels]) ** 2).sum(), rtol=1e-4)
    assert bool(res.converged) and 0 < int(res.n_iter) < 100 * N // B  # stopped early, on no improvement
    assert np.asarray(res.inertia_per_init).shape == (3,)


def test_step_cap_and_no_early_stop():
    x, _ = blobs()
    res = fit(x, max_iter=1, max_no_improvement=None)
    assert int(res.n_iter) == N // B and not bool(res.converged)


def test_same_key_same_bits_memmap_equals_array_and_compiles_once(tmp_path):
    x, _ = blobs()
    a = fit(x, seed=5)
    steps = minibatch_kmeans._step._cache_size()
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    b = fit(mm, seed=5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert minibatch_kmeans._step._cache_size() == steps
    c = fit(x, seed=6)
    assert not np.array_equal(np.asarray(a.centroids), np.asarray(c.centroids))


def test_jit_equals_no_jit_step():
    x, _ = blobs()
    cfg = minibatch_kmeans._Config(K, B, 1, 1, 10, 0.0, "k-means++", 3 * B, 0.01, N)
    const = minibatch_kmeans._const(cfg, N, 1.0)

    def state():  # a fresh one each time: the jitted step donates it
        s = minibatch_kmeans._init_state(jnp.asarray(x[:K]), jax.random.key(0))
        # Centre 0 empty, the others heavy: whatever centre 0 gets from the batch, it is reassigned.
        return s._replace(counts=jnp.where(jnp.arange(K) == 0, 0.0, 1e6))

    jitted, _ = minibatch_kmeans._step(state(), x[:B], const)
    with jax.disable_jit():
        eager, _ = minibatch_kmeans._step_impl(state(), x[:B], const)
    assert int(jitted.n_reassigned) >= 1
    for u, v in zip(jitted, eager):
        if jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-5)


def test_far_away_centre_is_reassigned():
    x, _ = blobs()
    init = np.concatenate([x[: K - 1], np.full((1, D), 1e4, np.float32)])
    res = fit(x, init=init)
    assert np.all(np.bincount(np.asarray(res.labels), minlength=K) > 0)
    assert np.all(np.abs(np.asarray(res.centroids)) < 100)


def test_streamed_labels_inertia_matches_in_memory():
    x, _ = blobs()
    c = x[:K]
    labels, inertia = minibatch_kmeans.labels_inertia(c, x, chunk_size=700)  # 5 chunks, the last one padded
    np.testing.assert_array_equal(labels, np.asarray(kmeans.predict(c, x)))
    np.testing.assert_allclose(inertia, ((x - c[labels]) ** 2).sum(), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_clusters": 0}, "at least 1"),
        ({"n_clusters": 11}, "larger than the number of samples"),
        ({"n_clusters": 2, "batch_size": 0}, "batch_size"),
        ({"n_clusters": 5, "init_size": 3}, "init_size=3 is smaller than n_clusters=5"),
        ({"n_clusters": 2, "max_no_improvement": 0}, "max_no_improvement"),
        ({"n_clusters": 2, "reassignment_ratio": -1}, "reassignment_ratio"),
        ({"n_clusters": 2, "init": "kmeans++"}, "init must be one of"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        minibatch_kmeans.fit(jax.random.key(0), x, **kwargs)


def test_nan_in_a_memory_map_is_found(tmp_path):
    x = np.ones((1000, 3), np.float32)
    x[[10, 900], 1] = np.nan
    np.save(tmp_path / "bad.npy", x)
    mm = np.load(tmp_path / "bad.npy", mmap_mode="r")
    with pytest.raises(ValueError, match="x has 2 NaN or infinite values"):
        minibatch_kmeans.fit(jax.random.key(0), mm, 2)
    with pytest.raises(ValueError, match="2 NaN"):
        checks.as_streamed_matrix(mm, chunk_bytes=100)  # found across chunks


def test_mapped_pages_are_released(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((100, 4), np.float32))
    assert checks.release_mapped_pages(np.load(tmp_path / "x.npy", mmap_mode="r").reshape(50, 8))
    assert not checks.release_mapped_pages(np.load(tmp_path / "x.npy", mmap_mode="c"))  # would lose writes
    assert not checks.release_mapped_pages(np.ones(3))


def test_the_fit_reads_a_mapped_file_at_random_then_in_order(tmp_path, monkeypatch):
    # Random rows with the OS's default read-ahead pull in a window around each: on a 30.7 GB file, 3.7 GB of
    # reads per batch of 4096 rows against 4.2 MB with the advice (docs/design/multi_process.md).
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((300, 4)).astype(np.float32))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert checks.expect_access(mm, "random") and checks.expect_access(mm, "sequential")
    assert not checks.expect_access(np.ones(3), "random")
    told = []
    monkeypatch.setattr(checks, "expect_access", lambda x, pattern: told.append(pattern) or True)
    minibatch_kmeans.fit(jax.random.key(0), mm, 3, batch_size=64, max_iter=2)
    assert told == ["random", "sequential"]


def test_npy_loads_memory_mapped(tmp_path, caplog):
    x = np.random.default_rng(0).random((6, 4, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    ds = data.load(f"npy:{tmp_path / 'a.npy'}", mmap=True)
    assert isinstance(ds.x, np.memmap) and ds.x.shape == (6, 12) and ds.image_shape == (4, 3)
    np.testing.assert_array_equal(ds.x, x.reshape(6, 12))
    np.save(tmp_path / "b.npy", x.astype(np.float64))
    ds = data.load(f"npy:{tmp_path / 'b.npy'}", mmap=True)  # cannot stay mapped: a float32 copy, with a warning
    assert ds.x.dtype == np.float32 and "only a float32 C-order .npy" in caplog.text


def test_kmeans_binary_with_minibatch_on_npy(tmp_path):
    x, y = blobs()
    np.save(tmp_path / "blobs.npy", x)
    np.save(tmp_path / "blobs_labels.npy", y)
    wd = tmp_path / "run"
    args = [
        "experiments.kmeans",
        f"--dataset=npy:{tmp_path / 'blobs.npy'}",
        f"--minibatch_size={B}",
        "--n_init=3",
        f"--workdir={wd}",
    ]
    run(args, tmp_path)
    results = json.loads((wd / "results.json").read_text())
    assert results["minibatch_size"] == B and results["n_clusters"] == K and results["acc"] > 0.9
    assert np.load(wd / "labels.npy").shape == (N,)
    assert json.loads((wd / "config.json").read_text())["minibatch_size"] == B
