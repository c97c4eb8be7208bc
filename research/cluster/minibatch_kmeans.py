"""Mini-batch k-means (Sculley 2010) for data larger than memory, in scikit-learn's MiniBatchKMeans variant.

    res = minibatch_kmeans.fit(key, np.load(path, mmap_mode="r"), 10, batch_size=1024)   # KMeansResult
    labels_n, inertia = minibatch_kmeans.labels_inertia(res.centroids, x_nd)              # streamed

x [n, d] stays where it is (a memory-mapped .npy, any NumPy array); one random batch at a time goes to the
device. Seeding: k-means++ candidates on subsamples; steps: per-centroid learning rates, small centroids
reassigned; stop: `max_iter` epochs, no improvement of the smoothed batch inertia, or `tol`. One jitted,
donated step; the host reads the next batch while the device runs the last one, and releases the mapped pages
now and then, so the process allocates a batch and a chunk whatever the size of the file.

Design and measurements: docs/design/kmeans.md#mini-batch-k-means-on-memory-mapped-data.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from research import checks, timing
from research.cluster import kmeans
from research.cluster.kmeans import KMeansResult

__all__ = ["KMeansResult", "fit", "fit_timed", "labels_inertia"]

_HIGHEST = lax.Precision.HIGHEST
# Rows per chunk of the streamed passes: this many bytes of float32.
_CHUNK_BYTES = 64 << 20
# Let go of a memory-mapped array's pages after this many batches. A row read from a map brings the pages
# around it into the process too (fault-around, or a whole large folio on recent kernels), and mapping them
# again after every batch costs more than the step, so the loop lets go only now and then (measured:
# docs/design/kmeans.md).
_RELEASE_EVERY = 64


class MiniBatchState(NamedTuple):
    """The state a step carries; a pytree of device arrays, donated to the next step."""

    centers: jax.Array  # [k, d] float32
    # [k] samples assigned to each centroid so far. float32: past 2^24 per centroid an increment rounds to the
    # count's spacing, an error in the learning rate of at most spacing / batch count (1/16 at 2^28 with
    # batches of 1024 over 10 centroids), where int32 would overflow at 2^31.
    counts: jax.Array
    key: jax.Array  # reassignment draws: fold_in(key, step)
    step: jax.Array  # [] int32, steps taken
    since_reassign: jax.Array  # [] int32, samples since the last reassignment check
    ewa: jax.Array  # [] float32, smoothed per-sample batch inertia
    ewa_min: jax.Array  # [] float32
    no_improvement: jax.Array  # [] int32, steps since ewa last improved
    stopped: jax.Array  # [] bool
    converged: jax.Array  # [] bool, stopped by tol or max_no_improvement (not by the step cap)
    n_reassigned: jax.Array  # [] int32, centroids reassigned so far


class _Const(NamedTuple):
    """Per-run constants, traced (changing them does not recompile)."""

    alpha: jax.Array  # EWA weight: 2 batch_size / (n + 1), at most 1
    tol: jax.Array  # absolute tolerance on the squared centroid shift; 0: off
    reassignment_ratio: jax.Array
    max_no_improvement: jax.Array  # 0: off
    n_steps: jax.Array  # step cap


def _sq_dist(x_bd, c_kd):
    xx = jnp.sum(x_bd * x_bd, axis=-1)
    cc = jnp.sum(c_kd * c_kd, axis=-1)
    return jnp.maximum(xx[:, None] - 2.0 * jnp.dot(x_bd, c_kd.T, precision=_HIGHEST) + cc[None, :], 0.0)


def _reassign(x_bd, centers, counts, key, ratio):
    """scikit-learn's random reassignment: centroids with counts under ratio x the largest move to batch points.

    At most batch_size // 2 centroids (those of smallest count) move, each to a
    distinct random point of the batch; their counts become the smallest count
    among the centroids that stay, so that they are not reassigned again at once.
    Returns (centers, counts, number moved).
    """
    b, k = x_bd.shape[0], centers.shape[0]
    # Rank of each count, ties by index: a [k, k] comparison compiles much faster than two sorts.
    idx = jnp.arange(k)
    before = (counts[None, :] < counts[:, None]) | (
        (counts[None, :] == counts[:, None]) & (idx[None, :] < idx[:, None])
    )
    rank_k = jnp.sum(before, axis=1)
    to_re = (counts < ratio * jnp.max(counts)) & (rank_k < b // 2)
    m = min(k, b)
    # m distinct batch rows, uniformly: the largest of b uniform draws (top_k compiles faster than a permutation).
    _, pick = lax.top_k(jax.random.uniform(key, (b,)), m)
    slot = jnp.clip(jnp.cumsum(to_re) - 1, 0, m - 1)
    centers = jnp.where(to_re[:, None], x_bd[pick[slot]], centers)
    floor = jnp.min(jnp.where(to_re, jnp.inf, counts))
    counts = jnp.where(to_re, floor, counts)
    return centers, counts, jnp.sum(to_re).astype(jnp.int32)


def _step_impl(s: MiniBatchState, batch_bd, c: _Const):
    def run(s):
        x = batch_bd.astype(jnp.float32)
        b, k = x.shape[0], s.centers.shape[0]
        sq = _sq_dist(x, s.centers)
        labels = jnp.argmin(sq, axis=-1)
        batch_inertia = jnp.sum(jnp.min(sq, axis=-1))
        # Decided on the counts before this batch, as scikit-learn does.
        since = s.since_reassign + b
        check = jnp.any(s.counts == 0) | (since >= 10 * k)
        since = jnp.where(check, 0, since)

        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype)
        bsum = jnp.dot(onehot.T, x, precision=_HIGHEST)
        bcount = jnp.sum(onehot, axis=0)
        counts = s.counts + bcount
        # c + lr (batch mean - c), lr = batch count / total count: the running mean of all members.
        lr_k = bcount / jnp.maximum(counts, 1.0)
        mean = bsum / jnp.maximum(bcount, 1.0)[:, None]
        centers = jnp.where((bcount > 0)[:, None], s.centers + lr_k[:, None] * (mean - s.centers), s.centers)

        moved = jnp.zeros((), jnp.int32)
        key = jax.random.fold_in(s.key, s.step)
        centers, counts, moved = lax.cond(
            check & (c.reassignment_ratio > 0),
            lambda: _reassign(x, centers, counts, key, c.reassignment_ratio),
            lambda: (centers, counts, moved),
        )

        # Early stopping as scikit-learn: the first step's inertia (from the seeding) is ignored.
        shift = jnp.sum((centers - s.centers) ** 2)
        per_sample = batch_inertia / b
        first, second = s.step == 0, s.step == 1
        ewa = jnp.where(second, per_sample, s.ewa * (1 - c.alpha) + per_sample * c.alpha)
        ewa = jnp.where(first, s.ewa, ewa)
        improved = ewa < s.ewa_min
        no_imp = jnp.where(first | improved, 0, s.no_improvement + 1)
        ewa_min = jnp.where(first, s.ewa_min, jnp.minimum(ewa, s.ewa_min))
        conv = ~first & (
            ((c.tol > 0) & (shift <= c.tol)) | ((c.max_no_improvement > 0) & (no_imp >= c.max_no_improvement))
        )
        step = s.step + 1
        return MiniBatchState(
            centers=centers,
            counts=counts,
            key=s.key,
            step=step,
            since_reassign=since,
            ewa=ewa,
            ewa_min=ewa_min,
            no_improvement=no_imp,
            stopped=conv | (step >= c.n_steps),
            converged=conv,
            n_reassigned=s.n_reassigned + moved,
        )

    # A stopped state stays as it is: the host may dispatch one step past the stop.
    s = lax.cond(s.stopped, lambda s: s, run, s)
    return s, s.stopped


_step = jax.jit(_step_impl, donate_argnums=0)


@jax.jit
def _assign(c_kd, x_bd, n_valid):
    """Nearest centroid of each row [b] int32 and the summed squared distance of the first n_valid rows."""
    x = x_bd.astype(jnp.float32)
    labels = jnp.argmin(_sq_dist(x, c_kd), axis=-1).astype(jnp.int32)
    # Direct differences, free of the expansion's cancellation.
    d = jnp.sum((x - c_kd[labels]) ** 2, axis=-1)
    return labels, jnp.sum(jnp.where(jnp.arange(x.shape[0]) < n_valid, d, 0.0))


def _chunk_rows(d: int, chunk_size: int | None) -> int:
    return chunk_size or max(1, _CHUNK_BYTES // (4 * d))


def _labels_inertia(x, c_kd, chunk: int, assign=_assign):
    """Labels [n] int32 (host) and inertia (float) of x against c_kd, read in chunks of rows.

    Every chunk has the same shape (the last is zero-padded), so `assign` compiles once. Chunk i's result
    is collected after chunk i + 1 is dispatched, so the device always has the next chunk queued.
    """
    n, d = x.shape
    labels = np.empty((n,), np.int32)
    total = 0.0
    pending = None
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        m = part.shape[0]
        if m < chunk:
            part = np.concatenate([part, np.zeros((chunk - m, d), part.dtype)])
        out = assign(c_kd, part, jnp.int32(m))
        checks.release_mapped_pages(x)
        if pending is not None:
            total += _collect(labels, *pending)
        pending = (start, m, out)
    total += _collect(labels, *pending)
    return labels, total


def _collect(labels, start, m, out):
    lab, inertia = out
    labels[start : start + m] = np.asarray(lab)[:m]
    return float(inertia)


def labels_inertia(centroids, x, *, chunk_size: int | None = None):
    """Nearest-centroid labels [n] int32 (NumPy) and the inertia (float) of x [n, d], streamed in chunks.

    x may be a memory-mapped array larger than memory; `chunk_size` rows at a time (default: 64 MiB of
    float32) are on the device.
    """
    c = jnp.asarray(checks.as_matrix(centroids, "centroids"), jnp.float32)
    x = checks.as_streamed_matrix(_host(x))
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but the centroids have {c.shape[1]}.")
    chunk = _chunk_rows(x.shape[1], None if chunk_size is None else checks.check_positive_int(chunk_size, "chunk_size"))
    return _labels_inertia(x, c, min(chunk, x.shape[0]))


def _host(x):
    """NumPy arrays (memory-mapped ones included) as they are; anything else through np.asarray."""
    return x if isinstance(x, np.ndarray) else np.asarray(x)


class _Config(NamedTuple):
    n_clusters: int
    batch_size: int
    n_init: int
    max_iter: int
    max_no_improvement: int
    tol: float
    init: object
    init_size: int
    reassignment_ratio: float
    chunk: int


def _prepare(
    x, n_clusters, batch_size, n_init, max_iter, max_no_improvement, tol, init, init_size, reassignment_ratio, chunk
):
    x = checks.as_streamed_matrix(_host(x))
    n, d = x.shape
    k = checks.check_n_clusters(n_clusters, n)
    batch_size = checks.check_positive_int(batch_size, "batch_size")
    n_init = checks.check_positive_int(n_init, "n_init")
    max_iter = checks.check_positive_int(max_iter, "max_iter")
    max_no = 0 if max_no_improvement is None else checks.check_positive_int(max_no_improvement, "max_no_improvement")
    if not (float(tol) >= 0 and math.isfinite(float(tol))):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}.")
    if not (float(reassignment_ratio) >= 0 and math.isfinite(float(reassignment_ratio))):
        raise ValueError(f"reassignment_ratio must be a finite number >= 0, got {reassignment_ratio!r}.")
    if init_size is None:
        init_size = 3 * batch_size if 3 * batch_size >= k else 3 * k
    init_size = min(checks.check_positive_int(init_size, "init_size"), n)
    if init_size < k:
        raise ValueError(f"init_size={init_size} is smaller than n_clusters={k}; use init_size >= {k}.")
    c_1kd, init = kmeans._check_init(init, k, 1, d)
    if c_1kd is not None:
        init, n_init = c_1kd[0], 1
    chunk = min(n, _chunk_rows(d, None if chunk is None else checks.check_positive_int(chunk, "chunk_size")))
    cfg = _Config(
        k, batch_size, n_init, max_iter, max_no, float(tol), init, init_size, float(reassignment_ratio), chunk
    )
    return x, cfg


def _rows(x, idx):
    """x[idx] for sorted indices, as a float32-castable NumPy array (one sweep through a memory map)."""
    return np.asarray(x[idx])


def _seed(key, x, cfg: _Config, rng, assign=_assign):
    """The initial centroids [k, d], chosen among `n_init` candidates by inertia on a validation subsample.

    Returns (centroids, inertia of every candidate [n_init], mean feature variance of the validation rows).
    """
    n = x.shape[0]
    x_valid = _rows(x, np.sort(rng.integers(0, n, cfg.init_size)))
    var = float(np.mean(np.var(x_valid.astype(np.float64), axis=0)))
    keys = jax.random.split(key, cfg.n_init)
    candidates, costs = [], []
    for r in range(cfg.n_init):
        if isinstance(cfg.init, str):
            x_init = _rows(x, np.sort(rng.integers(0, n, cfg.init_size)))
            if cfg.init == "k-means++":
                c = kmeans.kmeans_plusplus(keys[r], x_init.astype(np.float32), cfg.n_clusters)
            else:  # k distinct rows of the subsample
                c = jnp.asarray(x_init[np.asarray(jax.random.choice(keys[r], len(x_init), (cfg.n_clusters,), False))])
        else:
            c = cfg.init
        c = jnp.asarray(c, jnp.float32)
        candidates.append(c)
        costs.append(float(assign(c, x_valid, jnp.int32(len(x_valid)))[1]))
        checks.release_mapped_pages(x)
    best = int(np.argmin(costs))
    return candidates[best], np.asarray(costs, np.float32), var


def _run(key, x, cfg: _Config, step=_step, assign=_assign):
    """The whole fit; `step` and `assign` may be ahead-of-time compiled versions of `_step` and `_assign`."""
    n, _ = x.shape
    k_seed, k_steps, k_host = jax.random.split(key, 3)
    # One NumPy generator for every host-side draw (subsamples, batch indices), seeded from the key.
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_host)).tolist())
    checks.expect_access(x, "random")  # subsamples and batches: rows here and there, no read-ahead
    centers, costs, var = _seed(k_seed, x, cfg, rng, assign)
    state = _init_state(centers, k_steps)
    const = _const(cfg, n, var)
    n_steps = int(const.n_steps)

    # The stop flag is read one step late (see the module docstring).
    stop_prev = None
    for i in range(n_steps):
        batch = _rows(x, np.sort(rng.integers(0, n, cfg.batch_size)))
        state, stop = step(state, batch, const)
        if i % _RELEASE_EVERY == 0:
            checks.release_mapped_pages(x)
        if stop_prev is not None and bool(stop_prev):
            break
        stop_prev = stop
    checks.release_mapped_pages(x)

    checks.expect_access(x, "sequential")  # the labelling pass reads the rows in order
    labels, inertia = _labels_inertia(x, state.centers, cfg.chunk, assign)
    if not np.isfinite(inertia):  # float32 overflow: the distances of rows this large are meaningless
        raise ValueError(
            f"the inertia overflowed float32 (max |centroid| = {float(jnp.max(jnp.abs(state.centers))):.3g}): x "
            "is too large for float32 k-means. Standardise the features (subtract the mean, divide by the "
            "standard deviation) or rescale them."
        )
    result = KMeansResult(
        centroids=state.centers,
        labels=jnp.asarray(labels),
        inertia=jnp.float32(inertia),
        n_iter=state.step,
        converged=state.converged,
        inertia_per_init=jnp.asarray(costs),
    )
    return result, state


def _init_state(centers, key):
    k = centers.shape[0]
    return MiniBatchState(
        centers=centers,
        counts=jnp.zeros((k,), jnp.float32),
        key=key,
        step=jnp.zeros((), jnp.int32),
        since_reassign=jnp.zeros((), jnp.int32),
        ewa=jnp.zeros((), jnp.float32),
        ewa_min=jnp.full((), jnp.inf, jnp.float32),
        no_improvement=jnp.zeros((), jnp.int32),
        stopped=jnp.zeros((), bool),
        converged=jnp.zeros((), bool),
        n_reassigned=jnp.zeros((), jnp.int32),
    )


def _const(cfg: _Config, n: int, var: float) -> _Const:
    return _Const(
        alpha=jnp.float32(min(cfg.batch_size * 2.0 / (n + 1), 1.0)),
        tol=jnp.float32(cfg.tol * var),
        reassignment_ratio=jnp.float32(cfg.reassignment_ratio),
        max_no_improvement=jnp.int32(cfg.max_no_improvement),
        n_steps=jnp.int32(max(1, min((cfg.max_iter * n) // cfg.batch_size, np.iinfo(np.int32).max))),
    )


def fit(
    key,
    x,
    n_clusters: int,
    *,
    batch_size: int = 1024,
    n_init: int = 3,
    max_iter: int = 100,
    max_no_improvement: int | None = 10,
    tol: float = 0.0,
    init="k-means++",
    init_size: int | None = None,
    reassignment_ratio: float = 0.01,
    chunk_size: int | None = None,
) -> KMeansResult:
    """Fits mini-batch k-means to x [n, d] read batch by batch; x may be larger than memory.

    Args:
      key: a jax.random key; the same key gives the same bits (batches and
        subsamples are drawn on the host by a NumPy generator seeded from it).
      x: [n, d] NumPy array, typically `np.load(path, mmap_mode="r")`; any dtype,
        each batch is cast to float32. Other arrays go through np.asarray.
      n_clusters: k, 1 <= k <= n.
      batch_size: rows per step.
      n_init: seeding candidates (k-means++ on `init_size` random rows each); the
        one with the lowest inertia on a validation subsample starts the run.
      max_iter: epochs at most: the run takes at most max_iter * n // batch_size steps.
      max_no_improvement: stop when the smoothed batch inertia has not improved for
        this many steps; None: never.
      tol: stop when a step moves the centroids by at most tol x mean feature variance
        (squared, summed over centroids); 0 (default): off.
      init: "k-means++", "random" (k distinct rows of the subsample), or centroids [k, d].
      init_size: rows per seeding subsample; default 3 x batch_size (3 k if that is smaller than k).
      reassignment_ratio: centroids with a count under this fraction of the largest
        are moved to random batch points (every 10 k samples); 0: never.
      chunk_size: rows per chunk of the final labelling pass (default: 64 MiB of float32).

    Returns:
      KMeansResult: centroids [k, d]; labels [n] and inertia (sum of squared distances to the nearest
      centroid) over all of x, from a streamed pass; n_iter = mini-batch steps taken (epochs =
      n_iter x batch_size / n); converged = stopped by max_no_improvement or tol rather than the step
      cap; inertia_per_init = each seeding candidate's inertia on the validation subsample.
    """
    x, cfg = _prepare(
        x,
        n_clusters,
        batch_size,
        n_init,
        max_iter,
        max_no_improvement,
        tol,
        init,
        init_size,
        reassignment_ratio,
        chunk_size,
    )
    return _run(key, x, cfg)[0]


def fit_timed(key, x, n_clusters: int, **kwargs) -> timing.Timed:
    """`fit` with compilation timed apart: Timed(out=KMeansResult, compile_seconds, run_seconds).

    The step and the labelling pass are compiled ahead of time (compile_seconds); the k-means++
    seeding compiles inside the run (a fraction of a second).
    """
    x, cfg = _prepare(x, n_clusters, *timing.keyword_arguments(fit, kwargs).values())  # in fit's order, as fit
    n, d = x.shape
    sds = jax.ShapeDtypeStruct
    t0 = time.perf_counter()
    state = jax.eval_shape(_init_state, sds((cfg.n_clusters, d), jnp.float32), key)
    const = jax.eval_shape(lambda: _const(cfg, n, 1.0))
    step = _step.lower(state, sds((cfg.batch_size, d), x.dtype), const).compile()
    # The labelling pass (chunks) and the seeding's validation subsample.
    assign = {
        rows: _assign.lower(sds((cfg.n_clusters, d), jnp.float32), sds((rows, d), x.dtype), jnp.int32(0)).compile()
        for rows in {cfg.chunk, cfg.init_size}
    }
    if cfg.init == "k-means++":  # fills kmeans_plusplus's jit cache for the subsample's shape
        jax.block_until_ready(kmeans.kmeans_plusplus(key, np.zeros((cfg.init_size, d), np.float32), cfg.n_clusters))
    t1 = time.perf_counter()
    res, _ = _run(key, x, cfg, step=step, assign=_either(assign))
    jax.block_until_ready(res)
    t2 = time.perf_counter()
    return timing.Timed(res, t1 - t0, t2 - t1)


def _either(compiled):
    """The labelling function: ahead-of-time compiled for the row counts in `compiled`, else the jitted one."""

    def assign(c, x, n_valid):
        fn = compiled.get(x.shape[0], _assign)
        return fn(c, x, n_valid)

    return assign
