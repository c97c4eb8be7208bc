"""Self-organizing map: MiniSom's update rule, batch SOM, U-matrix, topographic error, bad inputs, the binary."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from binaries import run

from research import checkpointing
from research.cluster import som
from research.data import load

GRID = (4, 5)


def data(n=60, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def minisom_online(c0_hwd, x, order, sigma, lr, decay="asymptotic"):
    """MiniSom's train_random loop (update() with its gaussian and decay), in float64 NumPy."""
    h, w, _ = c0_hwd.shape
    c = c0_hwd.astype(np.float64).copy()
    total = len(order)
    for t, i in enumerate(order):
        xs = x[i].astype(np.float64)
        b = np.unravel_index(np.linalg.norm(xs - c, axis=-1).argmin(), (h, w))
        f = 1 / (1 + t / (total / 2)) if decay == "asymptotic" else 0.01 ** (t / total)
        s = sigma * f
        g = np.outer(
            np.exp(-((np.arange(h) - b[0]) ** 2) / (2 * s * s)), np.exp(-((np.arange(w) - b[1]) ** 2) / (2 * s * s))
        )
        c += (lr * f * g)[..., None] * (xs - c)
    return c


_online = jax.jit(som._online, static_argnames=("grid", "decay", "window"))


@pytest.mark.parametrize("decay, window", [("asymptotic", 1), ("asymptotic", 7), ("exponential", 64)])
def test_online_update_is_minisoms(decay, window):
    x = data()
    rng = np.random.default_rng(1)
    c0 = rng.normal(size=(*GRID, 5)).astype(np.float32)
    order = rng.integers(0, len(x), 45)  # 45 steps: windows of 7 end with a partial one
    ours = _online(
        jnp.asarray(c0.reshape(-1, 5)),
        x,
        jnp.asarray(order, jnp.int32),
        1.5,
        0.5,
        grid=GRID,
        decay=decay,
        window=window,
    )
    ref = minisom_online(c0, x, order, 1.5, 0.5, decay)
    np.testing.assert_allclose(np.asarray(ours).reshape(ref.shape), ref, atol=2e-5)


def test_fit_runs_minisoms_loop_on_its_sample_order():
    x = data()
    c0 = data(20, 5, seed=2).reshape(*GRID, 5)
    key = jax.random.key(3)
    res = som.fit(key, x, GRID, n_steps=90, sigma=2.0, learning_rate=0.3, init=c0)
    order = np.asarray(som._sample_order(jax.random.split(key)[1], len(x), 90))
    ref = minisom_online(c0, x, order, 2.0, 0.3)
    np.testing.assert_allclose(np.asarray(res.codebook_hwd), ref, atol=2e-5)
    # The result's winners and errors are those of the final codebook.
    np.testing.assert_array_equal(np.asarray(res.winners_n), np.asarray(som.winner(res.codebook_hwd, x)))
    np.testing.assert_allclose(float(res.quantization_error), float(som.quantization_error(ref, x)), rtol=1e-5)
    assert float(res.topographic_error) == float(som.topographic_error(res.codebook_hwd, x))


def test_sample_order_uses_every_sample_evenly():
    order = np.asarray(som._sample_order(jax.random.key(0), 10, 25))
    counts = np.bincount(order, minlength=10)
    assert sorted(counts.tolist()) == [2] * 5 + [3] * 5
    few = np.asarray(som._sample_order(jax.random.key(0), 100, 30))
    assert len(set(few.tolist())) == 30 and few.max() >= 30  # distinct, and not just the first rows


def test_pca_init_spans_the_first_two_principal_axes():
    x = data(200, 6) * np.array([5, 3, 1, 0.5, 0.2, 0.1], np.float32)
    c = np.asarray(som.initial_codebook(jax.random.key(0), x, GRID))
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))  # MiniSom's pca_weights_init
    pc1, pc2 = vecs[:, np.argsort(vals)[::-1][:2]].T
    mean = x.mean(0)
    np.testing.assert_allclose(c.mean(axis=(0, 1)), mean, atol=1e-5)
    d1 = (c[-1, 0] - c[0, 0]) / 2  # the grid runs from -1 to 1 along each axis
    d2 = (c[0, -1] - c[0, 0]) / 2
    np.testing.assert_allclose(np.abs(d1 @ pc1), 1, atol=1e-5)
    np.testing.assert_allclose(np.abs(d2 @ pc2), 1, atol=1e-5)
    np.testing.assert_allclose(c[0, 0], mean - d1 - d2, atol=1e-5)


