"""Gaussian mixtures by EM, as pure jitted JAX: scikit-learn's GaussianMixture step for step, restarts fused.

    g = gmm.fit(key, z_nd, n_components=10, covariance_type="full")    # GMMResult NamedTuple
    logp_n = gmm.score_samples(g.params, z_nd); labels_n = gmm.predict(g.params, z_nd)

E step in log space through the Cholesky factors of the precisions, M step from the responsibilities, stop on
the change of the mean log-likelihood: from the same start it gives scikit-learn's fit. Covariances
(`GMMParams.covariances`, `.precisions_cholesky`): full [k, d, d], tied [1, d, d], diag [k, d], spherical [k].
The `n_init` restarts advance together, two blocked passes over the data per iteration. A restart whose
covariance stops being positive definite is dropped; when all fail, `fit` raises: never a NaN.

Design and measurements: docs/design/gmm.md.
"""

from __future__ import annotations

import functools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from research import checks, sharding, timing
from research.cluster import kmeans

_HIGHEST = lax.Precision.HIGHEST
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "random")
_LOG_2PI = math.log(2.0 * math.pi)
# Floats of [block, R * k * d] intermediates per block: ~4 MB in float32, which stays in the CPU's cache
# between the matrix product and the reductions after it.
_BLOCK_FLOATS = 1 << 20


class GMMParams(NamedTuple):
    """A Gaussian mixture's parameters (shapes for k components in d dimensions).

    weights_k: [k], mixing weights (sum to 1).
    means_kd: [k, d].
    covariances: full [k, d, d]; tied [1, d, d]; diag [k, d]; spherical [k].
    precisions_cholesky: same shape as covariances; full/tied: upper-triangular U with U U^T = covariance^-1;
      diag/spherical: 1 / sqrt(variance).
    """

    weights_k: jax.Array
    means_kd: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


class GMMResult(NamedTuple):
    """The best restart of a GMM fit.

    params: GMMParams after the last M step.
    labels: [n] int32, each point's most probable component under `params`; -1 on the padding rows after
      `n_samples` (see `fit`).
    lower_bound: [] mean log-likelihood per sample at the last E step (scikit-learn's lower_bound_), over the
      first n_samples rows.
    n_iter: [] int32, EM iterations of the best restart.
    converged: [] bool, whether it stopped on `tol` rather than `max_iter`.
    lower_bound_per_init: [n_init], every restart's final lower bound (-inf for one that failed).
    """

    params: GMMParams
    labels: jax.Array
    lower_bound: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    lower_bound_per_init: jax.Array


class _EM(NamedTuple):
    """Loop state for R restarts: parameters [R, ...] and per-restart bookkeeping [R]."""

    weights: jax.Array  # [R, k]
    means: jax.Array  # [R, k, d]
    covs: jax.Array  # [R, *cov shape]
    prec_chol: jax.Array  # [R, *cov shape]
    lower_bound: jax.Array  # [R]
    n_iter: jax.Array  # [R] int32
    converged: jax.Array  # [R] bool
    failed: jax.Array  # [R] bool: a covariance stopped being positive definite
    done: jax.Array  # [R] bool


# ---------------------------------------------------------------------------
# Shapes and the covariance type


def covariance_type_of(params: GMMParams) -> str:
    """ "full", "tied", "diag" or "spherical", read from the shape of `params.covariances`."""
    k = np.shape(params.weights_k)[0]
    ndim = np.ndim(params.covariances)
    if ndim == 3:
        return "tied" if np.shape(params.covariances)[0] == 1 and k > 1 else "full"
    return {2: "diag", 1: "spherical"}[ndim]


def _cov_shape(cov_type, k, d):
    return {"full": (k, d, d), "tied": (1, d, d), "diag": (k, d), "spherical": (k,)}[cov_type]


def n_parameters(params: GMMParams) -> int:
    """Free parameters of the model (as scikit-learn's _n_parameters): for BIC and AIC."""
    k, d = np.shape(params.means_kd)
    cov_type = covariance_type_of(params)
    cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}[cov_type]
    return int(cov + k * d + k - 1)


# ---------------------------------------------------------------------------
# Numerics shared by the loop and the public functions (leading axis R: restarts)


def _precision_cholesky(covs, cov_type):
    """U with U U^T = cov^-1 (upper triangular) for full/tied; 1/sqrt(var) for diag/spherical.

    A covariance that is not positive definite gives NaN (Cholesky) or inf/NaN (sqrt of <= 0);
    callers test for it with `_valid`.
    """
    if cov_type in ("full", "tied"):
        return jnp.swapaxes(_lower_triangular_inverse(jnp.linalg.cholesky(covs)), -1, -2)
    return jnp.where(covs > 0, lax.rsqrt(jnp.where(covs > 0, covs, 1.0)), jnp.nan)


