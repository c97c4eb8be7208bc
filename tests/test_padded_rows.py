"""k-means and the Gaussian mixture on x padded at the end (`n_samples=`) give the fit on the unpadded rows.

Multi-process runs pad the global array so that its rows split evenly over the devices; the padding rows
must change nothing the fit reports. Compared here: the fit on x against the fit on x zero-padded to a
multiple of 4 rows with n_samples=len(x), on one device and sharded over 4 host devices.

Tolerances: labels and n_iter exactly; centroids, means, weights, inertia and lower bound to float32 rounding
(rtol 1e-5). With the padding masked, the same rows enter every sum; only the length of some reductions
changes (a block of 204 rows instead of 203), which moves their rounding by an ulp or so.
"""

from __future__ import annotations

from pathlib import Path

import binaries
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from research.cluster import gmm, kmeans

RTOL = 1e-5


def _blobs(n=203, std=2.0):
    x, y = make_blobs(n, 5, centers=6, cluster_std=std, random_state=0)
    return x.astype(np.float32), y


def _padded(x, multiple=4):
    """x with zero rows appended up to the next multiple of `multiple` (at least one row)."""
    n_pad = (len(x) // multiple + 1) * multiple
    return np.concatenate([x, np.zeros((n_pad - len(x), x.shape[1]), x.dtype)])


def _close(a, b, atol=1e-4):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=atol)


def _same_labels(plain, padded, n):
    plain, padded = np.asarray(plain), np.asarray(padded)
    assert padded.shape == (len(padded),) and len(padded) > n
    np.testing.assert_array_equal(padded[:n], plain)
    assert np.all(padded[n:] == -1)


def test_categorical_first_is_categorical_on_the_data_rows():
    # The k-means++ draw on padded logits must pick what categorical picks on the data's own logits. (categorical
    # itself on the padded logits does not, from the second draw on: threefry counts along the flattened shape.)
    logits = jnp.log(jnp.asarray(np.random.default_rng(0).uniform(size=203), jnp.float32))
    padded = jnp.concatenate([logits, jnp.full((5,), -jnp.inf)])
    for seed in range(3):
        key = jax.random.key(seed)
        for n_draws in (1, 4):
            want = jax.random.categorical(key, logits, shape=(n_draws,))
            got = kmeans._categorical_first(key, padded, 203, n_draws)
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_relocation_and_tolerance_scale_skip_padding_rows():
    # An empty cluster takes the point farthest from its centroid: never a padding row, however far it lies.
    n, n_pad = 6, 8
    x = jnp.asarray(np.arange(n_pad * 2, dtype=np.float32).reshape(n_pad, 2))
    upper = jnp.asarray([[0.1], [0.2], [0.3], [0.4], [0.6], [0.5], [9.0], [8.0]], jnp.float32)  # row 4 farthest
    labels = jnp.asarray([[0]] * n + [[-1]] * (n_pad - n), jnp.int32)
    s = kmeans._Lloyd(
        centers=jnp.zeros((1, 2, 2)),
        sums=jnp.sum(x[:n], axis=0)[None, None] * jnp.asarray([1.0, 0.0])[None, :, None],
        counts=jnp.asarray([[n, 0.0]]),
        labels=labels,
        upper=upper,
        lower=jnp.zeros_like(upper),
        n_iter=jnp.zeros((1,), jnp.int32),
        done=jnp.zeros((1,), bool),
        converged=jnp.zeros((1,), bool),
        n_full=jnp.zeros((), jnp.int32),
        half_gap=jnp.zeros((1, 2)),
    )
    got = kmeans._relocate_empty(s, x, jnp.ones((1,), bool), n_samples=n)
    np.testing.assert_array_equal(np.asarray(got.labels[:, 0]), [0, 0, 0, 0, 1, 0, -1, -1])
    np.testing.assert_array_equal(np.asarray(got.counts), [[n - 1, 1]])
    _close(got.sums[0, 1], x[4])
    # The tolerance's scale: the features' variance over the data rows alone.
    _close(kmeans._feature_variance(x, n), jnp.var(x[:n], axis=0), atol=0)


# Compilations dominate the time here (seconds each), so the cases share them: six clusters throughout, and
# this case has the arguments of gmm's k-means init on the same blobs (compiled once for both). Pruning, random
# init and several restarts: on four devices in test_padded_rows_sharded_over_four_devices; digits over two
# processes in test_multi_process.py.
def test_kmeans_ignores_padding_rows():
    x = _blobs()[0]
    n, xp = len(x), _padded(x)
    key = jax.random.key(4)
    a = kmeans.fit(key, x, 6, n_init=1, prune=False)
    b = kmeans.fit_timed(key, xp, 6, n_init=1, prune=False, n_samples=n).out  # the timed variant takes it too
    _check_kmeans(a, b, n)


def _check_kmeans(a, b, n):
    _same_labels(a.labels, b.labels, n)
    assert int(a.n_iter) == int(b.n_iter) and bool(a.converged) == bool(b.converged)
    _close(a.centroids, b.centroids)
    _close(a.inertia, b.inertia)
    _close(a.inertia_per_init, b.inertia_per_init)


