"""PCA: scikit-learn parity for each solver, whitening, signs, determinism, bad inputs."""

import jax
import numpy as np
import pytest
from sklearn.decomposition import PCA

from research.embed import pca


def data(n, d, seed=0, rank=None, noise=0.0):
    """Features with distinct, decaying variances (so the axes are well defined), offset from the origin."""
    rng = np.random.default_rng(seed)
    if rank is None:
        x = rng.normal(size=(n, d)) * np.linspace(3.0, 0.2, d)
    else:  # low rank plus a little noise: the randomized solver recovers it
        x = (rng.normal(size=(n, rank)) * np.linspace(5.0, 1.0, rank)) @ rng.normal(size=(rank, d))
        x += noise * rng.normal(size=(n, d))
    return (x + rng.normal(size=d) * 5).astype(np.float32)


def assert_matches(ours, ref, x, atol_axes=2e-4):
    np.testing.assert_allclose(np.asarray(ours.mean_d), ref.mean_, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.components_cd), ref.components_, atol=atol_axes)  # same signs
    np.testing.assert_allclose(np.asarray(ours.explained_variance_c), ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(ours.explained_variance_ratio_c), ref.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(ours.singular_values_c), ref.singular_values_, rtol=1e-4)
    np.testing.assert_allclose(float(ours.noise_variance), ref.noise_variance_, rtol=1e-3, atol=1e-6)
    z = np.asarray(pca.transform(ours, x))
    np.testing.assert_allclose(z, ref.transform(x), atol=2e-3 * np.abs(z).max())
    back = np.asarray(pca.inverse_transform(ours, z))
    np.testing.assert_allclose(back, ref.inverse_transform(ref.transform(x)), atol=2e-3 * np.abs(x).max())


@pytest.mark.parametrize(
    "n, d, c, solver",
    [(400, 12, 5, "covariance_eigh"), (60, 25, 8, "svd"), (30, 25, 25, "svd"), (400, 12, 12, "covariance_eigh")],
)
@pytest.mark.parametrize("whiten", [False, True])
def test_exact_matches_sklearn(n, d, c, solver, whiten):
    x = data(n, d)
    assert pca.choose_solver(n, d, c, "exact") == solver
    ours = pca.fit(jax.random.key(0), x, c, method="exact", whiten=whiten)
    ref = PCA(c, svd_solver="full", whiten=whiten).fit(x.astype(np.float64))
    assert_matches(ours, ref, x)


def test_randomized_recovers_a_low_rank_matrix():
    x = data(300, 120, rank=6, noise=1e-3)
    ours = pca.fit(jax.random.key(1), x, 6, method="randomized")
    ref = PCA(6, svd_solver="full").fit(x.astype(np.float64))
    assert_matches(ours, ref, x, atol_axes=1e-3)
    wide = pca.fit(jax.random.key(1), x.T.copy(), 6, method="randomized")  # n < d: the transposed sketch
    ref_wide = PCA(6, svd_solver="full").fit(x.T.astype(np.float64))
    assert_matches(wide, ref_wide, x.T.copy(), atol_axes=1e-3)


def test_auto_picks_like_sklearn():
    assert pca.choose_solver(70000, 784, 50) == "covariance_eigh"  # tall: n >= 10 d, d <= 1000
    assert pca.choose_solver(300, 100, 10) == "svd"  # small: max(n, d) <= 500
    assert pca.choose_solver(2000, 600, 20) == "randomized"
    assert pca.choose_solver(2000, 600, 500) == "svd"  # c >= 0.8 min(n, d)
    assert pca.choose_solver(70000, 784, 50, "randomized") == "randomized"


def test_whitened_scores_have_unit_variance_and_invert():
    x = data(400, 12)
    p = pca.fit(jax.random.key(0), x, 4, whiten=True)
    z = np.asarray(pca.transform(p, x))
    np.testing.assert_allclose(z.var(axis=0, ddof=1), 1.0, rtol=1e-4)
    plain = pca.fit(jax.random.key(0), x, 4)
    np.testing.assert_allclose(
        np.asarray(pca.inverse_transform(p, z)),
        np.asarray(pca.inverse_transform(plain, pca.transform(plain, x))),
        atol=1e-3,
    )


def test_full_rank_reconstructs_the_data_and_signs_are_deterministic():
    x = data(30, 25)
    p = pca.fit(jax.random.key(0), x, 25)
    np.testing.assert_allclose(np.asarray(pca.inverse_transform(p, pca.transform(p, x))), x, atol=1e-3)
    assert float(p.noise_variance) == 0.0
    comps = np.asarray(p.components_cd)
    big = comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)]
    assert np.all(big > 0)  # svd_flip's convention


def test_same_key_same_bits_and_jit_equals_no_jit():
    x = data(300, 120, rank=6, noise=0.1)  # the shape of the randomized test: compiled once
    a = pca.fit(jax.random.key(3), x, 6, method="randomized")
    b = pca.fit(jax.random.key(3), x, 6, method="randomized")
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    xs, static = pca._prepare(x[:40, :10], 5, "exact", 10, 4)
    jitted = pca._fit(jax.random.key(0), xs, whiten=False, **static)
    with jax.disable_jit():
        eager = pca._fit(jax.random.key(0), xs, whiten=False, **static)
    np.testing.assert_allclose(np.asarray(jitted.components_cd), np.asarray(eager.components_cd), atol=1e-5)


def test_constant_data_gives_zeros_not_nan():
    x = np.ones((20, 4), np.float32)
    p = pca.fit(jax.random.key(0), x, 2, whiten=True)
    z = np.asarray(pca.transform(p, x))
    assert np.all(np.isfinite(z)) and np.all(z == 0)
    assert np.all(np.asarray(p.explained_variance_ratio_c) == 0)


@pytest.mark.parametrize(
    "x, c, kwargs, match",
    [
        (np.ones((10, 3)), 0, {}, "between 1 and"),
        (np.ones((10, 3)), 4, {}, r"min\(n_samples, n_features\)=3"),
        (np.ones((2, 5)), 3, {}, r"min\(n_samples, n_features\)=2"),
        (np.ones((10, 3)), 1.5, {}, "whole number"),
        (np.ones((1, 3)), 1, {}, "at least 2 samples"),
        (np.array([[1.0, np.nan], [0.0, 1.0], [2.0, 2.0]]), 1, {}, "NaN or infinite"),
        (np.ones((10, 3)), 1, {"method": "arpack"}, "method must be one of"),
        (np.ones((10, 3)), 1, {"n_power_iter": -1}, "n_power_iter"),
    ],
)
def test_bad_inputs_raise_clear_errors(x, c, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pca.fit(jax.random.key(0), x, c, **kwargs)


def test_transform_checks_the_feature_count():
    p = pca.fit(jax.random.key(0), data(50, 6), 2)
    with pytest.raises(ValueError, match="6"):
        pca.transform(p, np.ones((3, 5)))
    with pytest.raises(ValueError, match="2 components"):
        pca.inverse_transform(p, np.ones((3, 3)))
