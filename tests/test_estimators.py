"""The scikit-learn estimators: scikit-learn's own estimator checks, parity with scikit-learn's classes, Pipelines,
GridSearchCV, pickling, and random_state.

The estimator checks fit many tiny arrays of different shapes, and every new shape compiles the jitted fit again
(about 1 to 3 s each here), so the instances below take settings that compile quickly, each estimator's checks
run on one pytest-xdist worker (`xdist_group`) so its shapes compile once per session, and only the estimators
that compile quickly run every check by default (API_ONLY, ALL_CHECKS_ONLY: the others, with their reasons;
JAXCLUSTER_ALL_ESTIMATOR_CHECKS=1 runs every check on every estimator).
"""

from __future__ import annotations

import os
import pickle
import unittest

import numpy as np
import pytest
import sklearn.cluster
import sklearn.decomposition
import sklearn.linear_model
import sklearn.mixture
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

from research import estimators as E

# --- scikit-learn's estimator checks ----------------------------------------------------------------------------

# Small settings that compile quickly (random inits, Adam, exact t-SNE repulsion in 3-D, the blocked DBSCAN): the
# checks test the API, not the quality of the fits.
CHECKED = [
    E.KMeans(n_clusters=3, init="random", n_init=1, max_iter=20, prune=False),
    E.SphericalKMeans(n_clusters=3, init="random", n_init=1, max_iter=20),
    E.MiniBatchKMeans(n_clusters=3, init="random", n_init=1, max_iter=5, batch_size=10),
    E.GaussianMixture(n_components=2, covariance_type="diag", max_iter=5, init_params="random"),
    E.PCA(),
    E.SOM(grid=(3, 3), mode="batch", n_epochs=3),
    E.DBSCAN(method="blocked"),
    E.NeighbourEmbedding("tsne", n_components=3, perplexity=2, n_iter=20, init="random"),
    E.NeighbourEmbedding("umap", n_neighbors=5, n_iter=5, init="random"),
    E.LinearProbe(solver="adam", max_iter=100, learning_rate=0.1),
]
# Tiny networks; a full check run pretrains and trains one for each of the checks' shapes (about 80 s each).
TINY_DEEP = {"hidden_dims": (4, 2), "pretrain_epochs": 1, "update_interval": 5, "max_iter": 10, "n_init": 1}
DEEP_CHECKED = [E.DEC(3, **TINY_DEEP), E.IDEC(3, **TINY_DEEP)]

# Set to 1 to run every check on every estimator, DEC and IDEC included (about 7 minutes on two cores; all pass
# but the EXPECTED_FAILURES). By default the suite's time budget allows the full checks on the estimators below
# whose fits compile quickly, and scikit-learn's API checks (`legacy=False`: fit, fitted state, parameters,
# n_features_in_, read-only input, unfitted errors) on the rest, each with its reason.
ALL_CHECKS = os.environ.get("JAXCLUSTER_ALL_ESTIMATOR_CHECKS") == "1"
_SHARED = "shares its fitted attributes and methods with MiniBatchKMeans, which runs the full checks"
_COMPILES = "each of the full checks' shapes recompiles its fit (1 to 2 s)"
API_ONLY = {
    "KMeans": f"{_SHARED}; {_COMPILES}; parity with scikit-learn's KMeans below",
    "SphericalKMeans": f"its fitted attributes come from the code that MiniBatchKMeans runs the full checks on; {_COMPILES}",
    "GaussianMixture": f"{_COMPILES}; parity with scikit-learn's GaussianMixture below covers its methods",
    "DBSCAN": f"{_COMPILES}; parity with scikit-learn's DBSCAN below",
    "NeighbourEmbedding-tsne": _COMPILES,
}
# Only with JAXCLUSTER_ALL_ESTIMATOR_CHECKS=1, each with its reason; tests below cover them by default.
ALL_CHECKS_ONLY = {
    "NeighbourEmbedding-umap": "the t-SNE instance runs the API checks on the same class; every UMAP fit compiles "
    "anew (its edge batches follow the graph), 12 s for the API checks alone",
    "DEC": "pretrains and trains a network for each of the checks' shapes; test_deep_clustering_* below",
    "IDEC": "as DEC",
}


