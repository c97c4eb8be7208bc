"""Self-organizing maps (Kohonen): a rectangular grid of units, gaussian neighbourhood, online or batch training.

    o = som.fit(key, x_nd, (16, 16), mode="online")   # SOMResult(codebook_hwd, winners_n, quantization_error, ...)
    u_hw = som.distance_map(o.codebook_hwd); units = som.cluster_units(key, o.codebook_hwd, 10)

Online (`mode="online"`) is MiniSom's `train_random` step for step (asymptotic or exponential decay of the
learning rate and sigma), taken in windows of steps whose distances come from two matrix products per window;
batch (`mode="batch"`) is Kohonen's batch SOM, one pass over the data per epoch. Evaluation (winners,
quantization and topographic error) runs over the samples in blocks.

The windowed update, derived, and the benchmark against MiniSom: docs/design/som.md.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from research import checks, sharding, timing
from research.cluster import kmeans

_HIGHEST = lax.Precision.HIGHEST
_MODES = ("online", "batch")
_DECAYS = ("asymptotic", "exponential")
_INITS = ("pca", "sample", "random")
# "exponential" decay ends at this fraction of the starting value.
_EXP_FINAL = 0.01
_DEFAULT_BLOCK = 4096
_DEFAULT_WINDOW = 64


class SOMResult(NamedTuple):
    """A fitted self-organizing map.

    codebook_hwd: [h, w, d] float32, the unit vectors on the grid (unit (i, j) has flat index i * w + j).
    winners_n: [n] int32, each training sample's best-matching unit (flat index) in the final codebook.
    quantization_error: [] float32, mean Euclidean distance of the samples to their best-matching unit.
    topographic_error: [] float32, fraction of samples whose best and second-best units are not adjacent
      (NaN for a 1 x 1 grid).
    """

    codebook_hwd: jax.Array
    winners_n: jax.Array
    quantization_error: jax.Array
    topographic_error: jax.Array


class UnitClusters(NamedTuple):
    """Clusters of SOM units (k-means on the codebook) and, when samples were given, theirs.

    unit_labels_hw: [h, w] int32 cluster of each unit.
    labels_n: [n] int32 cluster of each sample (that of its best-matching unit), or None without samples.
    """

    unit_labels_hw: jax.Array
    labels_n: jax.Array | None


# ---------------------------------------------------------------------------
# Schedules and neighbourhoods


def _decay(t, total, decay):
    """The factor multiplying sigma and the learning rate at step (or epoch) t of `total`."""
    if decay == "asymptotic":  # MiniSom's asymptotic_decay
        return 1.0 / (1.0 + t / (total / 2.0))
    return _EXP_FINAL ** (t / total)


def _gauss_1d(n, centre, sigma):
    """exp(-(i - centre)^2 / (2 sigma^2)) for i in [0, n): one axis of the separable neighbourhood."""
    return jnp.exp(-((jnp.arange(n, dtype=jnp.float32) - centre) ** 2) / (2.0 * sigma * sigma))


def _neighbourhood(b, sigma, grid):
    """Gaussian neighbourhood [h * w] of the unit with flat index b, as MiniSom computes it (row x column)."""
    h, w = grid
    return jnp.outer(_gauss_1d(h, b // w, sigma), _gauss_1d(w, b % w, sigma)).reshape(-1)


def _neighbourhood_matrix(sigma, grid):
    """G[k, l] = neighbourhood of unit l seen from unit k, [h * w, h * w] (symmetric)."""
    h, w = grid
    r = jnp.arange(h, dtype=jnp.float32)
    c = jnp.arange(w, dtype=jnp.float32)
    g_rr = jnp.exp(-((r[:, None] - r[None, :]) ** 2) / (2.0 * sigma * sigma))
    g_cc = jnp.exp(-((c[:, None] - c[None, :]) ** 2) / (2.0 * sigma * sigma))
    return jnp.kron(g_rr, g_cc)


# ---------------------------------------------------------------------------
# Initialisation


def _pca_axes(x_nd):
    """The mean [d] and the first two principal axes [2, d] (unit norm, largest |entry| positive)."""
    n, d = x_nd.shape
    mean = jnp.mean(x_nd, axis=0)
    xc = x_nd - mean
    if d <= n:  # the [d, d] scatter matrix is the smaller problem
        _, vecs = jnp.linalg.eigh(jnp.dot(xc.T, xc, precision=_HIGHEST, out_sharding=sharding.replicated(xc)))
        axes = vecs[:, ::-1][:, :2].T  # eigh sorts ascending
    else:
        axes = jnp.linalg.svd(sharding.unsharded(xc, xc), full_matrices=False)[2][:2]  # n < d: small, gathered
    # Eigenvectors have no sign of their own; fix one so the same data gives the same map everywhere.
    big = jnp.take_along_axis(axes, jnp.argmax(jnp.abs(axes), axis=1)[:, None], axis=1)
    return mean, axes * jnp.where(big < 0, -1.0, 1.0)


def _init_codebook(key, x_nd, grid, method):
    """[h * w, d] starting codebook (see `initial_codebook`)."""
    h, w = grid
    n, d = x_nd.shape
    if method == "pca":  # MiniSom's pca_weights_init: the grid spans [-1, 1] along each (unit) axis
        mean, axes = _pca_axes(x_nd)
        c1 = jnp.linspace(-1.0, 1.0, h)
        c2 = jnp.linspace(-1.0, 1.0, w)
        c_hwd = mean + c1[:, None, None] * axes[0] + c2[None, :, None] * axes[1]
        return c_hwd.reshape(h * w, d)
    if method == "sample":  # MiniSom's random_weights_init: random samples, with replacement
        return sharding.rows(x_nd, jax.random.randint(key, (h * w,), 0, n))
    # "random": MiniSom's constructor, uniform in [-1, 1]^d scaled to unit length
    c = jax.random.uniform(key, (h * w, d), jnp.float32, -1.0, 1.0)
    return c / jnp.maximum(jnp.linalg.norm(c, axis=1, keepdims=True), jnp.finfo(jnp.float32).tiny)


def _sample_order(key, n, n_steps):
    """Sample index for each online step [n_steps].

    Like MiniSom's train_random, the multiset {t mod n} shuffled, so every sample is used
    floor or ceil of n_steps / n times; the samples are relabelled at random first, so which
    ones get the extra use (and, when n_steps < n, which are used at all) is random too
    rather than the first rows of x.
    """
    k_relabel, k_shuffle = jax.random.split(key)
    relabel = jax.random.permutation(k_relabel, n)
    return jax.random.permutation(k_shuffle, relabel[jnp.arange(n_steps) % n]).astype(jnp.int32)


# ---------------------------------------------------------------------------
# Training


def _online(c_kd, x_nd, order_t, sigma, learning_rate, *, grid, decay, window):
    """MiniSom's online updates for the samples x[order_t], `window` steps at a time; returns the codebook."""
    k, _ = c_kd.shape
    total = order_t.shape[0]
    win = min(window, total)
    n_win = -(-total // win)
    pad = n_win * win - total
    # Padding steps at the end get a zero learning rate: no-ops.
    order_wl = jnp.pad(order_t, (0, pad)).reshape(n_win, win)
    t_wl = jnp.arange(n_win * win, dtype=jnp.float32).reshape(n_win, win)
    onehot_ll = jnp.eye(win, dtype=jnp.float32)

    def one_window(c_kd, inputs):
        idx_l, t_l = inputs
        x_ld = sharding.rows(x_nd, idx_l)
        xc_lk = jnp.dot(x_ld, c_kd.T, precision=_HIGHEST)  # each sample against the window's start codebook
        gram_ll = jnp.dot(x_ld, x_ld.T, precision=_HIGHEST)
        cc_k = jnp.sum(c_kd * c_kd, axis=1)  # exact at each window start, updated within

        def step(j, carry):
            # The codebook at this step is scale_k * c_kd + coef_kl @ x_ld.
            scale_k, coef_kl, cc_k = carry
            wx_k = scale_k * xc_lk[j] + jnp.dot(coef_kl, gram_ll[j], precision=_HIGHEST)  # w . x
            xx = gram_ll[j, j]
            best = jnp.argmin(cc_k - 2.0 * wx_k)  # + |x|^2, the same for every unit
            factor = _decay(t_l[j], total, decay)
            live = (t_l[j] < total).astype(jnp.float32)
            a_k = live * learning_rate * factor * _neighbourhood(best, sigma * factor, grid)
            keep_k = 1.0 - a_k
            cc_k = keep_k * keep_k * cc_k + 2.0 * a_k * keep_k * wx_k + a_k * a_k * xx
            coef_kl = keep_k[:, None] * coef_kl + a_k[:, None] * onehot_ll[j]
            return keep_k * scale_k, coef_kl, cc_k

        init = (jnp.ones((k,), jnp.float32), jnp.zeros((k, win), jnp.float32), cc_k)
        scale_k, coef_kl, _ = lax.fori_loop(0, win, step, init)
        return scale_k[:, None] * c_kd + jnp.dot(coef_kl, x_ld, precision=_HIGHEST), None

    c_kd, _ = lax.scan(one_window, c_kd, (order_wl, t_wl))
    return c_kd


def _batch(c_kd, x_nd, sigma, *, grid, decay, n_epochs, block):
    """Kohonen's batch SOM for n_epochs epochs; returns the codebook."""
    k = c_kd.shape[0]

    def epoch(c_kd, e):
        sig = sigma * _decay(e.astype(jnp.float32), n_epochs, decay)
        best_n = _winners(c_kd, x_nd, block)
        sums_kd = sharding.segment_sum(x_nd, best_n, k)
        counts_k = sharding.segment_sum(jnp.ones_like(best_n, jnp.float32), best_n, k)
        g_kk = _neighbourhood_matrix(sig, grid)
        num_kd = jnp.dot(g_kk, sums_kd, precision=_HIGHEST)
        den_k = jnp.dot(g_kk, counts_k, precision=_HIGHEST)
        # A unit too far from every winner for its weights to register keeps its vector.
        ok = den_k > jnp.finfo(jnp.float32).tiny
        return jnp.where(ok[:, None], num_kd / jnp.where(ok, den_k, 1.0)[:, None], c_kd), None

    c_kd, _ = lax.scan(epoch, c_kd, jnp.arange(n_epochs))
    return c_kd


# ---------------------------------------------------------------------------
# Winners, blocked over the samples


def _map_blocks(x_nd, block, fn):
    """fn(x_bd, valid_b) over consecutive row blocks of x; outputs stacked [n_blocks, ...].

    The last block is slid back to end at row n (no padded copy of x); its rows already
    covered by the previous block have valid = False. With the rows sharded on an explicit mesh, the blocks
    span the devices instead (`sharding.to_blocks`, zero rows padded in with valid = False).
    """
    n = x_nd.shape[0]
    shards = sharding.sample_shards(x_nd)
    if shards > 1:
        valid = sharding.to_blocks(jnp.ones_like(x_nd[:, 0], bool), block, shards)
        return lax.map(lambda a: fn(*a), (sharding.to_blocks(x_nd, block, shards), valid))
    n_blocks, size = sharding.slid_layout(n, block)
    return lax.map(lambda i: fn(*sharding.slid_block(x_nd, i, size)), jnp.arange(n_blocks))


def _unblock(v_bb, x_nd):
    """Per-sample values [n, ...] from `_map_blocks(x_nd, ...)` outputs [n_blocks, size, ...] (drops the slid-back
    overlap, or the padding)."""
    n, shards = x_nd.shape[0], sharding.sample_shards(x_nd)
    if shards > 1:
        return sharding.from_blocks(v_bb, n, shards)
    return sharding.from_slid_blocks(v_bb, n)


def _sq_dist(x_bd, c_kd, cc_k):
    # |x|^2 is left out: the same for every unit, it does not move the argmin.
    return cc_k[None, :] - 2.0 * jnp.dot(x_bd, c_kd.T, precision=_HIGHEST)


def _winners(c_kd, x_nd, block):
    cc_k = jnp.sum(c_kd * c_kd, axis=1)
    best_bb = _map_blocks(x_nd, block, lambda x_bd, _: jnp.argmin(_sq_dist(x_bd, c_kd, cc_k), axis=1))
    return _unblock(best_bb, x_nd).astype(jnp.int32)


def _evaluate(c_kd, x_nd, grid, block):
    """Winners [n], quantization error and topographic error of x against the codebook."""
    h, w = grid
    k = c_kd.shape[0]
    cc_k = jnp.sum(c_kd * c_kd, axis=1)

    def block_stats(x_bd, valid_b):
        sq_bk = _sq_dist(x_bd, c_kd, cc_k)
        best_b = jnp.argmin(sq_bk, axis=1)
        # The distance itself by direct differences, free of the expansion's cancellation.
        dist_b = jnp.sqrt(jnp.sum((x_bd - sharding.lookup(c_kd, best_b)) ** 2, axis=1))
        qe_sum = jnp.sum(jnp.where(valid_b, dist_b, 0.0))
        if k == 1:
            return best_b, qe_sum, jnp.float32(0.0)
        second_b = jnp.argmin(jnp.where(jnp.arange(k) == best_b[:, None], jnp.inf, sq_bk), axis=1)
        # MiniSom's rule: adjacent means the 8-neighbourhood (grid distance <= sqrt(2)).
        far = (jnp.abs(best_b // w - second_b // w) > 1) | (jnp.abs(best_b % w - second_b % w) > 1)
        return best_b, qe_sum, jnp.sum(jnp.where(valid_b & far, 1.0, 0.0))

    best_bb, qe_b, te_b = _map_blocks(x_nd, block, block_stats)
    n = x_nd.shape[0]
    te = jnp.float32(jnp.nan) if h * w == 1 else jnp.sum(te_b) / n
    return _unblock(best_bb, x_nd).astype(jnp.int32), jnp.sum(qe_b) / n, te


# ---------------------------------------------------------------------------
# fit


@functools.partial(jax.jit, static_argnames=("grid", "mode", "n_steps", "n_epochs", "decay", "init", "window", "block"))
def _fit(key, x_nd, init_kd, sigma, learning_rate, *, grid, mode, n_steps, n_epochs, decay, init, window, block):
    h, w = grid
    x_nd = x_nd.astype(jnp.float32)
    k_init, k_order = jax.random.split(key)
    c_kd = _init_codebook(k_init, x_nd, grid, init) if init_kd is None else init_kd.astype(jnp.float32)
    if mode == "online":
        order_t = _sample_order(k_order, x_nd.shape[0], n_steps)
        c_kd = _online(c_kd, x_nd, order_t, sigma, learning_rate, grid=grid, decay=decay, window=window)
    else:
        c_kd = _batch(c_kd, x_nd, sigma, grid=grid, decay=decay, n_epochs=n_epochs, block=block)
    winners_n, qe, te = _evaluate(c_kd, x_nd, grid, block)
    return SOMResult(c_kd.reshape(h, w, -1), winners_n, qe, te)


def _check_grid(grid):
    try:
        h, w = grid
    except (TypeError, ValueError):
        raise ValueError(f"grid must be a pair (rows, cols), got {grid!r}.") from None
    for v, name in ((h, "grid rows"), (w, "grid cols")):
        if isinstance(v, bool) or int(v) != v or int(v) < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}; a map needs at least one unit.")
    return int(h), int(w)


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return value


def _check_init(init, grid, x):
    """(init codebook [k, d] or None, method name) from a method name or an explicit [h, w, d] codebook."""
    h, w = grid
    d = x.shape[1]
    if isinstance(init, str):
        _check_choice(init, _INITS, "init")
        if init == "pca" and d < 2:
            raise ValueError(f"init='pca' needs at least 2 features, x has {d}; use init='sample'.")
        return None, init
    c = np.asarray(init, np.float32)
    if c.shape != (h, w, d):
        raise ValueError(
            f"an init codebook must have shape [{h}, {w}, {d}] (grid rows, cols, features), got {c.shape}."
        )
    if not np.all(np.isfinite(c)):
        raise ValueError("the init codebook holds NaN or infinite values.")
    return jnp.asarray(c.reshape(h * w, d)), "given"


def default_n_steps(grid) -> int:
    """Online steps when none are given: 500 per unit, Kohonen's rule of thumb."""
    h, w = _check_grid(grid)
    return 500 * h * w


def _prepare(key, x, grid, mode, n_steps, n_epochs, sigma, learning_rate, decay, init, window, block_size):
    """Checks the public arguments; returns (args, static kwargs) for `_fit`."""
    x = checks.as_matrix(x)
    h, w = _check_grid(grid)
    _check_choice(mode, _MODES, "mode")
    _check_choice(decay, _DECAYS, "decay")
    n_steps = default_n_steps((h, w)) if n_steps is None else checks.check_positive_int(n_steps, "n_steps")
    n_epochs = checks.check_positive_int(n_epochs, "n_epochs")
    sigma = max(h, w) / 4.0 if sigma is None else checks.check_positive_float(sigma, "sigma")
    learning_rate = checks.check_positive_float(learning_rate, "learning_rate")
    window = min(_DEFAULT_WINDOW, x.shape[1]) if window is None else checks.check_positive_int(window, "window")
    block = checks.check_positive_int(block_size, "block_size")
    init_kd, method = _check_init(init, (h, w), x)
    args = (key, jnp.asarray(x), init_kd, jnp.float32(sigma), jnp.float32(learning_rate))
    static = {
        "grid": (h, w),
        "mode": mode,
        # The unused one is pinned, so that changing it does not recompile.
        "n_steps": n_steps if mode == "online" else 1,
        "n_epochs": n_epochs if mode == "batch" else 1,
        "decay": decay,
        "init": method,
        "window": window if mode == "online" else 1,
        "block": block,
    }
    return args, static


def fit(
    key,
    x,
    grid=(16, 16),
    *,
    mode: str = "online",
    n_steps: int | None = None,
    n_epochs: int = 20,
    sigma: float | None = None,
    learning_rate: float = 0.5,
    decay: str = "asymptotic",
    init="pca",
    window: int | None = None,
    block_size: int = _DEFAULT_BLOCK,
) -> SOMResult:
    """Trains a self-organizing map on x [n, d]; returns the codebook and the fit's winners, QE and TE.

    Args:
      key: a jax.random key (initialisation and sample order); the same key gives the same bits.
      x: [n, d] data, cast to float32.
      grid: (rows, cols) of the rectangular map.
      mode: "online" (MiniSom's train_random update, one sample per step) or "batch" (Kohonen's batch SOM).
      n_steps: online steps (one sample each). Default 500 x units, Kohonen's rule of thumb.
      n_epochs: batch epochs (each a pass over all samples).
      sigma: starting width of the gaussian neighbourhood, in grid cells. Default max(rows, cols) / 4.
      learning_rate: starting learning rate (online only; the batch SOM takes weighted means).
      decay: how sigma and the learning rate shrink over the steps (epochs):
        "asymptotic" x0 / (1 + t / (T / 2)) (MiniSom's default) or "exponential" x0 * 0.01^(t / T).
      init: "pca" (the plane of the first two principal axes through the mean, grid coordinates
        spanning [-1, 1] on each, as MiniSom's pca_weights_init), "sample" (random samples), "random"
        (uniform in [-1, 1]^d scaled to unit length, MiniSom's default), or a codebook [rows, cols, d].
      window: online steps taken per pass over the codebook (see the module docstring); default
        min(64, d). Only rounding depends on it.
      block_size: samples per block when finding winners.
    """
    args, static = _prepare(
        key, x, grid, mode, n_steps, n_epochs, sigma, learning_rate, decay, init, window, block_size
    )
    return _fit(*args, **static)


def fit_timed(key, x, grid=(16, 16), **kwargs) -> timing.Timed:
    """`fit` with compilation and the run timed apart: Timed(out=SOMResult, compile_seconds, run_seconds)."""
    return timing.fit_timed(fit, _prepare, _fit, key, x, grid, **kwargs)


@functools.partial(jax.jit, static_argnames=("grid", "init"))
def _initial(key, x_nd, *, grid, init):
    h, w = grid
    return _init_codebook(jax.random.split(key)[0], x_nd.astype(jnp.float32), grid, init).reshape(h, w, -1)


def initial_codebook(key, x, grid=(16, 16), init: str = "pca"):
    """The codebook [rows, cols, d] that `fit(key, x, grid, init=init)` starts from."""
    x = checks.as_matrix(x)
    grid = _check_grid(grid)
    _, method = _check_init(init, grid, x)
    if method == "given":
        raise ValueError("initial_codebook takes an init method name, not a codebook.")
    return _initial(key, jnp.asarray(x), grid=grid, init=method)


# ---------------------------------------------------------------------------
# Using a codebook


def _check_codebook(codebook, x=None):
    """(codebook [k, d] float32, grid, x [n, d] float32 or None), checked."""
    shape = tuple(np.shape(codebook))
    if len(shape) != 3:
        raise ValueError(f"codebook must be 3-D [rows, cols, features], got shape {shape}.")
    if min(shape) < 1:
        raise ValueError(f"codebook is empty (shape {shape}).")
    h, w, d = shape
    c = checks.as_matrix(jnp.asarray(codebook, jnp.float32).reshape(h * w, d), "codebook")
    if x is None:
        return c, (h, w), None
    x = checks.as_matrix(x)
    if x.shape[1] != d:
        raise ValueError(f"x has {x.shape[1]} features but the codebook has {d}.")
    return c, (h, w), jnp.asarray(x, jnp.float32)


_winners_jit = jax.jit(_winners, static_argnames=("block",))
_evaluate_jit = jax.jit(_evaluate, static_argnames=("grid", "block"))


def winner(codebook, x, *, coords: bool = False, block_size: int = _DEFAULT_BLOCK):
    """Best-matching unit of each row of x [n, d]: flat index [n] int32 (row * cols + col), or [n, 2] (row, col)."""
    c_kd, (_, w), x_nd = _check_codebook(codebook, x)
    best = _winners_jit(c_kd, x_nd, block=checks.check_positive_int(block_size, "block_size"))
    return jnp.stack([best // w, best % w], axis=1) if coords else best


def quantization_error(codebook, x, *, block_size: int = _DEFAULT_BLOCK) -> jax.Array:
    """Mean Euclidean distance from each row of x [n, d] to its best-matching unit (MiniSom's definition)."""
    c_kd, grid, x_nd = _check_codebook(codebook, x)
    return _evaluate_jit(c_kd, x_nd, grid, checks.check_positive_int(block_size, "block_size"))[1]


def topographic_error(codebook, x, *, block_size: int = _DEFAULT_BLOCK) -> jax.Array:
    """Fraction of rows of x whose best and second-best units are not grid neighbours (8-neighbourhood).

    MiniSom's rectangular rule (grid distance > sqrt(2) is an error). NaN for a 1 x 1 map.
    """
    c_kd, grid, x_nd = _check_codebook(codebook, x)
    return _evaluate_jit(c_kd, x_nd, grid, checks.check_positive_int(block_size, "block_size"))[2]


@functools.partial(jax.jit, static_argnames=("grid", "scaling"))
def _distance_map(c_kd, *, grid, scaling):
    h, w = grid
    c_hwd = c_kd.reshape(h, w, -1)
    padded = jnp.pad(c_hwd, ((1, 1), (1, 1), (0, 0)))
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    total = jnp.zeros((h, w), jnp.float32)
    count = np.zeros((h, w))
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == dj == 0:
                continue
            inside = (rows + di >= 0) & (rows + di < h) & (cols + dj >= 0) & (cols + dj < w)
            other = padded[1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
            dist = jnp.sqrt(jnp.sum((c_hwd - other) ** 2, axis=-1))
            total = total + jnp.where(inside, dist, 0.0)
            count = count + inside
    um = total / np.maximum(count, 1) if scaling == "mean" else total
    top = jnp.max(um)
    return jnp.where(top > 0, um / jnp.where(top > 0, top, 1.0), 0.0)


def distance_map(codebook, *, scaling: str = "mean") -> jax.Array:
    """U-matrix [rows, cols]: each unit's mean ("mean") or summed ("sum") Euclidean distance to its
    8 grid neighbours, divided by the largest (so the map lies in [0, 1]; all zeros if every unit is equal).

    scaling="sum" is MiniSom's distance_map() default.
    """
    c_kd, grid, _ = _check_codebook(codebook)
    return _distance_map(c_kd, grid=grid, scaling=_check_choice(scaling, ("mean", "sum"), "scaling"))


def cluster_units(key, codebook, n_clusters: int, x=None, *, n_init: int = 10) -> UnitClusters:
    """Groups the map's units by k-means on their codebook vectors; samples take their winner's group.

    Returns UnitClusters(unit_labels_hw [rows, cols], labels_n [n] or None when x is None).
    """
    c_kd, (h, w), x_nd = _check_codebook(codebook, x)
    if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters or not 1 <= int(n_clusters) <= h * w:
        raise ValueError(
            f"n_clusters must be a whole number in [1, {h * w}] (the number of SOM units), got {n_clusters!r}; "
            "use a larger grid for more clusters."
        )
    # A codebook is small: Hamerly pruning would save nothing and costs compile time.
    res = kmeans.fit(key, c_kd, int(n_clusters), n_init=n_init, prune=False)
    unit_labels = res.labels.astype(jnp.int32)
    labels = None if x_nd is None else unit_labels[_winners_jit(c_kd, x_nd, block=_DEFAULT_BLOCK)]
    return UnitClusters(unit_labels.reshape(h, w), labels)