def _lower_triangular_inverse(l_dd):
    """L^-1 for lower-triangular L [..., d, d], by forward substitution, one row per loop step.

    Not jax.scipy.linalg.solve_triangular: on CPU its call into LAPACK's trsm slowed the whole M step's scan
    over the blocks, while these d small products cost next to nothing (measured: docs/design/gmm.md).
    """
    d = l_dd.shape[-1]
    eye = jnp.eye(d, dtype=l_dd.dtype)

    def row(i, inv):
        # Row i of L^-1: (e_i - L[i, :i] L^-1[:i]) / L[i, i]; rows i.. of `inv` are still zero.
        r = (eye[i] - jnp.einsum("...j,...jk->...k", l_dd[..., i, :], inv, precision=_HIGHEST)) / l_dd[..., i, i, None]
        return inv.at[..., i, :].set(r)

    return lax.fori_loop(0, d, row, jnp.zeros_like(l_dd))


def _valid(prec_chol):
    """[R] whether every precision factor of a restart is finite."""
    return jnp.all(jnp.isfinite(prec_chol.reshape(prec_chol.shape[0], -1)), axis=1)


def _log_det(prec_chol, cov_type, d):
    """log det U per component [R, k]: half the log-determinant of the precision."""
    if cov_type in ("full", "tied"):
        ld = jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)  # [R, k] or [R, 1]
    elif cov_type == "diag":
        ld = jnp.sum(jnp.log(prec_chol), axis=-1)
    else:
        ld = d * jnp.log(prec_chol)
    return ld


def _weighted_log_prob(x_bd, weights, means, prec_chol, cov_type):
    """log w_k + log N(x_b | mu_k, Sigma_k) as [b, R, k].

    full/tied: the whitened residuals y = (x - mu) U come from one matrix product for all components,
    x [b, d] @ [d, R * k * d] (full) or [d, R * d] (tied), minus mu U. That product is the widest the CPU
    runs well; the subtraction costs float32 a few ulps per unit of |x U| / |y|, which the centring of
    the data (see the module docstring) keeps small. diag/spherical: elementwise residuals.
    """
    r_, k, d = means.shape
    if cov_type == "full":
        w = jnp.transpose(prec_chol, (2, 0, 1, 3)).reshape(d, r_ * k * d)
        mu_u = jnp.einsum("rkd,rkde->rke", means, prec_chol, precision=_HIGHEST)
        y = jnp.dot(x_bd, w, precision=_HIGHEST).reshape(-1, r_, k, d) - mu_u
    elif cov_type == "tied":
        u = prec_chol[:, 0]  # [R, d, d]
        xu = jnp.dot(x_bd, jnp.transpose(u, (1, 0, 2)).reshape(d, r_ * d), precision=_HIGHEST).reshape(-1, r_, 1, d)
        y = xu - jnp.einsum("rkd,rde->rke", means, u, precision=_HIGHEST)
    elif cov_type == "diag":
        y = (x_bd[:, None, None, :] - means) * prec_chol
    else:
        y = (x_bd[:, None, None, :] - means) * prec_chol[..., None]
    sq = jnp.sum(y * y, axis=-1)
    return -0.5 * (d * _LOG_2PI + sq) + _log_det(prec_chol, cov_type, d) + jnp.log(weights)


def _scatter(x_bd, r_rkb, means, cov_type):
    """sum_b r (x_b - mu)(x_b - mu)^T about `means` [R, k, d], in the shape of the covariance type: full
    [R, k, d, d], tied [R, 1, d, d], diag [R, k, d], spherical [R, k] (summed over d).

    Computed as Z^T Z with Z = sqrt(r) (x - mu) [R, k, b, d]: one intermediate the size of the block's
    residuals, where r (x - mu)^T (x - mu) writes three: memory, not arithmetic, bounds this pass on CPU
    (docs/design/gmm.md).
    """
    z = jnp.sqrt(r_rkb)[..., None] * (x_bd - means[:, :, None, :])  # [R, k, b, d]
    out = sharding.replicated(x_bd)
    if cov_type == "full":
        return jnp.einsum("rkbd,rkbe->rkde", z, z, precision=_HIGHEST, out_sharding=out)
    if cov_type == "tied":
        return jnp.einsum("rkbd,rkbe->rde", z, z, precision=_HIGHEST, out_sharding=out)[:, None]
    sq = jnp.sum(z * z, axis=2)  # [R, k, d]
    return sq if cov_type == "diag" else jnp.sum(sq, axis=-1)


def _covariances(scatter, nk, reg_covar, cov_type, d):
    """Covariances from the scatter about the new means, as scikit-learn's _estimate_gaussian_parameters."""
    if cov_type == "full":
        return scatter / nk[..., None, None] + reg_covar * jnp.eye(d, dtype=scatter.dtype)
    if cov_type == "tied":
        return scatter / jnp.sum(nk, axis=1)[:, None, None, None] + reg_covar * jnp.eye(d, dtype=scatter.dtype)
    if cov_type == "diag":
        return scatter / nk[..., None] + reg_covar
    return scatter / (nk * d) + reg_covar


# ---------------------------------------------------------------------------
# Passes over the data in blocks
#
# Each device scans its own rows of x in blocks cut in place (`sharding.slid_block`) and centres each block as
# it reads it: no centred, padded or re-laid-out copy of x is ever made, so a fit holds x once plus the
# responsibilities [nb, R, k, size] that the E step hands to the M step, in the same block layout.


