"""Choosing K (research.cluster.select): each rule finds the K of well-separated blobs, the curves have one
entry per K and do not depend on the other K tried, and bad input is refused with a clear error."""

import jax
import numpy as np
import pytest

from research.cluster import gmm, select

K_TRUE = 4
KS = [2, 3, 4, 5, 6]


def blobs(n_per=40, k=K_TRUE, d=2, seed=0):
    """k tight Gaussian blobs on a circle of radius 10 (std 0.5), n_per points each, float32 [k * n_per, d]."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(k) / k
    centers = 10 * np.stack([np.cos(angles), np.sin(angles)] + [np.zeros(k)] * (d - 2), axis=1)
    return np.concatenate([c + 0.5 * rng.standard_normal((n_per, d)) for c in centers]).astype(np.float32)


@pytest.fixture(scope="module")
def x():
    return blobs()


@pytest.fixture(scope="module")
def elbow(x):
    return select.elbow(jax.random.key(0), x, KS, n_init=2)


def test_elbow_finds_the_blobs_and_has_one_entry_per_k(x, elbow):
    assert elbow.k == K_TRUE
    assert elbow.ks.tolist() == KS and elbow.inertia.shape == (len(KS),)
    assert np.all(np.diff(elbow.inertia) < 0)  # more clusters, less inertia
    assert [len(np.unique(lab)) for lab in elbow.labels] == KS and all(lab.shape == (len(x),) for lab in elbow.labels)


def test_silhouette_finds_the_blobs_on_a_sample_and_from_a_function(x, elbow):
    sil = select.silhouette(x, KS, elbow.labels, sample_size=100, seed=0)
    assert sil.k == K_TRUE and sil.scores.shape == (len(KS),) and np.all(np.isfinite(sil.scores))
    # Labels from a function of K; one cluster has no silhouette (NaN), and it never wins.
    one = select.silhouette(x, [1, 4], lambda k: elbow.labels[KS.index(k)] if k > 1 else np.zeros(len(x)))
    assert np.isnan(one.scores[0]) and one.k == 4
    assert np.isclose(one.scores[1], select.silhouette(x, [4], [elbow.labels[2]]).scores[0])


def test_bic_finds_the_blobs_from_the_elbows_labels(x, elbow):
    b = select.bic(jax.random.key(0), x, KS, labels_init=elbow.labels, covariance_type="diag")
    assert b.k == K_TRUE
    for curve in (b.bic, b.aic, b.lower_bound, b.converged):
        assert curve.shape == (len(KS),)
    assert np.all(np.isfinite(b.bic)) and b.converged.dtype == bool and len(b.labels) == len(KS)


def test_curves_do_not_depend_on_the_other_ks(x, elbow):
    alone = select.elbow(jax.random.key(0), x, [3], n_init=2)
    assert alone.k is None  # an elbow needs three K
    assert alone.inertia[0] == elbow.inertia[KS.index(3)]
    assert np.array_equal(alone.labels[0], elbow.labels[KS.index(3)])


def test_a_failed_mixture_is_nan_and_the_other_k_still_count(x, monkeypatch):
    fit = gmm.fit

    def collapses_at_3(key, x, k, **kwargs):
        if k == 3:
            raise ValueError("collapsed")
        return fit(key, x, k, **kwargs)

    monkeypatch.setattr(gmm, "fit", collapses_at_3)
    b = select.bic(jax.random.key(0), x, [3, 4], covariance_type="spherical")
    assert np.isnan(b.bic[0]) and not b.converged[0] and b.labels[0] is None
    assert b.k == 4


@pytest.mark.parametrize(
    "ks, match",
    [
        ([], "non-empty"),
        ([2.0, 3.0], "whole numbers"),
        ([3, 2], "strictly increasing"),
        ([2, 2], "strictly increasing"),
        ([0, 2], r"in \[1, 160\]"),
        ([2, 161], r"in \[1, 160\]"),
    ],
)
def test_bad_ks_are_refused(x, ks, match):
    with pytest.raises(ValueError, match=match):
        select.elbow(jax.random.key(0), x, ks)


def test_bad_data_and_mismatched_labels_are_refused(x, elbow):
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        select.silhouette(bad, KS, elbow.labels)
    with pytest.raises(ValueError, match="one labelling per K"):
        select.silhouette(x, KS, elbow.labels[:2])
    with pytest.raises(ValueError, match="one labelling per K"):
        select.bic(jax.random.key(0), x, KS, labels_init=elbow.labels[:2])