def test_batch_epoch_is_the_neighbourhood_weighted_mean_and_lowers_qe():
    x = data(300, 4)
    c = data(20, 4, seed=5) * 0.1 + 10.0  # far from the data, so every epoch has work to do
    epoch = jax.jit(som._batch, static_argnames=("grid", "decay", "n_epochs", "block"))
    # One epoch by hand: every unit the mean of all samples weighted by the neighbourhood of their winner.
    winners = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
    rc = np.stack(np.unravel_index(np.arange(20), GRID), 1)
    g = np.exp(-((rc[:, None] - rc[None]) ** 2).sum(-1) / (2 * 1.5**2))  # [unit, unit]
    h_nk = g[winners]
    ref = (h_nk.T @ x) / h_nk.sum(0)[:, None]
    one = epoch(jnp.asarray(c), x, 1.5, grid=GRID, decay="asymptotic", n_epochs=1, block=64)
    np.testing.assert_allclose(np.asarray(one), ref, atol=1e-5)
    qes = [float(som.quantization_error(c.reshape(*GRID, 4), x))]
    for sigma in (2.0, 1.5, 1.0, 0.7, 0.5):
        c = epoch(jnp.asarray(c), x, sigma, grid=GRID, decay="asymptotic", n_epochs=1, block=64)
        qes.append(float(som.quantization_error(np.asarray(c).reshape(*GRID, 4), x)))
    assert all(b < a for a, b in itertools.pairwise(qes)), qes


def test_umatrix_shape_normalisation_and_values():
    # A 2 x 3 grid of scalars: distances are absolute differences.
    c = np.array([[0.0, 1.0, 3.0], [0.0, 2.0, 6.0]], np.float32)[..., None]
    neighbours = {
        (0, 0): [1, 0, 2],
        (0, 1): [1, 2, 1, 1, 5],
        (0, 2): [2, 1, 3],
        (1, 0): [0, 1, 2],
        (1, 1): [2, 1, 1, 2, 4],
        (1, 2): [5, 3, 4],
    }
    for scaling, agg in (("mean", np.mean), ("sum", np.sum)):
        um = np.zeros((2, 3))
        for (i, j), dists in neighbours.items():
            um[i, j] = agg(dists)
        got = np.asarray(som.distance_map(c, scaling=scaling))
        assert got.shape == (2, 3)
        np.testing.assert_allclose(got, um / um.max(), rtol=1e-6)
        assert got.max() == 1 and got.min() >= 0
    assert not np.any(np.asarray(som.distance_map(np.ones((3, 4, 2)))))  # all units equal: zeros, no NaN


def test_topographic_and_quantization_error_by_hand():
    c = np.array([[[0.0], [10.0], [1.0]]], np.float32)  # a 1 x 3 map
    x = np.array([[0.4], [9.0], [5.3]], np.float32)
    # 0.4: best unit 0, second unit 2, two cells apart: an error. 9: units 1, 2. 5.3: units 2, 1.
    for block in (1, 2, 4096):
        assert float(som.topographic_error(c, x, block_size=block)) == pytest.approx(1 / 3)
        assert float(som.quantization_error(c, x, block_size=block)) == pytest.approx((0.4 + 1.0 + 4.3) / 3)
        np.testing.assert_array_equal(np.asarray(som.winner(c, x, block_size=block)), [0, 1, 2])
    np.testing.assert_array_equal(np.asarray(som.winner(c, x, coords=True)), [[0, 0], [0, 1], [0, 2]])
    # Diagonal neighbours are adjacent (MiniSom's rectangular rule): on a 2 x 2 map nothing is an error.
    assert float(som.topographic_error(data(4, 3).reshape(2, 2, 3), data(50, 3))) == 0
    assert np.isnan(float(som.topographic_error(np.zeros((1, 1, 3)), data(5, 3))))


def test_jit_equals_no_jit():
    x, c0 = jnp.asarray(data(30, 4)), jnp.asarray(data(9, 4, seed=4))
    order = jnp.asarray([3, 17, 3, 29, 0, 11], jnp.int32)  # two windows of 4, the second partial

    def train_and_evaluate(mode):  # blocks of 16: the last one slides back over the first
        if mode == "online":
            c = som._online(c0, x, order, 1.0, 0.5, grid=(3, 3), decay="asymptotic", window=4)
        else:
            c = som._batch(c0, x, 1.0, grid=(3, 3), decay="exponential", n_epochs=2, block=16)
        return c, som._evaluate(c, x, (3, 3), 16)

    for mode in ("online", "batch"):
        jitted = jax.jit(train_and_evaluate, static_argnums=0)(mode)
        with jax.disable_jit():
            eager = train_and_evaluate(mode)
        np.testing.assert_allclose(np.asarray(jitted[0]), np.asarray(eager[0]), atol=1e-5)
        np.testing.assert_array_equal(np.asarray(jitted[1][0]), np.asarray(eager[1][0]))
        np.testing.assert_allclose(np.asarray(jitted[1][1:]), np.asarray(eager[1][1:]), rtol=1e-5)


def test_same_key_same_bits():
    x = data(30, 4)
    a = som.fit(jax.random.key(7), x, (3, 3), n_steps=50, init="sample")
    b = som.fit(jax.random.key(7), x, (3, 3), n_steps=50, init="sample")
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    c = som.fit(jax.random.key(8), x, (3, 3), n_steps=50, init="sample")
    assert not np.array_equal(np.asarray(a.codebook_hwd), np.asarray(c.codebook_hwd))