def _rows_axis(x_nd):
    """The mesh axis (or axes) that splits the rows of x on an explicit mesh; None otherwise (one device, an
    automatic mesh)."""
    if sharding.replicated(x_nd) is None:
        return None
    spec = jax.typeof(x_nd).sharding.spec
    return spec[0] if len(spec) else None


def _per_device(local, x_nd, rows_args, shared, out_rows=()):
    """local(x, *rows_args, *shared) -> (per-row outputs, sums), run on each device's own rows (shard_map) with
    the sums added across the devices once at the end; plain `local` on one device.

    Sums taken block by block over blocks that spanned the devices would cross them once per block: across
    processes, a collective per block (10M rows on 2 processes: 5x slower EM, docs/design/multi_process.md).
    rows_args: (array, the axis holding its rows) pairs; out_rows: (ndim, rows axis) of each per-row output.
    """
    axis = _rows_axis(x_nd)
    arrays = [a for a, _ in rows_args]
    if axis is None:
        return local(x_nd, *arrays, *shared)

    def rows_on(ndim, at):
        return jax.P(*[axis if i == at else None for i in range(ndim)])

    def on_device(x, *args):
        per_row, sums = local(x, *args)
        return per_row, lax.psum(sums, axis)

    specs = (rows_on(2, 0), *[rows_on(a.ndim, at) for a, at in rows_args], *[jax.P()] * len(shared))
    args = [jax.tree.map(lambda a, p=p: jax.sharding.reshard(a, p), a) for a, p in zip((x_nd, *arrays, *shared), specs)]
    return jax.shard_map(  # (args laid out as the specs say: a no-op for the data, which already is)
        on_device,
        mesh=jax.typeof(x_nd).sharding.mesh,
        in_specs=specs,
        out_specs=(tuple(rows_on(ndim, at) for ndim, at in out_rows), jax.P()),
        check_vma=False,  # the loops' zero carries start alike on every device and end as its own partial sums
    )(*args)


def _block(x_nd, weight_n, shift_d, i, size):
    """Block i of x centred on shift_d [size, d] and its rows' weights [size]: 1 on data rows that no earlier
    block covered, else 0 (a weight-0 row reads as zero: masked, and never far enough to overflow)."""
    x_bd, fresh_b = sharding.slid_block(x_nd, i, size)
    m_b = jnp.where(fresh_b, sharding.slid_block(weight_n, i, size)[0], 0.0)
    return jnp.where(m_b[:, None] > 0, x_bd - shift_d, 0.0), m_b


def _scan_blocks(step, carry, x_nd, weight_n, shift_d, block, xs=None):
    """lax.scan of step(carry, x_bd, m_b, xs_b) over the blocks of this device's rows (`_block`)."""
    n_blocks, size = sharding.slid_layout(x_nd.shape[0], block)

    def body(c, inp):
        i, xs_b = inp
        return step(c, *_block(x_nd, weight_n, shift_d, i, size), xs_b)

    return lax.scan(body, carry, (jnp.arange(n_blocks), xs))


def _add_moments(carry, resp, x_bd):
    """(counts [R, k], r^T x [R, k, d]) plus those of the block's responsibilities resp [R, k, b]."""
    nk, sx = carry
    r_, k, _ = sx.shape
    rx = jnp.dot(resp.reshape(r_ * k, -1), x_bd, precision=_HIGHEST, out_sharding=sharding.replicated(x_bd))
    return nk + jnp.sum(resp, axis=-1), sx + rx.reshape(sx.shape)


def _zero_moments(r_, k, d, dtype):
    return jnp.zeros((r_, k), dtype), jnp.zeros((r_, k, d), dtype)


def _e_pass(x_nd, weight_n, shift_d, s: _EM, cov_type, block):
    """E step over all blocks: (responsibilities [nb, R, k, size],), (counts [R, k], r^T x [R, k, d], summed
    log-likelihood [R])."""

    def local(x_nd, weight_n, shift_d, s):
        def step(carry, x_bd, m_b, _):
            lp = _weighted_log_prob(x_bd, s.weights, s.means, s.prec_chol, cov_type)  # [b, R, k]
            lse = jax.nn.logsumexp(lp, axis=2)  # [b, R]
            resp = jnp.transpose(jnp.exp(lp - lse[..., None]), (1, 2, 0)) * m_b  # [R, k, b]
            return _add_moments(carry, resp, x_bd), (resp, jnp.sum(lse * m_b[:, None], axis=0))

        moments, (resp, lse_sums) = _scan_blocks(
            step, _zero_moments(*s.means.shape, x_nd.dtype), x_nd, weight_n, shift_d, block
        )
        return (resp,), (*moments, jnp.sum(lse_sums, axis=0))  # block sums added last: less float32 rounding

    return _per_device(local, x_nd, [(weight_n, 0)], (shift_d, s), ((4, 3),))