# The library words its errors its own way; these checks want scikit-learn's phrases.
_ONE_SAMPLE = "the library's error names what one sample is too few for, not in one of scikit-learn's phrases"

# Checks that fail for a reason, per estimator label (class name, and method for NeighbourEmbedding). They run as
# strict xfails: one that starts passing fails the suite.
EXPECTED_FAILURES = {
    "SphericalKMeans": {
        "check_estimators_dtypes": "the check's integer data has a row of zeros, which has no direction on the sphere",
    },
    "PCA": {"check_fit2d_1sample": _ONE_SAMPLE},
    "SOM": {
        "check_clustering": "labels are best-matching units of the grid, so unused units leave gaps in the labels",
        "check_fit2d_1feature": "the default init='pca' needs two features and says so in its own words",
    },
    "NeighbourEmbedding-tsne": {"check_fit2d_1sample": _ONE_SAMPLE},
    "LinearProbe": {
        "check_fit2d_1sample": _ONE_SAMPLE,
        "check_all_zero_sample_weights_error": "the library says 'not all 0', the check wants the word 'zero'",
        "check_sample_weight_equivalence_on_dense_data": (
            "the solvers stop on a gradient tolerance in float32: weights and repeated rows agree to about 1e-4, "
            "not the check's 1e-7 (scikit-learn lists the same check for its LogisticRegression)"
        ),
    },
}

# Checks that scikit-learn itself skips in this environment: not run here, each with its reason.
NOT_RUN = {
    "check_array_api_input": "scikit-learn runs it only with SCIPY_ARRAY_API=1 set before SciPy is imported",
    "check_sample_weights_pandas_series": "pandas is not installed (not a dependency of this project)",
}
# Checks whose last part needs pandas: the parts before it run, then scikit-learn skips the rest, counted a pass.
PANDAS_LAST = {"check_classifier_data_not_an_array": "its NotAnArray input runs; its DataFrame input needs pandas"}


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


def _label(est) -> str:
    name = type(est).__name__
    return f"{name}-{est.method}" if isinstance(est, E.NeighbourEmbedding) else name


def _sklearn_checks():
    for est in CHECKED + DEEP_CHECKED:
        label = _label(est)
        if label in ALL_CHECKS_ONLY and not ALL_CHECKS:
            continue
        group = pytest.mark.xdist_group(f"estimator-checks-{label}")
        legacy = ALL_CHECKS or label not in API_ONLY
        for item in estimator_checks_generator(
            est, legacy=legacy, expected_failed_checks=EXPECTED_FAILURES.get(label, {}), mark="xfail", xfail_strict=True
        ):
            # An expected failure comes as a pytest.param carrying its xfail mark, the rest as pairs.
            (est_, check), marks = (item.values, list(item.marks)) if hasattr(item, "marks") else (item, [])
            if _check_name(check) not in NOT_RUN:
                yield pytest.param(est_, check, marks=[group, *marks], id=f"{label}-{_check_name(check)}")


@pytest.mark.parametrize("estimator, check", list(_sklearn_checks()))
def test_sklearn_estimator_checks(estimator, check):
    try:
        check(estimator)
    except unittest.SkipTest as e:
        if not (_check_name(check) in PANDAS_LAST and "pandas is not installed" in str(e)):
            raise


def test_every_expected_failure_and_unrun_check_exists():
    """A listed check that scikit-learn no longer yields would hide nothing, but is a stale entry."""
    yielded = {}
    for est in CHECKED + DEEP_CHECKED:
        yielded.setdefault(_label(est), set()).update(
            _check_name(c) for _, c in estimator_checks_generator(est, legacy=True)
        )
    for name, reasons in EXPECTED_FAILURES.items():
        assert set(reasons) <= yielded[name], name
    assert set(NOT_RUN) | set(PANDAS_LAST) <= set().union(*yielded.values())
    assert set(API_ONLY) | set(ALL_CHECKS_ONLY) <= set(yielded)


