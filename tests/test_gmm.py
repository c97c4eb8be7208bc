"""Gaussian mixtures: scikit-learn parity per covariance type, restarts, determinism, degenerate and bad
inputs, compile-once; end-to-end runs of experiments.gmm, experiments.pca_kmeans and experiments.choose_k."""

import json
import subprocess
import warnings

import binaries
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from research import checkpointing
from research.cluster import gmm
from research.metrics import elbow_k

K = 3


def blobs(n=300, d=3, seed=0):
    x, y = make_blobs(n, d, centers=K, cluster_std=[1.0, 2.0, 0.6], random_state=seed)
    return (x + 20.0).astype(np.float32), y  # off the origin: the fit must not lose precision to the offset


def starting_point(x, cov_type, seed=1):
    """Rough initial parameters (weights, means, precisions) that EM has to improve on for a few iterations."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    means = x[rng.choice(len(x), K, replace=False)].astype(np.float64)
    var = x.var(axis=0).astype(np.float64)
    prec = {
        "full": np.stack([np.diag(1 / var)] * K),
        "tied": np.diag(1 / var),
        "diag": np.tile(1 / var, (K, 1)),
        "spherical": np.full(K, 1 / var.mean()),
    }[cov_type]
    return np.full(K, 1 / K), means, prec, d


def sklearn_fit(x, cov_type, init, **kwargs):
    w, mu, prec, _ = init
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(
            K, covariance_type=cov_type, weights_init=w, means_init=mu, precisions_init=prec, **kwargs
        ).fit(x.astype(np.float64))


@pytest.mark.parametrize("cov_type", gmm.COVARIANCE_TYPES)
def test_same_init_gives_sklearn_fit_in_float32(cov_type):
    x, _ = blobs()
    init = starting_point(x, cov_type)
    ref = sklearn_fit(x, cov_type, init)
    w, mu, prec, _ = init
    res = gmm.fit(
        jax.random.key(0), x, K, covariance_type=cov_type, weights_init=w, means_init=mu, precisions_init=prec
    )
    p = res.params
    assert res.n_iter > 2 and int(res.n_iter) == ref.n_iter_ and bool(res.converged) == ref.converged_
    cov, pc = np.asarray(p.covariances), np.asarray(p.precisions_cholesky)
    if cov_type == "tied":  # ours [1, d, d], scikit-learn's [d, d]
        cov, pc = cov[0], pc[0]
    np.testing.assert_allclose(np.asarray(p.weights_k), ref.weights_, atol=1e-4)
    np.testing.assert_allclose(np.asarray(p.means_kd), ref.means_, atol=1e-4)
    np.testing.assert_allclose(cov, ref.covariances_, atol=1e-4)
    np.testing.assert_allclose(pc, ref.precisions_cholesky_, atol=1e-4 * np.abs(ref.precisions_cholesky_).max())
    np.testing.assert_allclose(float(res.lower_bound), ref.lower_bound_, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(res.labels), ref.predict(x.astype(np.float64)))
    # The fitted model's functions agree with scikit-learn's on new points. scikit-learn gets float64: on
    # float32 input it computes diag/spherical densities by an expansion that loses ~1e-4 to cancellation.
    xq = x[::7] + 0.5
    xq64, x64 = xq.astype(np.float64), x.astype(np.float64)
    np.testing.assert_allclose(np.asarray(gmm.score_samples(p, xq)), ref.score_samples(xq64), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(gmm.predict_proba(p, xq)), ref.predict_proba(xq64), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(gmm.predict(p, xq)), ref.predict(xq64))
    np.testing.assert_allclose(float(gmm.score(p, x)), ref.score(x64), rtol=1e-5)
    np.testing.assert_allclose(gmm.bic(p, x), ref.bic(x64), rtol=1e-5)
    np.testing.assert_allclose(gmm.aic(p, x), ref.aic(x64), rtol=1e-5)
    assert gmm.covariance_type_of(p) == cov_type


def test_fixed_iteration_count_and_kmeans_init_find_sklearns_optimum():
    x, y = blobs()
    init = starting_point(x, "full")
    w, mu, prec, _ = init
    ref = sklearn_fit(x, "full", init, max_iter=4, tol=0)
    res = gmm.fit(jax.random.key(0), x, K, max_iter=4, tol=0, weights_init=w, means_init=mu, precisions_init=prec)
    assert int(res.n_iter) == 4 and not bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.params.means_kd), ref.means_, atol=1e-4)
    np.testing.assert_allclose(float(res.lower_bound), ref.lower_bound_, rtol=1e-5)
    # Blocks of 64 rows (the last one padded) give the one-block result.
    blocked = gmm.fit(
        jax.random.key(0), x, K, max_iter=4, tol=0, weights_init=w, means_init=mu, precisions_init=prec, block_size=64
    )
    np.testing.assert_allclose(np.asarray(blocked.params.covariances), np.asarray(res.params.covariances), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(blocked.labels), np.asarray(res.labels))
    # From k-means (ours) and from scikit-learn's default init, both reach the same optimum on separated blobs.
    ours = gmm.fit(jax.random.key(0), x, K, init_params="kmeans")
    theirs = GaussianMixture(K, random_state=0).fit(x.astype(np.float64))
    np.testing.assert_allclose(float(ours.lower_bound), theirs.lower_bound_, rtol=1e-4)
    assert len(set(zip(np.asarray(ours.labels).tolist(), y.tolist()))) == K  # the blobs, up to relabelling


def test_labels_init_is_sklearns_m_step():
    x, y = blobs()
    labels = y.copy()
    labels[::10] = (labels[::10] + 1) % K  # a rough clustering
    r = np.eye(K)[labels]
    nk = r.sum(axis=0)
    means = r.T @ x.astype(np.float64) / nk[:, None]
    covs = np.stack([(r[:, j, None] * (x - means[j])).T @ (x - means[j]) / nk[j] + 1e-6 * np.eye(3) for j in range(K)])
    init = (nk / len(x), means, np.linalg.inv(covs), 3)
    ref = sklearn_fit(x, "full", init)
    res = gmm.fit(jax.random.key(0), x, K, labels_init=labels)
    assert int(res.n_iter) == ref.n_iter_
    np.testing.assert_allclose(np.asarray(res.params.covariances), ref.covariances_, atol=1e-4)
    np.testing.assert_allclose(float(res.lower_bound), ref.lower_bound_, rtol=1e-5)


def test_restarts_keep_the_best_and_same_key_same_bits():
    x, _ = blobs(seed=1)
    a = gmm.fit(jax.random.key(4), x, K, n_init=3, init_params="random", covariance_type="diag")
    b = gmm.fit(jax.random.key(4), x, K, n_init=3, init_params="random", covariance_type="diag")
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    per = np.asarray(a.lower_bound_per_init)
    assert per.shape == (3,) and float(a.lower_bound) == per.max()
    np.testing.assert_allclose(float(gmm.score(a.params, x)), per.max(), atol=1e-2)  # one M step later: close
    np.testing.assert_allclose(np.asarray(a.params.weights_k).sum(), 1.0, atol=1e-5)


def test_jit_equals_no_jit():
    # The math of one EM iteration, without the loops: eager mode compiles every operation on its own,
    # which makes a whole eager fit slow.
    x, _ = blobs(n=24, d=2)
    x = jnp.asarray(x - x.mean(axis=0))
    cov = np.stack([np.cov(np.asarray(x).T), 2 * np.eye(2)])
    u = np.linalg.inv(np.linalg.cholesky(cov)).transpose(0, 2, 1)  # upper U with U U^T = cov^-1
    w, mu, pc = (jnp.asarray(v, jnp.float32)[None] for v in (np.full(2, 0.5), x[:2], u))

    def iteration(x, w, mu, pc):
        lp = gmm._weighted_log_prob(x, w, mu, pc, "full")
        resp = jnp.transpose(jax.nn.softmax(lp, axis=2), (1, 2, 0))
        nk = jnp.sum(resp, axis=-1)
        means = jnp.einsum("rkb,bd->rkd", resp, x) / nk[..., None]
        covs = gmm._covariances(gmm._scatter(x, resp, means, "full"), nk, 1e-6, "full", 2)
        return lp, means, covs, gmm._precision_cholesky(covs, "full")

    jitted = jax.jit(iteration)(x, w, mu, pc)
    with jax.disable_jit():
        eager = iteration(x, w, mu, pc)
    for a, b in zip(jitted, eager):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_precision_factors_invert_the_covariances():
    # U U^T = cov^-1 with U upper triangular, from forward substitution (no LAPACK trsm); a covariance
    # that is not positive definite gives non-finite factors, which `_valid` reports.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3, 6, 6))
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(6)
    u = np.asarray(gmm._precision_cholesky(jnp.asarray(cov, jnp.float32), "full"), np.float64)
    assert np.allclose(np.triu(u), u)
    np.testing.assert_allclose(u @ np.swapaxes(u, -1, -2), np.linalg.inv(cov), rtol=2e-3, atol=2e-3)
    bad = cov.copy()
    bad[1, 2] = -np.eye(6)
    valid = np.asarray(gmm._valid(gmm._precision_cholesky(jnp.asarray(bad, jnp.float32), "full")))
    assert valid.tolist() == [True, False]


def test_loop_compiles_once_per_shape():
    x, _ = blobs()
    w, mu, prec, _ = starting_point(x, "full")
    kwargs = {"weights_init": w, "means_init": mu, "precisions_init": prec}
    gmm.fit(jax.random.key(0), x, K, **kwargs)
    before = gmm._fit._cache_size()
    for i in range(3):  # new data, tolerance, iteration cap and regularisation: no new trace
        gmm.fit(jax.random.key(i), x * (1 + i), K, tol=10.0**-i, max_iter=5 + i, reg_covar=1e-6 * (i + 1), **kwargs)
    assert gmm._fit._cache_size() == before


def test_fit_holds_no_copy_of_the_data():
    # The passes cut blocks out of x in place and centre them as they read them; XLA's own count of the
    # compiled fit's scratch memory shows no centred or padded copy (it was 2.35 times x before).
    x = np.random.default_rng(0).normal(size=(20_000, 64)).astype(np.float32)
    args, static = gmm._prepare(jax.random.key(0), x, 10, "diag", 1, 100, 1e-3, 1e-6, "kmeans",
                                np.arange(20_000) % 10, None, None, None, None)  # fmt: skip
    scratch = gmm._fit.lower(*args, **static).compile().memory_analysis().temp_size_in_bytes
    assert scratch < 0.6 * x.nbytes, scratch / x.nbytes


def test_degenerate_data_never_gives_nan():
    same = np.full((30, 3), 7.0, np.float32)
    r = gmm.fit(jax.random.key(0), same, 2, init_params="random")
    assert all(np.all(np.isfinite(np.asarray(v))) for v in r.params)
    np.testing.assert_allclose(
        np.asarray(r.params.covariances), np.broadcast_to(1e-6 * np.eye(3), (2, 3, 3)), atol=1e-7
    )
    x, _ = blobs()
    x[:, 1] = 3.0  # a constant feature: its variance is exactly reg_covar
    r = gmm.fit(jax.random.key(0), x, K)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in r.params) and np.isfinite(float(r.lower_bound))
    np.testing.assert_allclose(np.asarray(r.params.covariances)[:, 1, 1], 1e-6, rtol=1e-2)


def test_collapse_in_every_restart_is_a_clear_error():
    # Points on a line at a scale where reg_covar is below float32 resolution: the covariance is singular.
    t = np.random.default_rng(0).normal(size=(50, 1)) * 1e4
    line = np.hstack([t, 2 * t]).astype(np.float32)
    with pytest.raises(ValueError, match="reg_covar"):
        gmm.fit(jax.random.key(0), line, 2, init_params="random")
    rescaled = gmm.fit(jax.random.key(0), line / 1e4, 2, init_params="random", reg_covar=1e-3)
    assert np.isfinite(float(rescaled.lower_bound))


def mixture(cov_type):
    """Hand-made GMMParams (K=3, d=3) whose covariances differ by component and, for full and tied, are far from
    diagonal, so that a transposed Cholesky factor, a square where a square root belongs, or one component's
    covariance used for another would each give other sample covariances."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=(K, 3, 3))
    full = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(3)  # correlations up to ~0.9
    cov = {
        "full": full,
        "tied": full[:1],
        "diag": np.array([[4.0, 0.25, 1.0], [0.36, 2.0, 0.5], [1.5, 0.8, 3.0]]),
        "spherical": np.array([0.36, 2.0, 1.0]),
    }[cov_type]
    means = np.array([[0.0, 0.0, 0.0], [8.0, -3.0, 2.0], [-5.0, 6.0, 1.0]])
    prec_chol = gmm._precision_cholesky(jnp.asarray(cov, jnp.float32), cov_type)
    return gmm.GMMParams(np.array([0.5, 0.3, 0.2]), means, cov, prec_chol)


