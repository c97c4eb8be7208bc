"""Principal component analysis as pure jitted JAX, matching scikit-learn's PCA up to rounding.

    p = pca.fit(key, x_nd, n_components=50)          # PCAResult NamedTuple (also the params)
    z_nc = pca.transform(p, x_nd)                    # [n, c] scores
    x_back = pca.inverse_transform(p, z_nc)          # [n, d] reconstruction

Solvers as in scikit-learn: covariance eigh (tall data), SVD of the centred data, randomized SVD (Halko,
Martinsson & Tropp 2011); `method="auto"` picks like scikit-learn. Signs follow scikit-learn's `svd_flip`, so
results are deterministic and match its components up to rounding.

The solvers and the choice between them: docs/design/pca.md.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from research import checks, sharding

_HIGHEST = lax.Precision.HIGHEST
_METHODS = ("auto", "exact", "randomized")


class PCAResult(NamedTuple):
    """A fitted PCA; it is also the `params` of `transform` and `inverse_transform`.

    mean_d: [d] float32, the per-feature mean removed before projecting.
    components_cd: [c, d] float32, orthonormal principal axes, by decreasing variance.
    explained_variance_c: [c] float32, variance along each axis (divisor n - 1, as scikit-learn).
    explained_variance_ratio_c: [c] float32, its share of the total variance.
    singular_values_c: [c] float32, singular values of the centred data.
    noise_variance: [] float32, mean variance of the discarded directions (0 when none are), the
      probabilistic-PCA noise estimate scikit-learn reports as noise_variance_.
    whiten: [] bool, whether `transform` divides the scores by sqrt(explained_variance) (unit variance).
      An array, not a Python flag, so the params stay one jit-able, checkpointable pytree.
    """

    mean_d: jax.Array
    components_cd: jax.Array
    explained_variance_c: jax.Array
    explained_variance_ratio_c: jax.Array
    singular_values_c: jax.Array
    noise_variance: jax.Array
    whiten: jax.Array


PCAParams = PCAResult


def choose_solver(n_samples: int, n_features: int, n_components: int, method: str = "auto") -> str:
    """The solver `fit` runs: "covariance_eigh", "svd" or "randomized" (scikit-learn's rule for "auto")."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    tall = n_features <= 1000 and n_samples >= 10 * n_features
    if method == "randomized":
        return "randomized"
    if tall:
        return "covariance_eigh"
    if method == "exact" or max(n_samples, n_features) <= 500:
        return "svd"
    return "randomized" if n_components < 0.8 * min(n_samples, n_features) else "svd"


def _flip_signs(vt_cd):
    """scikit-learn's svd_flip on the rows of Vt: the largest-magnitude entry of each row is made positive."""
    big = jnp.take_along_axis(vt_cd, jnp.argmax(jnp.abs(vt_cd), axis=1)[:, None], axis=1)[:, 0]
    return vt_cd * jnp.where(big < 0, -1.0, 1.0).astype(vt_cd.dtype)[:, None]


def _qr(a):
    """The orthonormal factor of a tall [m, r] matrix (gathered onto every device first when its rows are
    sharded: r is small, and QR takes no sharded rows)."""
    return jnp.linalg.qr(sharding.unsharded(a, a))[0]


def _randomized_svd(key, a_mp, rank, n_power_iter):
    """Singular triplets of a [m, p] matrix by a randomized range finder: s [rank], vt [rank, p], u [m, rank].

    The range of A is sampled by A @ G (G Gaussian [p, rank]) and sharpened by `n_power_iter` passes of
    (A A^T), re-orthonormalised by QR after each product so the small singular directions are not lost
    to rounding; then the exact SVD of the small Q^T A [rank, p].
    """
    # With A's samples sharded (either side), the products contract or gather them; their small results are
    # replicated, so only A stays split across the devices.
    dot = functools.partial(jnp.dot, precision=_HIGHEST, out_sharding=sharding.replicated(a_mp))
    g = jax.random.normal(key, (a_mp.shape[1], rank), a_mp.dtype)
    q = _qr(dot(a_mp, g))

    def power(_, q):
        return _qr(dot(a_mp, _qr(dot(a_mp.T, q))))

    q = lax.fori_loop(0, n_power_iter, power, q)
    b = dot(q.T, a_mp)  # [rank, p]
    u_hat, s, vt = jnp.linalg.svd(b, full_matrices=False)
    return s, vt, dot(q, u_hat)


@functools.partial(jax.jit, static_argnames=("n_components", "solver", "whiten", "n_oversamples", "n_power_iter"))
def _fit(key, x_nd, *, n_components, solver, whiten, n_oversamples, n_power_iter):
    x_nd = x_nd.astype(jnp.float32)
    n, d = x_nd.shape
    c = n_components
    mean_d = jnp.mean(x_nd, axis=0)
    xc = x_nd - mean_d
    total_var = jnp.sum(xc * xc) / (n - 1)
    if solver == "covariance_eigh":
        cov = jnp.dot(xc.T, xc, precision=_HIGHEST, out_sharding=sharding.replicated(xc)) / (n - 1)
        evals, evecs = jnp.linalg.eigh(cov)  # ascending
        ev = jnp.maximum(evals[::-1][:c], 0.0)  # rounding can leave tiny negative eigenvalues
        vt = evecs[:, ::-1][:, :c].T
        s = jnp.sqrt(ev * (n - 1))
    elif solver == "svd":
        _, s, vt = jnp.linalg.svd(sharding.unsharded(xc, xc), full_matrices=False)  # small data: gathered
        s, vt = s[:c], vt[:c]
        ev = s * s / (n - 1)
    else:
        rank = min(c + n_oversamples, n, d)
        if n >= d:
            s, vt, _ = _randomized_svd(key, xc, rank, n_power_iter)
        else:  # wide data: sketch the transpose, whose range is the smaller side (scikit-learn's transpose="auto")
            s, _, u_dr = _randomized_svd(key, xc.T, rank, n_power_iter)
            vt = u_dr.T  # the left singular vectors of x^T are the right ones of x
        s, vt = s[:c], vt[:c]
        ev = s * s / (n - 1)
    vt = _flip_signs(vt)
    ratio = jnp.where(total_var > 0, ev / jnp.where(total_var > 0, total_var, 1.0), 0.0)
    rest = min(n, d) - c
    if rest > 0:
        # The variance left outside the components, summed from the residuals themselves: total_var - sum(ev)
        # in float32 loses it to cancellation when the data are nearly low rank (the noise can be 1e-6 of the total).
        resid = xc - jnp.dot(jnp.dot(xc, vt.T, precision=_HIGHEST), vt, precision=_HIGHEST)
        noise = jnp.sum(resid * resid) / (n - 1) / rest
    else:
        noise = jnp.zeros((), jnp.float32)
    return PCAResult(mean_d, vt, ev, ratio, s, noise, jnp.asarray(whiten))


def _prepare(x, n_components, method, n_oversamples, n_power_iter):
    x = checks.as_matrix(x)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 samples to estimate variances, got {n}.")
    if isinstance(n_components, bool) or int(n_components) != n_components:
        raise ValueError(f"n_components must be a whole number, got {n_components!r}.")
    c = int(n_components)
    if not 1 <= c <= min(n, d):
        raise ValueError(
            f"n_components={c} must be between 1 and min(n_samples, n_features)={min(n, d)} "
            f"(x has shape {tuple(x.shape)})."
        )
    solver = choose_solver(n, d, c, method)
    static = {
        "n_components": c,
        "solver": solver,
        "n_oversamples": checks.check_positive_int(n_oversamples, "n_oversamples"),
        "n_power_iter": _check_nonneg_int(n_power_iter, "n_power_iter"),
    }
    return jnp.asarray(x), static


def _check_nonneg_int(value, name):
    if isinstance(value, bool) or int(value) != value or int(value) < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}.")
    return int(value)