def _first_resp(x_nd, weight_n, shift_d, src, k, block):
    """The E step's outputs for initial responsibilities src: labels [n, R] (one-hot; -1: none) or [n, R, k]."""

    def local(x_nd, weight_n, src, shift_d):
        def step(carry, x_bd, m_b, src_b):
            resp = jax.nn.one_hot(src_b, k, dtype=x_bd.dtype) if src_b.ndim == 2 else src_b  # [b, R, k]
            resp = jnp.transpose(resp, (1, 2, 0)) * m_b
            return _add_moments(carry, resp, x_bd), resp

        n_blocks, size = sharding.slid_layout(x_nd.shape[0], block)
        src_bb = jax.vmap(lambda i: sharding.slid_block(src, i, size)[0])(jnp.arange(n_blocks))
        zeros = _zero_moments(src.shape[1], k, x_nd.shape[1], x_nd.dtype)
        moments, resp = _scan_blocks(step, zeros, x_nd, weight_n, shift_d, block, src_bb)
        return (resp,), moments

    return _per_device(local, x_nd, [(weight_n, 0), (src, 0)], (shift_d,), ((4, 3),))


def _m_step(x_nd, weight_n, shift_d, resp, nk, sx, reg_covar, cov_type, n, block):
    """M step from responsibilities [nb, R, k, size]: (weights, means, covariances, precision factors)."""
    d = x_nd.shape[-1]
    nk = nk + 10 * jnp.finfo(x_nd.dtype).eps  # scikit-learn's guard against empty components
    means = sx / nk[..., None]
    r_, k = nk.shape

    def local(x_nd, weight_n, resp, shift_d, means):  # the arguments, not closed over: shard_map takes them apart
        def step(acc, x_bd, _, r_rkb):
            return acc + _scatter(x_bd, r_rkb, means, cov_type), None

        zero = jnp.zeros((r_, *_cov_shape(cov_type, k, d)), x_nd.dtype)
        return (), (_scan_blocks(step, zero, x_nd, weight_n, shift_d, block, resp)[0],)

    _, (scatter,) = _per_device(local, x_nd, [(weight_n, 0), (resp, 3)], (shift_d, means))
    covs = _covariances(scatter, nk, reg_covar, cov_type, d)
    return nk / n, means, covs, _precision_cholesky(covs, cov_type)