def _check_gmm(a, b, n):
    _same_labels(a.labels, b.labels, n)
    assert int(a.n_iter) == int(b.n_iter) and bool(a.converged) == bool(b.converged)
    _close(a.params.means_kd, b.params.means_kd)
    _close(a.params.weights_k, b.params.weights_k, atol=1e-6)
    _close(a.params.covariances, b.params.covariances)
    _close(a.lower_bound, b.lower_bound, atol=0)


@pytest.mark.parametrize("cov, init", [("diag", "kmeans"), ("tied", "random"), ("spherical", "random")])
def test_gmm_ignores_padding_rows(cov, init):
    x = _blobs()[0]
    n, xp = len(x), _padded(x)
    kw = {"covariance_type": cov, "init_params": init, "n_init": 2}
    key = jax.random.key(1)
    _check_gmm(gmm.fit(key, x, 6, **kw), gmm.fit(key, xp, 6, n_samples=n, **kw), n)


def test_gmm_full_from_labels_init_ignores_padding_rows():
    # labels_init for a padded x: one label per data row, or one per row of x with the padding's ignored.
    x, y = _blobs()
    n, xp = len(x), _padded(x)
    a = gmm.fit(jax.random.key(1), x, 6, labels_init=y)
    for given in (y, np.concatenate([y, np.full(len(xp) - n, -1)])):
        _check_gmm(a, gmm.fit(jax.random.key(1), xp, 6, labels_init=given, n_samples=n), n)


@pytest.mark.parametrize(
    "n_samples, match",
    [
        (0, r"n_samples must be in \[1, 208\]"),
        (209, r"n_samples must be in \[1, 208\]"),
        (-3, r"n_samples must be in \[1, 208\]"),
        (2.5, "n_samples must be a whole number"),
        (203.0, "n_samples must be a whole number"),
        (True, "n_samples must be a whole number"),
        ("203", "n_samples must be a whole number"),
        (5, r"larger than the number of samples \(5\)"),
    ],
)
def test_bad_n_samples_are_refused(n_samples, match):
    xp = _padded(_blobs(205)[0])  # 208 rows
    fits = (
        kmeans.fit,
        kmeans.fit_timed,
        kmeans.fit_with_history,
        kmeans.fit_with_history_timed,
        gmm.fit,
        gmm.fit_timed,
    )
    for fit in fits:  # each one checks it: the argument reaches the shared checks
        with pytest.raises(ValueError, match=match):
            fit(jax.random.key(0), xp, 6, n_samples=n_samples)


def test_gmm_labels_init_of_another_length_is_refused():
    xp = _padded(_blobs(205)[0])
    with pytest.raises(ValueError, match=r"labels_init must have shape \[205\] or \[n_init, 205\] \(or 208"):
        gmm.fit(jax.random.key(0), xp, 3, labels_init=np.zeros(207, int), n_samples=205)
    with pytest.raises(ValueError, match=r"labels_init must hold integer component ids in \[0, 3\)"):
        gmm.fit(jax.random.key(0), xp, 3, labels_init=np.full(205, -1), n_samples=205)


_SHARDED = """
import jax, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from sklearn.datasets import make_blobs
from research.cluster import gmm, kmeans
from test_padded_rows import _check_gmm, _check_kmeans, _padded

assert jax.device_count() == 4
# Overlapping blobs: the restarts end in distinct optima, so which one wins is not a rounding tie.
x, y = make_blobs(203, 5, centers=6, cluster_std=3.0, random_state=0)
x = x.astype(np.float32)
n, xp = len(x), _padded(x)
key = jax.random.key(2)
mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Explicit,))
cases = [  # (name, fit, check)
    ("kmeans", lambda d, **kw: kmeans.fit(key, d, 6, n_init=3, init="random", prune=True, **kw), _check_kmeans),
    # From labels: EM from random responsibilities on these overlapping blobs drifts along flat directions, and
    # carries the rounding of the sharded sums to means 1e-4 apart (as it does for unpadded data).
    ("gmm", lambda d, **kw: gmm.fit(key, d, 6, covariance_type="diag", labels_init=y, **kw), _check_gmm),
]
for name, fit, check in cases:
    want = fit(x)
    with jax.set_mesh(mesh):
        got = fit(jax.device_put(xp, NamedSharding(mesh, P("data", None))), n_samples=n)
    try:
        assert got.labels.sharding.spec == P("data"), got.labels.sharding
        check(want, got, n)
    except AssertionError as e:
        raise AssertionError(f"{name}: {e}") from None
print("ok")
"""


def test_padded_rows_sharded_over_four_devices():
    # The padded array sharded along the sample axis of an explicit 4-device mesh: the one-device fit of x.
    here = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})  # this module's checks\n"
    binaries.run_on_host_devices(here + _SHARDED, n_devices=4, timeout=300)