# --- parity with scikit-learn -----------------------------------------------------------------------------------


def blobs(n=120, d=4, k=3, std=1.0, seed=0):
    x, y = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=std, random_state=seed)
    return x.astype(np.float32), y


def test_kmeans_matches_scikit_learn_from_the_same_start():
    x, _ = blobs()
    start = x[:3]
    ours = E.KMeans(3, init=start, n_init=1).fit(x)
    ref = sklearn.cluster.KMeans(3, init=start, n_init=1, algorithm="lloyd").fit(x)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-4)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-4)
    np.testing.assert_array_equal(ours.predict(x[::7]), ref.predict(x[::7]))
    np.testing.assert_allclose(ours.score(x), ref.score(x), rtol=1e-4)


def test_minibatch_kmeans_inertia_is_close_to_scikit_learns():
    x, _ = blobs(n=300)
    ours = E.MiniBatchKMeans(3, batch_size=64, random_state=0).fit(x)
    ref = sklearn.cluster.MiniBatchKMeans(3, batch_size=64, n_init=3, random_state=0).fit(x)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=0.03)


def test_gaussian_mixture_matches_scikit_learn_from_the_same_parameters():
    x, y = blobs(std=1.5)
    means = np.stack([x[y == j].mean(0) for j in range(3)])
    init = {"weights_init": np.full(3, 1 / 3), "means_init": means, "precisions_init": np.stack([np.eye(4)] * 3)}
    ours = E.GaussianMixture(3, **init).fit(x)
    ref = sklearn.mixture.GaussianMixture(3, **init).fit(x.astype(np.float64))
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, abs=1e-4)
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-3)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, atol=1e-3)
    np.testing.assert_allclose(ours.precisions_, ref.precisions_, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
    np.testing.assert_allclose(ours.score_samples(x), ref.score_samples(x), atol=1e-3)


def test_pca_matches_scikit_learn_up_to_sign():
    x, _ = blobs(d=6)
    ours = E.PCA(3).fit(x)
    ref = sklearn.decomposition.PCA(3).fit(x)
    signs = np.sign(np.sum(ours.components_ * ref.components_, axis=1))
    np.testing.assert_allclose(ours.components_ * signs[:, None], ref.components_, atol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(ours.transform(x) * signs, ref.transform(x), atol=1e-3)
    np.testing.assert_allclose(
        ours.inverse_transform(ours.transform(x)), ref.inverse_transform(ref.transform(x)), atol=1e-3
    )


def test_dbscan_finds_scikit_learns_core_samples_and_noise():
    x, _ = blobs(n=150, d=2, std=1.2)
    ours = E.DBSCAN(eps=0.5, min_samples=5).fit(x)
    ref = sklearn.cluster.DBSCAN(eps=0.5, min_samples=5).fit(x)
    np.testing.assert_array_equal(ours.core_sample_indices_, ref.core_sample_indices_)
    np.testing.assert_array_equal(ours.labels_ == -1, ref.labels_ == -1)
    assert ours.n_clusters_ == ref.labels_.max() + 1


def test_linear_probe_is_as_accurate_as_logistic_regression_on_any_labels():
    x, y = blobs(n=240, std=4.0)
    names = np.array(["cat", "dog", "eel"])[y]
    train, test = slice(0, 180), slice(180, None)
    ours = E.LinearProbe(C=1.0).fit(x[train], names[train])
    ref = sklearn.linear_model.LogisticRegression(C=1.0).fit(x[train], names[train])
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    assert ours.score(x[test], names[test]) == pytest.approx(ref.score(x[test], names[test]), abs=0.02)
    np.testing.assert_allclose(ours.predict_proba(x[test]), ref.predict_proba(x[test]), atol=0.02)


# --- in scikit-learn's machinery ----------------------------------------------------------------------------------


def test_pipeline_of_scaler_pca_and_kmeans_clusters_and_pickles():
    x, y = blobs(d=8)
    pipe = Pipeline([("scale", StandardScaler()), ("pca", E.PCA(n_components=5)), ("kmeans", E.KMeans(3))])
    labels = pipe.fit_predict(x)
    assert adjusted_rand_score(y, labels) == 1.0
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict(x), pipe.predict(x))
    np.testing.assert_array_equal(again.transform(x), pipe.transform(x))


def test_grid_search_over_the_probes_regularisation():
    x, y = blobs(n=120, std=4.0)
    search = GridSearchCV(E.LinearProbe(), {"C": [1e-4, 1.0]}, cv=3).fit(x, y)  # three folds of 80 rows
    assert search.best_params_ == {"C": 1.0}
    assert search.best_score_ > 0.8
    assert search.best_estimator_.n_features_in_ == 4


# --- deep clustering: fit, predict on new rows, pickle, pipeline --------------------------------------------------
# The full estimator checks would pretrain and train an autoencoder for each of their dozens of shapes (minutes);
# these tests cover what the checks would: fit, predict on new rows, probabilities, codes, pickle, Pipeline.

DEEP = {"hidden_dims": (16, 2), "pretrain_epochs": 20, "pretrain_batch_size": 32, "batch_size": 32}
DEEP |= {"update_interval": 10, "max_iter": 100, "n_init": 3, "random_state": 0}


@pytest.mark.parametrize("cls", [E.DEC, E.IDEC])
def test_deep_clustering_fits_an_array_and_predicts_new_rows(cls):
    x, y = blobs(n=160, d=6, std=0.5)
    new = blobs(n=40, d=6, std=0.5, seed=0)[0] + 0.01
    pipe = Pipeline([("scale", StandardScaler()), ("dec", cls(3, **DEEP))]).fit(x)
    est = pipe[-1]
    assert adjusted_rand_score(y, est.labels_) > 0.9
    proba = pipe.predict_proba(new)
    assert proba.shape == (40, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(pipe.predict(new), proba.argmax(1))
    assert pipe.transform(new).shape == (40, 2)
    assert est.cluster_centers_.shape == (3, 2) and est.n_features_in_ == 6
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict_proba(new), proba)


def test_umap_separates_blobs_and_refits_to_the_same_bits():
    x, y = blobs(n=90, d=5)
    umap = E.NeighbourEmbedding("umap", n_neighbors=10, n_iter=50, random_state=3)
    z = umap.fit_transform(x)
    assert z.shape == (90, 2) and z.dtype == np.float32
    np.testing.assert_array_equal(umap.fit(x).embedding_, z)
    labels = sklearn.cluster.KMeans(3, n_init=10, random_state=0).fit_predict(z)
    assert adjusted_rand_score(y, labels) == 1.0


# --- random_state and errors ------------------------------------------------------------------------------------


def test_random_state_becomes_a_seed():
    assert E.seed_of(None) == 0
    assert E.seed_of(7) == E.seed_of(np.int64(7)) == 7
    assert E.seed_of(np.random.RandomState(0)) == E.seed_of(np.random.RandomState(0))
    assert E.seed_of(np.random.default_rng(1)) == E.seed_of(np.random.default_rng(1))
    with pytest.raises(ValueError, match="random_state must be in"):
        E.seed_of(-1)
    with pytest.raises(ValueError, match="random_state must be None, an int"):
        E.seed_of("0")


def test_bad_settings_raise_errors_naming_them():
    x, _ = blobs(n=30)
    with pytest.raises(ValueError, match="method must be 'umap' or 'tsne'"):
        E.NeighbourEmbedding("isomap").fit(x)
    with pytest.raises(ValueError, match="hidden_dims must be"):
        E.DEC(3, hidden_dims=(8, 0)).fit(x)
    with pytest.raises(ValueError, match="n_clusters=40 is larger than the number of samples"):
        E.KMeans(40).fit(x)