def test_hyperparameters_do_not_recompile():
    x = data(40, 3)
    som.fit(jax.random.key(0), x, (2, 3), n_steps=30, sigma=1.0, learning_rate=0.5)
    size = som._fit._cache_size()
    som.fit(jax.random.key(1), x, (2, 3), n_steps=30, sigma=2.0, learning_rate=0.1)
    assert som._fit._cache_size() == size


def test_cluster_units_groups_the_map():
    # Two far groups of samples; the units that win them fall in two groups.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (30, 2))]).astype(np.float32)
    c = np.zeros((2, 3, 2), np.float32)
    c[:, 2] = 5.0
    out = som.cluster_units(jax.random.key(0), c, 2, x)
    unit = np.asarray(out.unit_labels_hw)
    assert unit.shape == (2, 3) and len(set(unit[:, :2].ravel())) == 1 and unit[0, 0] != unit[0, 2]
    labels = np.asarray(out.labels_n)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1 and labels[0] != labels[-1]
    assert som.cluster_units(jax.random.key(0), c, 2).labels_n is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": np.array([[0.0, np.nan]] * 5)}, "NaN"),
        ({"x": np.zeros(5)}, "2-D"),
        ({"grid": (0, 3)}, "grid rows"),
        ({"grid": (3, 1.5)}, "grid cols"),
        ({"grid": 16}, "pair"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"mode": "minibatch"}, "mode"),
        ({"decay": "linear"}, "decay"),
        ({"init": "kmeans"}, "init"),
        ({"init": np.zeros((3, 3, 2))}, r"\[4, 5, 3\]"),
        ({"init": np.full((4, 5, 3), np.nan)}, "NaN"),
        ({"n_steps": 0}, "n_steps"),
        ({"n_epochs": 0}, "n_epochs"),
        ({"window": 0}, "window"),
        ({"block_size": 0}, "block_size"),
        ({"x": np.zeros((5, 1)), "init": "pca"}, "at least 2 features"),
    ],
)
def test_bad_inputs_fit(kwargs, match):
    args = {"x": data(10, 3), "grid": GRID} | kwargs
    with pytest.raises(ValueError, match=match):
        som.fit(jax.random.key(0), args.pop("x"), args.pop("grid"), **args)


def test_bad_inputs_codebook_functions():
    c, x = np.zeros((2, 3, 4)), data(10, 4)
    with pytest.raises(ValueError, match="3-D"):
        som.winner(c.reshape(6, 4), x)
    with pytest.raises(ValueError, match="features"):
        som.quantization_error(c, data(10, 3))
    with pytest.raises(ValueError, match="NaN"):
        som.topographic_error(np.full((2, 3, 4), np.nan), x)
    with pytest.raises(ValueError, match="scaling"):
        som.distance_map(c, scaling="max")
    with pytest.raises(ValueError, match="number of SOM units"):
        som.cluster_units(jax.random.key(0), c, 7, x)


def test_som_binary_batch_mode_on_digits(tmp_path):
    # The batch mode (the online mode, the default, is what every in-process test above runs).
    wd = tmp_path / "run"
    args = ["--dataset=digits", "--grid_rows=5", "--grid_cols=6", "--mode=batch", "--n_epochs=3", f"--workdir={wd}"]
    out = run(["experiments.som", *args, "--seed=2"], tmp_path)
    results = json.loads((wd / "results.json").read_text())
    for key in ("quantization_error", "topographic_error", "acc", "nmi", "ari", "fit_seconds", "compile_seconds"):
        assert key in results, key
    assert results["grid"] == [5, 6] and results["n_clusters"] == 10 and results["quantization_error"] > 0
    assert results["mode"] == "batch" and results["n_epochs"] == 3 and results["n_steps"] is None
    assert 0 <= results["topographic_error"] <= 1 and results["acc"] > 0.3
    config = json.loads((wd / "config.json").read_text())
    assert config["grid_rows"] == 5 and config["mode"] == "batch" and config["n_epochs"] == 3
    labels, winners = np.load(wd / "labels.npy"), np.load(wd / "winners.npy")
    assert labels.shape == winners.shape == (1797,) and winners.max() < 30
    assert (wd / "plots" / "umatrix.png").stat().st_size > 10_000
    assert (wd / "plots" / "clusters.png").exists()
    saved = checkpointing.load_pytree(wd / "ckpt")
    assert np.asarray(saved["codebook"]).shape == (5, 6, 64) and np.asarray(saved["unit_labels"]).shape == (5, 6)
    # The map is the library's batch SOM for the run's key: three epochs from the PCA plane.
    key_fit, _ = jax.random.split(jax.random.key(2))
    ref = som.fit(key_fit, load("digits").x, (5, 6), mode="batch", n_epochs=3)
    np.testing.assert_allclose(np.asarray(saved["codebook"]), np.asarray(ref.codebook_hwd), atol=1e-5)
    np.testing.assert_array_equal(winners, np.asarray(ref.winners_n))
    assert out.stdout.strip().splitlines()[-1].startswith("som digits/all 5x6 batch: QE=")