def _em_iteration(s: _EM, *, x_nd, weight_n, shift_d, n, tol, max_iter, reg_covar, cov_type, block):
    active = ~s.done
    (resp,), (nk, sx, lse_sum) = _e_pass(x_nd, weight_n, shift_d, s, cov_type, block)
    lower_bound = lse_sum / n
    weights, means, covs, prec_chol = _m_step(x_nd, weight_n, shift_d, resp, nk, sx, reg_covar, cov_type, n, block)
    ok = _valid(prec_chol) & jnp.isfinite(lower_bound)
    upd = active & ok

    def pick(new, old):
        return jnp.where(upd.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    n_iter = s.n_iter + active
    conv = upd & (jnp.abs(lower_bound - s.lower_bound) < tol)
    failed = s.failed | (active & ~ok)
    return _EM(
        weights=pick(weights, s.weights),
        means=pick(means, s.means),
        covs=pick(covs, s.covs),
        prec_chol=pick(prec_chol, s.prec_chol),
        lower_bound=jnp.where(upd, lower_bound, s.lower_bound),
        n_iter=n_iter,
        converged=s.converged | conv,
        failed=failed,
        done=s.done | conv | failed | (n_iter >= max_iter),
    )


def _log_prob_rows(x_nd, shift_d, p: GMMParams, cov_type, block):
    """Per row of x: (log w_k + log N(x | mu_k, Sigma_k) [n, k],), the means of p already centred on shift_d."""

    def local(x_nd, shift_d, p):
        def step(_, x_bd, m_b, __):
            lp = _weighted_log_prob(x_bd, p.weights_k[None], p.means_kd[None], p.precisions_cholesky[None], cov_type)
            return None, lp[:, 0]

        ones_n = jnp.ones_like(x_nd[:, 0])
        return (
            sharding.from_slid_blocks(_scan_blocks(step, None, x_nd, ones_n, shift_d, block)[1], x_nd.shape[0]),
        ), ()

    return _per_device(local, x_nd, [], (shift_d, p), ((2, 0),))[0][0]


# ---------------------------------------------------------------------------
# The fit


@functools.partial(
    jax.jit,
    static_argnames=("n_components", "n_init", "cov_type", "init", "block_size", "given_params", "n_samples"),
)
def _fit(
    key,
    x_nd,
    labels_rn,
    weights_init,
    means_init,
    precisions_init,
    covs_init,
    tol,
    max_iter,
    reg_covar,
    *,
    n_components,
    n_init,
    cov_type,
    init,
    block_size,
    given_params,
    n_samples=None,
):
    # n_samples: None, or the count of leading rows that are data (< n): the rest pad x and are masked out
    # of every sum, as the blocks' own padding is; labels_rn holds -1 there (one_hot: no responsibility).
    n_pad, d = x_nd.shape
    n = n_pad if n_samples is None else n_samples
    k, r_ = n_components, n_init
    dtype = x_nd.dtype
    real_n = kmeans._real_rows(x_nd, n_samples)
    if real_n is None:
        shift_d = jnp.mean(x_nd, axis=0)
        weight_n = jnp.ones_like(x_nd[:, 0])
    else:
        shift_d = jnp.sum(jnp.where(real_n[:, None], x_nd, 0.0), axis=0) / n
        weight_n = real_n.astype(dtype)
    data = (x_nd, weight_n, shift_d)  # the passes centre each block on shift_d as they read it

    # Initial parameters: an M step from initial responsibilities, overridden by whatever was given.
    if given_params:
        w0 = jnp.broadcast_to(weights_init, (r_, k))
        mu0 = jnp.broadcast_to(means_init - shift_d, (r_, k, d))
        cov0 = jnp.broadcast_to(covs_init, (r_, *covs_init.shape))
        pc0 = jnp.broadcast_to(precisions_init, (r_, *precisions_init.shape))
    else:
        if init in ("kmeans", "labels"):
            src = jnp.swapaxes(labels_rn, 0, 1)  # [n, R]: one-hot in the pass
        else:  # scikit-learn's "random": uniform responsibilities, normalised per point
            u = jax.random.uniform(key, (n, r_, k), dtype)  # drawn for the data alone: the unpadded draw
            src = jnp.pad(u / jnp.sum(u, axis=-1, keepdims=True), ((0, n_pad - n), (0, 0), (0, 0)))
        (resp,), (nk, sx) = _first_resp(*data, src, k, block_size)
        w0, mu0, cov0, pc0 = _m_step(*data, resp, nk, sx, reg_covar, cov_type, n, block_size)
        if weights_init is not None:
            w0 = jnp.broadcast_to(weights_init, (r_, k))
        if means_init is not None:
            mu0 = jnp.broadcast_to(means_init - shift_d, (r_, k, d))
        if precisions_init is not None:
            cov0 = jnp.broadcast_to(covs_init, (r_, *covs_init.shape))
            pc0 = jnp.broadcast_to(precisions_init, (r_, *precisions_init.shape))

    failed0 = ~_valid(pc0)
    s = _EM(
        weights=w0,
        means=mu0,
        covs=cov0,
        prec_chol=pc0,
        lower_bound=jnp.full((r_,), -jnp.inf, dtype),
        n_iter=jnp.zeros((r_,), jnp.int32),
        converged=jnp.zeros((r_,), bool),
        failed=failed0,
        done=failed0,
    )
    body = functools.partial(
        _em_iteration,
        x_nd=x_nd,
        weight_n=weight_n,
        shift_d=shift_d,
        n=n,
        tol=tol,
        max_iter=max_iter,
        reg_covar=reg_covar,
        cov_type=cov_type,
        block=block_size,
    )
    s = lax.while_loop(lambda s: ~jnp.all(s.done), body, s)

    per_init = jnp.where(s.failed, -jnp.inf, s.lower_bound)
    best = jnp.argmax(per_init)
    w, mu, pc = s.weights[best], s.means[best], s.prec_chol[best]
    # A last E step, as scikit-learn's: the labels are those of the final parameters.
    params = GMMParams(w, mu + shift_d, s.covs[best], pc)
    labels = jnp.argmax(_log_prob_rows(x_nd, shift_d, params._replace(means_kd=mu), cov_type, block_size), axis=1)
    labels = labels.astype(jnp.int32)
    if real_n is not None:
        labels = jnp.where(real_n, labels, -1)
    res = GMMResult(params, labels, per_init[best], s.n_iter[best], s.converged[best], per_init)
    return res, jnp.all(s.failed)


def _x64(x) -> bool:
    return bool(jax.config.read("jax_enable_x64")) and np.dtype(getattr(x, "dtype", np.float32)) == np.float64


def _default_block(n, r_, k, d):
    """About _BLOCK_FLOATS intermediates per block, the blocks evened out (under 8 rows of padding per block)."""
    target = max(64, _BLOCK_FLOATS // max(1, r_ * k * d))
    n_blocks = -(-n // target)
    per_block = -(-n // n_blocks)
    return int(min(n, -(-per_block // 8) * 8))


def _precisions_to_cholesky(prec, cov_type):
    """Host-side: scikit-learn's _compute_precision_cholesky_from_precisions, and the covariances, in float64."""
    prec = np.asarray(prec, np.float64)
    if cov_type in ("full", "tied"):
        flip = prec[..., ::-1, ::-1]
        chol = np.linalg.cholesky(flip)[..., ::-1, ::-1]  # upper triangular U with U U^T = precision
        return chol, np.linalg.inv(prec)
    return np.sqrt(prec), 1.0 / prec


def _check_inits(weights_init, means_init, precisions_init, k, d, cov_type):
    """Validates explicit initial parameters (scikit-learn's rules); returns float64 NumPy arrays or None."""
    w = mu = pc = cov = None
    if weights_init is not None:
        w = np.asarray(weights_init, np.float64)
        if w.shape != (k,):
            raise ValueError(f"weights_init must have shape [{k}] (n_components), got {w.shape}.")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or np.any(w > 1):
            raise ValueError("weights_init must hold finite values in [0, 1].")
        if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
            raise ValueError(f"weights_init must sum to 1, got {w.sum():.8g}.")
    if means_init is not None:
        mu = np.asarray(means_init, np.float64)
        if mu.shape != (k, d):
            raise ValueError(f"means_init must have shape [{k}, {d}] (n_components, n_features), got {mu.shape}.")
        if not np.all(np.isfinite(mu)):
            raise ValueError("means_init holds NaN or infinite values.")
    if precisions_init is not None:
        p = np.asarray(precisions_init, np.float64)
        want = _cov_shape(cov_type, k, d)
        if cov_type == "tied" and p.shape == (d, d):
            p = p[None]
        if p.shape != want:
            shown = "[d, d]" if cov_type == "tied" else str(list(want))
            raise ValueError(
                f"precisions_init for covariance_type={cov_type!r} must have shape {shown}, got {p.shape}."
            )
        if not np.all(np.isfinite(p)):
            raise ValueError("precisions_init holds NaN or infinite values.")
        if cov_type in ("full", "tied"):
            if not np.allclose(p, np.swapaxes(p, -1, -2)) or np.any(np.linalg.eigvalsh(p) <= 0):
                raise ValueError(f"precisions_init ({cov_type}) must be symmetric and positive definite.")
        elif np.any(p <= 0):
            raise ValueError(f"precisions_init ({cov_type}) must be positive.")
        pc, cov = _precisions_to_cholesky(p, cov_type)
    return w, mu, pc, cov


def _prepare(
    key,
    x,
    n_components,
    covariance_type,
    n_init,
    max_iter,
    tol,
    reg_covar,
    init_params,
    labels_init,
    weights_init,
    means_init,
    precisions_init,
    block_size,
    n_samples=None,
):
    """Checks the public arguments; returns (args, static kwargs) for `_fit` (the k-means labels still to come)."""
    dtype = np.float64 if _x64(x) else np.float32
    x = checks.as_matrix(x, dtype=dtype)
    n, d = x.shape
    n_samples = kmeans._check_n_samples(n_samples, n)
    k = checks.check_n_clusters(n_components, n if n_samples is None else n_samples, "n_components")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}.")
    if init_params not in INIT_PARAMS:
        raise ValueError(
            f"init_params must be one of {INIT_PARAMS}, got {init_params!r}; "
            "pass weights_init, means_init and precisions_init for explicit initial parameters."
        )
    n_init = checks.check_positive_int(n_init, "n_init")
    max_iter = checks.check_positive_int(max_iter, "max_iter")
    tol = checks.check_positive_float(tol, "tol", allow_zero=True)
    reg_covar = checks.check_positive_float(reg_covar, "reg_covar")
    w, mu, pc, cov = _check_inits(weights_init, means_init, precisions_init, k, d, covariance_type)
    given = w is not None and mu is not None and pc is not None
    labels = None
    if given:
        n_init = 1  # every restart would start from the same point
    elif labels_init is not None:
        labels = _check_labels_init(labels_init, n, k, n_samples)
        n_init, init_params = labels.shape[0], "labels"
    if block_size is None:
        block = _default_block(n, n_init, k, d)
    else:
        block = min(checks.check_positive_int(block_size, "block_size"), n)

    def arr(a):
        return None if a is None else jnp.asarray(a, dtype)

    args = (key, jnp.asarray(x, dtype), labels, arr(w), arr(mu), arr(pc), arr(cov), dtype(tol), jnp.int32(max_iter))
    args += (dtype(reg_covar),)
    static = {
        "n_components": k,
        "n_init": n_init,
        "cov_type": covariance_type,
        "init": init_params,
        "block_size": block,
        "given_params": given,
        "n_samples": n_samples,
    }
    return args, static


def _check_labels_init(labels_init, n, k, n_samples=None):
    """labels_init as int32 [R, n]. With n_samples (< n): one label per data row [R, n_samples], or per row of x
    [R, n] whose padding entries are ignored (e.g. a padded k-means' -1); either way -1 on the padding."""
    labels = np.asarray(labels_init)
    if labels.ndim == 1:
        labels = labels[None]
    m = n if n_samples is None else n_samples
    if labels.ndim != 2 or labels.shape[1] not in (m, n):
        shapes = f"[{n}] or [n_init, {n}]" if m == n else f"[{m}] or [n_init, {m}] (or {n}, padding included)"
        raise ValueError(f"labels_init must have shape {shapes} (one label per sample), got {labels.shape}.")
    real = labels[:, :m]
    if labels.dtype.kind not in "iu" or real.min() < 0 or real.max() >= k:
        raise ValueError(f"labels_init must hold integer component ids in [0, {k}).")
    if m < n:
        labels = np.concatenate([real, np.full((labels.shape[0], n - m), -1, real.dtype)], axis=1)
    return jnp.asarray(labels, jnp.int32)


def _kmeans_labels(key, x, k, n_init, timed, n_samples=None):
    """One k-means (n_init=1, as scikit-learn's GMM init) per restart: labels [R, n] (-1 on padding rows),
    compile s, run s."""
    keys = jax.random.split(key, n_init)
    labels, compile_s, run_s = [], 0.0, 0.0
    for i in range(n_init):
        if timed and i == 0:
            # prune=False: it compiles faster, and gives the same labels
            t = kmeans.fit_timed(keys[i], x, k, n_init=1, prune=False, n_samples=n_samples)
            res, compile_s, run_s = t.out, t.compile_seconds, t.run_seconds
        else:
            t0 = time.perf_counter()
            res = jax.block_until_ready(kmeans.fit(keys[i], x, k, n_init=1, prune=False, n_samples=n_samples))
            run_s += time.perf_counter() - t0
        labels.append(res.labels)
    return jnp.stack(labels), compile_s, run_s


def _run(key, x, n_components, kwargs, timed):
    args, static = _prepare(key, x, n_components, **kwargs)
    key_init, key_fit = jax.random.split(args[0])
    args = (key_fit, *args[1:])
    compile_s = run_s = 0.0
    if static["init"] == "kmeans" and not static["given_params"]:
        labels, compile_s, run_s = _kmeans_labels(
            key_init, args[1], static["n_components"], static["n_init"], timed, static["n_samples"]
        )
        args = (args[0], args[1], labels, *args[3:])
    if timed:
        t = timing.compile_and_run(_fit, *args, **static)
        out, compile_s, run_s = t.out, compile_s + t.compile_seconds, run_s + t.run_seconds
    else:
        out = _fit(*args, **static)
    res, all_failed = out
    if bool(all_failed):
        raise ValueError(
            "Fitting the mixture model failed: a covariance matrix stopped being positive definite in every "
            f"restart (a component collapsed onto a point or a subspace, e.g. duplicated or constant data). "
            f"Increase reg_covar (now {kwargs['reg_covar']:g}), use fewer components, or rescale the data."
        )
    return res, compile_s, run_s


def fit(
    key,
    x,
    n_components: int,
    *,
    covariance_type: str = "full",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init_params: str = "kmeans",
    labels_init=None,
    weights_init=None,
    means_init=None,
    precisions_init=None,
    block_size: int | None = None,
    n_samples: int | None = None,
) -> GMMResult:
    """Fits a Gaussian mixture to x [n, d] by EM; returns the restart with the highest lower bound.

    Args:
      key: a jax.random key; the same key gives the same bits.
      x: [n, d] data (NumPy or JAX). Cast to float32 (kept float64 when jax_enable_x64 is on and x is float64).
      n_components: k, 1 <= k <= n.
      covariance_type: "full", "tied", "diag" or "spherical".
      n_init: restarts, run together; the best lower bound wins. Set to 1 when all three inits are given.
      max_iter: EM iterations per restart at most.
      tol: a restart stops when its lower bound (mean log-likelihood) changes by less than tol.
      reg_covar: > 0, added to the covariances' diagonal so they stay positive definite.
      init_params: initial responsibilities: "kmeans" (the labels of one k-means per restart,
        research.cluster.kmeans with n_init=1) or "random" (uniform, normalised per point).
      labels_init: initial hard assignments instead, [n] or [n_init, n] ints in [0, k) (e.g. the labels of
        a k-means already run); they set n_init. With n_samples: n_samples labels per restart, or len(x)
        whose entries on the padding rows are ignored (a padded k-means' labels, -1 there, fit as they are).
      weights_init: [k] initial weights; means_init: [k, d] initial means; precisions_init: initial
        precisions (inverse covariances) of the covariance type's shape (tied: [d, d]). Each one given
        replaces what init_params would give, as in scikit-learn.
      block_size: rows per block of the passes over the data (on each device); default: about 4 MB of
        intermediates.
      n_samples: the first n_samples rows of x are the data; the rows after them only pad x to a length
        that splits evenly over devices (e.g. for `jax.make_array_from_process_local_data`) and are ignored:
        the fit is the one on x[:n_samples] (up to float rounding), its labels -1 on the padding rows.
        None: all rows. An int in [1, len(x)], at least n_components.
    """
    kwargs = {k: v for k, v in locals().items() if k not in ("key", "x", "n_components")}
    return _run(key, x, n_components, kwargs, timed=False)[0]


def fit_timed(key, x, n_components: int, **kwargs) -> timing.Timed:
    """`fit` with compilation and the run timed apart: Timed(out=GMMResult, compile_seconds, run_seconds).

    The k-means initialisation is included: its compilation in compile_seconds, its runs in run_seconds.
    """
    return timing.Timed(*_run(key, x, n_components, timing.keyword_arguments(fit, kwargs), timed=True))


# ---------------------------------------------------------------------------
# Using a fitted model


def _check_params(params, x=None):
    """params as float arrays of consistent shapes, x as a matrix with d features; returns (params, x, type)."""
    if len(params) != 4:
        raise ValueError("params must be a GMMParams (weights_k, means_kd, covariances, precisions_cholesky).")
    dtype = np.float64 if _x64(params[1]) else np.float32
    w, mu, cov, pc = (jnp.asarray(v, dtype) for v in params)
    if w.ndim != 1 or mu.ndim != 2 or mu.shape[0] != w.shape[0]:
        raise ValueError(f"params: weights_k must be [k] and means_kd [k, d], got {w.shape} and {mu.shape}.")
    k, d = mu.shape
    p = GMMParams(w, mu, cov, pc)
    cov_type = covariance_type_of(p) if cov.ndim in (1, 2, 3) else None
    if cov_type is None or cov.shape != _cov_shape(cov_type, k, d) or pc.shape != cov.shape:
        raise ValueError(
            f"params: covariances and precisions_cholesky must both be [k, d, d] (full), [1, d, d] (tied), [k, d] "
            f"(diag) or [k] (spherical) for k={k}, d={d}; got {cov.shape} and {pc.shape}."
        )
    if x is not None:
        x = checks.as_matrix(x, dtype=dtype)
        if x.shape[1] != d:
            raise ValueError(f"x has {x.shape[1]} features but the mixture has {d}.")
        x = jnp.asarray(x, dtype)
    return p, x, cov_type


@functools.partial(jax.jit, static_argnames=("cov_type", "block_size"))
def _log_resp(p: GMMParams, x_nd, *, cov_type, block_size):
    """log p(x_n) [n] and log responsibilities [n, k]."""
    # Densities are translation invariant: centring x and the means on the mixture's mean keeps the
    # E step's x U - mu U free of cancellation for data far from the origin.
    centre = jnp.dot(p.weights_k, p.means_kd, precision=_HIGHEST) / jnp.sum(p.weights_k)
    lp = _log_prob_rows(x_nd, centre, p._replace(means_kd=p.means_kd - centre), cov_type, block_size)
    lse = jax.nn.logsumexp(lp, axis=1)
    return lse, lp - lse[:, None]


def _scores(params, x):
    p, x, cov_type = _check_params(params, x)
    k, d = p.means_kd.shape
    return _log_resp(p, x, cov_type=cov_type, block_size=_default_block(x.shape[0], 1, k, d))


def score_samples(params: GMMParams, x):
    """Log-likelihood log p(x_n) of each row of x [n, d]: [n]."""
    return _scores(params, x)[0]


def score(params: GMMParams, x):
    """Mean log-likelihood per sample of x [n, d] (scikit-learn's score)."""
    return jnp.mean(score_samples(params, x))


def predict_proba(params: GMMParams, x):
    """Posterior probability of each component for each row of x: [n, k]."""
    return jnp.exp(_scores(params, x)[1])


def predict(params: GMMParams, x):
    """Most probable component [n] int32 for each row of x [n, d]."""
    return jnp.argmax(_scores(params, x)[1], axis=1).astype(jnp.int32)


def bic(params: GMMParams, x) -> float:
    """Bayesian information criterion on x [n, d]: -2 log L + n_parameters log n (lower is better)."""
    n = checks.as_matrix(x).shape[0]
    return criteria(params, float(score(params, x)) * n, n)["bic"]


def aic(params: GMMParams, x) -> float:
    """Akaike information criterion on x [n, d]: -2 log L + 2 n_parameters (lower is better)."""
    n = checks.as_matrix(x).shape[0]
    return criteria(params, float(score(params, x)) * n, n)["aic"]


def criteria(params: GMMParams, log_likelihood: float, n: int) -> dict:
    """{"bic", "aic"} of the mixture from the log-likelihood of n rows (for rows summed where they lie, e.g.
    split over processes): -2 log L + n_parameters log n, and -2 log L + 2 n_parameters."""
    p = n_parameters(GMMParams(*params))
    return {"bic": float(-2.0 * log_likelihood + p * math.log(n)), "aic": float(-2.0 * log_likelihood + 2 * p)}


@functools.partial(jax.jit, static_argnames=("n", "cov_type"))
def _sample(key, p: GMMParams, *, n, cov_type):
    k, d = p.means_kd.shape
    key_c, key_z = jax.random.split(key)
    labels = jax.random.categorical(key_c, jnp.log(p.weights_k), shape=(n,)).astype(jnp.int32)
    z = jax.random.normal(key_z, (n, d), p.means_kd.dtype)
    if cov_type in ("full", "tied"):
        chol = jnp.linalg.cholesky(p.covariances)  # [k or 1, d, d]

        def add(j, out):  # one component at a time: memory O(n d), not O(n d^2)
            return jnp.where((labels == j)[:, None], jnp.dot(z, chol[j].T, precision=_HIGHEST), out)

        noise = jnp.dot(z, chol[0].T, precision=_HIGHEST) if cov_type == "tied" else lax.fori_loop(0, k, add, z)
    elif cov_type == "diag":
        noise = z * jnp.sqrt(p.covariances)[labels]
    else:
        noise = z * jnp.sqrt(p.covariances)[labels][:, None]
    return p.means_kd[labels] + noise, labels


def sample(key, params: GMMParams, n: int):
    """n samples from the mixture: (x [n, d], their components [n] int32), in random order."""
    p, _, cov_type = _check_params(params)
    return _sample(key, p, n=checks.check_positive_int(n, "n"), cov_type=cov_type)