def dense_covariances(p, cov_type):
    """[K, d, d] whatever the type."""
    cov = np.asarray(p.covariances, np.float64)
    d = p.means_kd.shape[1]
    return {
        "full": lambda: cov,
        "tied": lambda: np.repeat(cov, K, axis=0),
        "diag": lambda: np.stack([np.diag(c) for c in cov]),
        "spherical": lambda: cov[:, None, None] * np.eye(d),
    }[cov_type]()


@pytest.mark.parametrize("cov_type", gmm.COVARIANCE_TYPES)
def test_sample_follows_the_mixture(cov_type):
    p = mixture(cov_type)
    n = 60_000
    xs, labels = gmm.sample(jax.random.key(1), p, n)
    xs, labels = np.asarray(xs, np.float64), np.asarray(labels)
    assert xs.shape == (n, 3) and labels.shape == (n,)
    w = np.asarray(p.weights_k)
    np.testing.assert_allclose(np.bincount(labels, minlength=K) / n, w, atol=5 * np.sqrt(w * (1 - w) / n).max())
    covs = dense_covariances(p, cov_type)
    for j in range(K):
        m = int(np.sum(labels == j))
        var = np.diag(covs[j])
        # Five standard errors of each estimate: the mean's sqrt(var / m), a covariance entry's
        # sqrt((S_ii S_jj + S_ij^2) / m).
        np.testing.assert_allclose(xs[labels == j].mean(0), np.asarray(p.means_kd)[j], atol=5 * np.sqrt(var.max() / m))
        tol = 5 * np.sqrt((np.outer(var, var) + covs[j] ** 2) / m)
        assert np.all(np.abs(np.cov(xs[labels == j].T) - covs[j]) <= tol), (j, np.cov(xs[labels == j].T), covs[j])
        if cov_type in ("full", "tied"):  # a transposed factor would be caught: L^T L is outside the tolerance
            chol = np.linalg.cholesky(covs[j])
            assert np.any(np.abs(chol.T @ chol - covs[j]) > 3 * tol)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_components": 0}, "at least 1"),
        ({"n_components": 11}, "larger than the number of samples"),
        ({"reg_covar": 0.0}, "reg_covar must be a finite number > 0"),
        ({"reg_covar": -1.0}, "reg_covar"),
        ({"tol": float("nan")}, "tol"),
        ({"n_init": 0}, "n_init"),
        ({"covariance_type": "banded"}, "covariance_type must be one of"),
        ({"init_params": "k-means++"}, "init_params must be one of"),
        ({"means_init": np.zeros((3, 2))}, r"means_init must have shape \[2, 2\]"),
        ({"weights_init": [0.2, 0.2]}, "sum to 1"),
        ({"precisions_init": np.stack([np.eye(2), -np.eye(2)])}, "positive definite"),
        ({"precisions_init": np.eye(2), "covariance_type": "diag"}, "positive"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    x = np.random.default_rng(0).normal(size=(10, 2))
    kwargs = {"n_components": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        gmm.fit(jax.random.key(0), x, **kwargs)


def test_bad_data_and_params_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN or infinite"):
        gmm.fit(jax.random.key(0), np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), 1)
    x, _ = blobs()
    p = gmm.fit(jax.random.key(0), x, K, covariance_type="spherical", max_iter=2).params
    with pytest.raises(ValueError, match="3 features but the mixture has 3|2 features"):
        gmm.predict(p, x[:, :2])
    with pytest.raises(ValueError, match="covariances and precisions_cholesky"):
        gmm.score_samples(p._replace(covariances=np.ones((K, 3, 2))), x)


# ---------------------------------------------------------------------------
# End-to-end runs of the binaries


_RUNS = {
    # Random initial responsibilities spare the k-means compilation (the k-means init is tested above).
    "gmm": ["experiments.gmm", "--dataset=digits", "--pca_components=2", "--init_params=random", "--seed=1"],
    "pca_kmeans": ["experiments.pca_kmeans", "--dataset=digits", "--pca_components=10", "--n_init=1"],
    "choose_k": [
        "experiments.choose_k",
        "--dataset=digits",
        "--pca_components=5",
        "--k_min=2",
        "--k_max=4",
        "--n_init=1",
        "--silhouette_sample_size=500",
        "--covariance_type=diag",
    ],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts the three binaries at once (their time is mostly single-threaded compilation, so they
    overlap well on two cores); each test waits for its own. Returns {name: (workdir, Popen)}."""
    root = tmp_path_factory.mktemp("binaries")
    procs = {}
    for name, args in _RUNS.items():
        wd = root / name
        proc = binaries.start([*args, f"--workdir={wd}"], root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs[name] = (wd, proc)
    yield procs
    for _, p in procs.values():
        p.kill()
        p.wait()


def finished(runs, name):
    wd, proc = runs[name]
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr.decode()[-4000:]
    return wd, stdout.decode().strip().splitlines()[-1]


@pytest.mark.xdist_group("gmm_binaries")  # one worker starts the three binaries
def test_gmm_binary_on_digits_draws_the_density(runs):
    wd, summary = finished(runs, "gmm")
    results = json.loads((wd / "results.json").read_text())
    for key in ("acc", "nmi", "ari", "lower_bound", "bic", "aic", "n_iter", "converged", "fit_seconds"):
        assert key in results, key
    assert results["n_components"] == 10 and results["n_features"] == 2 and np.isfinite(results["bic"])
    assert (wd / "plots" / "density.png").stat().st_size > 10_000
    assert (wd / "plots" / "clusters.png").stat().st_size > 10_000
    assert np.load(wd / "labels.npy").shape == (1797,)
    tree = checkpointing.load_pytree(wd / "ckpt")
    assert np.asarray(tree["gmm"]["means_kd"]).shape == (10, 2)
    assert np.asarray(tree["pca"]["components_cd"]).shape == (2, 64)
    assert summary.startswith("gmm digits/all K=10 full: acc=")


@pytest.mark.xdist_group("gmm_binaries")  # one worker starts the three binaries
def test_pca_kmeans_binary_on_digits(runs):
    wd, summary = finished(runs, "pca_kmeans")
    results = json.loads((wd / "results.json").read_text())
    assert results["pca_components"] == 10 and 0.5 < results["acc"] <= 1 and 0 < results["pca_explained_variance"] < 1
    assert np.asarray(checkpointing.load_pytree(wd / "ckpt")["centroids"]).shape == (10, 10)
    assert (wd / "plots" / "clusters.png").exists()
    assert summary.startswith("pca_kmeans digits/all PCA-10")


@pytest.mark.xdist_group("gmm_binaries")  # one worker starts the three binaries
def test_choose_k_binary_on_digits(runs):
    wd, summary = finished(runs, "choose_k")
    results = json.loads((wd / "results.json").read_text())
    assert results["ks"] == [2, 3, 4] and len(results["per_k"]) == 3
    # Each rule's K is the one its own curve picks: the best silhouette, the lowest BIC, the elbow of the inertia.
    per_k = results["per_k"]
    assert [row["k"] for row in per_k] == [2, 3, 4]
    best_silhouette = max(per_k, key=lambda row: row["silhouette"])["k"]
    lowest_bic = min(per_k, key=lambda row: row["bic"])["k"]
    elbow = elbow_k([2, 3, 4], [row["inertia"] for row in per_k])
    assert results["suggested_k"] == {"elbow": elbow, "silhouette": best_silhouette, "bic": lowest_bic}
    assert (wd / "plots" / "choose_k.png").stat().st_size > 10_000
    assert "elbow=" in summary


def test_elbow_is_the_point_farthest_from_the_chord():
    assert elbow_k([1, 2, 3, 4, 5, 6], [100, 40, 20, 15, 12, 10]) == 3
    assert elbow_k([2, 3], [5, 4]) is None and elbow_k([2, 3, 4], [1, 1, 1]) is None