def fit(
    key,
    x,
    n_components: int,
    *,
    method: str = "auto",
    whiten: bool = False,
    n_oversamples: int = 10,
    n_power_iter: int = 4,
) -> PCAResult:
    """Fits PCA to x [n, d]; returns PCAResult (the params of `transform` / `inverse_transform`).

    Args:
      key: a jax.random key, used only by the randomized solver; the same key gives the same bits.
      x: [n, d] data, n >= 2 (NumPy or JAX). Cast to float32.
      n_components: c, 1 <= c <= min(n, d).
      method: "auto", "exact" or "randomized" (see the module docstring; `choose_solver` tells which runs).
      whiten: scale the scores to unit variance in `transform` (and back in `inverse_transform`).
      n_oversamples: randomized only: extra random directions sampled beyond c (scikit-learn's default 10).
      n_power_iter: randomized only: power iterations; more sharpen a slowly decaying spectrum.
    """
    x, static = _prepare(x, n_components, method, n_oversamples, n_power_iter)
    return _fit(key, x, whiten=bool(whiten), **static)


@jax.jit
def _transform(p: PCAResult, x_nd):
    z = jnp.dot(x_nd - p.mean_d, p.components_cd.T, precision=_HIGHEST)
    scale = jnp.maximum(jnp.sqrt(p.explained_variance_c), jnp.finfo(jnp.float32).eps)
    return jnp.where(p.whiten, z / scale, z)


@jax.jit
def _inverse_transform(p: PCAResult, z_nc):
    scale = jnp.where(p.whiten, jnp.sqrt(p.explained_variance_c), 1.0)
    return jnp.dot(z_nc * scale, p.components_cd, precision=_HIGHEST) + p.mean_d


def _as_params(params) -> PCAResult:
    return PCAResult(*(jnp.asarray(v, jnp.bool_ if i == 6 else jnp.float32) for i, v in enumerate(params)))


def transform(params: PCAResult, x):
    """Scores [n, c] of x [n, d]: (x - mean) @ components^T, divided by sqrt(explained_variance) when whitened."""
    params = _as_params(params)
    x = checks.as_matrix(x)
    d = params.components_cd.shape[1]
    if x.shape[1] != d:
        raise ValueError(f"x has {x.shape[1]} features but the PCA was fitted on {d}.")
    return _transform(params, jnp.asarray(x, jnp.float32))


def inverse_transform(params: PCAResult, z):
    """Reconstruction [n, d] from scores z [n, c]: the inverse of `transform` on the principal subspace."""
    params = _as_params(params)
    z = checks.as_matrix(z, "z")
    c = params.components_cd.shape[0]
    if z.shape[1] != c:
        raise ValueError(f"z has {z.shape[1]} columns but the PCA has {c} components.")
    return _inverse_transform(params, jnp.asarray(z, jnp.float32))


def fit_transform(key, x, n_components: int, **kwargs):
    """`fit` then `transform` on the same data: (PCAResult, scores [n, c])."""
    p = fit(key, x, n_components, **kwargs)
    return p, transform(p, x)
