"""k-means: greedy k-means++ seeding and Lloyd iterations, all restarts fused, with Hamerly pruning.

    res = kmeans.fit(key, x_nd, 10, n_init=10)     # KMeansResult(centroids [k, d], labels [n], inertia, ...)
    labels_n = kmeans.predict(res.centroids, x_nd); dist_nk = kmeans.transform(res.centroids, x_nd)
    res, hist_tkd = kmeans.fit_with_history(key, x_nd, 10)   # and the winner's centroids at every iteration

The `n_init` restarts read the data once per iteration together ([n, d] x [d, n_init * k] distances); each
stops on its own by scikit-learn's rule and the lowest inertia wins. With `prune=True`, Hamerly's bounds
(Hamerly 2010) skip the points whose label cannot change; both paths give Lloyd's labels, scikit-learn's from
the same start. All but the sparse gathers are reductions over the sample axis, so data sharded over devices
runs unchanged (`prune=False`: reductions only).

Design, profiles and what did not help: docs/design/kmeans.md.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from research import checks, sharding, timing

_HIGHEST = lax.Precision.HIGHEST


class KMeansResult(NamedTuple):
    """The best restart of a k-means fit.

    centroids: [k, d] float32.
    labels: [n] int32, each point's nearest centroid; -1 on the padding rows after `n_samples` (see `fit`).
    inertia: [] float32, sum of squared distances to the assigned centroid (over the first n_samples rows).
    n_iter: [] int32, Lloyd iterations of the best restart.
    converged: [] bool, whether it stopped on the tolerance rather than max_iter.
    inertia_per_init: [n_init] float32, every restart's final inertia.
    """

    centroids: jax.Array
    labels: jax.Array
    inertia: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    inertia_per_init: jax.Array


class _Lloyd(NamedTuple):
    """Loop state for R restarts; [n, R] arrays keep the layout of the distance product."""

    centers: jax.Array  # [R, k, d] centroids the bounds refer to
    sums: jax.Array  # [R, k, d] sum of the points of each cluster (current labels)
    counts: jax.Array  # [R, k]
    labels: jax.Array  # [n, R] int32
    upper: jax.Array  # [n, R] >= distance to own centroid
    lower: jax.Array  # [n, R] <= distance to every other centroid
    n_iter: jax.Array  # [R] int32
    done: jax.Array  # [R] bool, restart has stopped
    converged: jax.Array  # [R] bool, stopped by tolerance or stable labels
    n_full: jax.Array  # [] int32, full passes taken (for benchmarks)
    # [R, k] half the distance from each centroid to its nearest other. Carried in the loop state so that
    # it is computed once per iteration: XLA would otherwise recompute it inside the [n, R] loop that reads it.
    half_gap: jax.Array


# ---------------------------------------------------------------------------
# Padding rows
#
# A sharded x may end in rows that only pad it to a length the devices divide (`fit`'s n_samples). Every
# function below that takes n_samples (static; None: every row is data) ignores them: they draw no seed,
# keep the label -1 (which one_hot turns into a zero row: no sum, no count, never a changed label) and are
# never in doubt, relocated, or counted in the tolerance, the inertia or the result. Masks, not slices:
# JAX refuses to slice a sharded axis to a length the devices do not divide.


def _check_n_samples(n_samples, n: int) -> int | None:
    """`fit`'s n_samples for an x of n rows: None when every row is data (None or n), else an int in [1, n)."""
    if n_samples is None:
        return None
    try:
        if isinstance(n_samples, bool):
            raise TypeError
        value = operator.index(n_samples)
    except TypeError:
        raise ValueError(
            f"n_samples must be a whole number (how many leading rows of x are data), got {n_samples!r}."
        ) from None
    if not 1 <= value <= n:
        raise ValueError(
            f"n_samples must be in [1, {n}]: x has {n} rows, the first n_samples of them data and the rest "
            f"padding; got {value}."
        )
    return None if value == n else value


def _real_rows(x_nd, n_samples):
    """[n] bool, True on the first n_samples rows (the data), laid out like x's rows (on an explicit mesh,
    `jnp.where` wants its two cases laid out alike); None when n_samples is None (every row)."""
    if n_samples is None:
        return None
    spec = None
    if sharding.replicated(x_nd) is not None:
        rows_spec = jax.typeof(x_nd).sharding.spec
        spec = jax.P(rows_spec[0] if len(rows_spec) else None)
    return lax.broadcasted_iota(jnp.int32, (x_nd.shape[0],), 0, out_sharding=spec) < n_samples


def _categorical_first(key, logits_n, n_samples: int, n_draws: int):
    """`jax.random.categorical(key, logits_n[:n_samples], shape=(n_draws,))`, the same draws bit for bit,
    without the slice. categorical is the argmax of Gumbel noise [n_draws, n_samples] plus the logits; noise
    drawn [n_draws, n] instead would differ from the second draw on (threefry counts along the flattened
    shape), so the noise is drawn at the data's length and padded with -inf."""
    g = jax.random.gumbel(key, (n_draws, n_samples), logits_n.dtype)
    g = jnp.pad(g, ((0, 0), (0, logits_n.shape[0] - n_samples)), constant_values=-jnp.inf)
    return jnp.argmax(g + logits_n[None, :], axis=-1)


# ---------------------------------------------------------------------------
# Distances


def _sq_dist(x_nd, xx_n, c_md):
    """Squared Euclidean distances [n, m], by the expansion |x|^2 - 2 x.c + |c|^2, clamped at 0."""
    cc_m = jnp.sum(c_md * c_md, axis=-1)
    xc_nm = jnp.dot(x_nd, c_md.T, precision=_HIGHEST)
    return jnp.maximum(xx_n[:, None] - 2.0 * xc_nm + cc_m[None, :], 0.0)


def _nearest_two(x_nd, xx_n, c_rkd):
    """For each point and restart: nearest centroid, its distance, distance to the runner-up.

    Returns labels [n, R] int32, d1 [n, R], d2 [n, R] (Euclidean; d2 = inf when k = 1).
    """
    r, k, d = c_rkd.shape
    sq_nrk = _sq_dist(x_nd, xx_n, c_rkd.reshape(r * k, d)).reshape(-1, r, k)
    labels = jnp.argmin(sq_nrk, axis=-1).astype(jnp.int32)
    d1 = jnp.min(sq_nrk, axis=-1)
    others = jnp.where(jnp.arange(k) == labels[..., None], jnp.inf, sq_nrk)
    d2 = jnp.min(others, axis=-1)
    return labels, jnp.sqrt(d1), jnp.sqrt(d2)


def _weighted_sums(w_nrk, x_nd):
    """sum_n w[n, r, k] x[n] as [R, k, d]: one [R*k, n] x [n, d] product.

    Written as a plain 2-D product: XLA's CPU matmul runs it twice as fast as the 3-D einsum.
    """
    n, r, k = w_nrk.shape
    flat = jnp.dot(w_nrk.reshape(n, r * k).T, x_nd, precision=_HIGHEST, out_sharding=sharding.replicated(x_nd))
    return flat.reshape(r, k, -1)


def _cluster_sums(x_nd, labels_nr, k):
    """Per-restart cluster sums [R, k, d] and counts [R, k]."""
    onehot_nrk = jax.nn.one_hot(labels_nr, k, dtype=x_nd.dtype)
    return _weighted_sums(onehot_nrk, x_nd), jnp.sum(onehot_nrk, axis=0)


# ---------------------------------------------------------------------------
# Seeding


def _plusplus_one(key, x_nd, xx_n, k, n_trials, n_samples=None):
    """Greedy k-means++ (Arthur & Vassilvitskii 2007; scikit-learn's variant).

    Each new centroid is the best of `n_trials` candidates drawn with probability
    proportional to the squared distance to the nearest chosen centroid. Drawing
    by `jax.random.categorical` is an argmax over the samples, a reduction.
    Returns indices [k] of the chosen points, among the first n_samples (None: all).
    """
    real_n = _real_rows(x_nd, n_samples)
    key0, key = jax.random.split(key)
    first = jax.random.randint(key0, (), 0, x_nd.shape[0] if n_samples is None else n_samples)
    closest_n = _sq_dist(x_nd, xx_n, sharding.rows(x_nd, first[None]))[:, 0]
    if real_n is not None:  # padding: probability 0 (log 0), and 0 in every candidate's score
        closest_n = jnp.where(real_n, closest_n, 0.0)
    idx = jnp.zeros((k,), jnp.int32).at[0].set(first)

    def add_centre(c, carry):
        idx, closest_n = carry
        logits = jnp.log(closest_n)  # chosen points have probability 0
        # All points coincide with chosen centroids: any point is as good as another.
        if real_n is None:
            logits = jnp.where(jnp.any(closest_n > 0), logits, 0.0)
            cand = jax.random.categorical(jax.random.fold_in(key, c), logits, shape=(n_trials,))
        else:
            logits = jnp.where(jnp.any(closest_n > 0), logits, jnp.where(real_n, 0.0, -jnp.inf))
            cand = _categorical_first(jax.random.fold_in(key, c), logits, n_samples, n_trials)
        cand_closest = jnp.minimum(closest_n[:, None], _sq_dist(x_nd, xx_n, sharding.rows(x_nd, cand)))  # [n, T]
        best = jnp.argmin(jnp.sum(cand_closest, axis=0))
        return idx.at[c].set(cand[best]), cand_closest[:, best]

    idx, _ = lax.fori_loop(1, k, add_centre, (idx, closest_n))
    return idx


def _default_trials(k):
    return 2 + int(math.log(k))


@functools.partial(jax.jit, static_argnames=("n_clusters", "n_local_trials"))
def _plusplus_jit(key, x_nd, n_clusters, n_local_trials):
    xx_n = jnp.sum(x_nd * x_nd, axis=-1)
    return sharding.rows(x_nd, _plusplus_one(key, x_nd, xx_n, n_clusters, n_local_trials))


def kmeans_plusplus(key, x, n_clusters: int, n_local_trials: int | None = None):
    """Greedy k-means++ seeding: returns centroids [n_clusters, d] chosen among the rows of x."""
    x = checks.as_matrix(x)
    n_clusters = checks.check_n_clusters(n_clusters, x.shape[0])
    trials = (
        _default_trials(n_clusters)
        if n_local_trials is None
        else checks.check_positive_int(n_local_trials, "n_local_trials")
    )
    return _plusplus_jit(key, jnp.asarray(x), n_clusters, trials)


def _init_centers(key, x_nd, xx_n, k, n_init, method, n_samples=None):
    keys = jax.random.split(key, n_init)
    m = x_nd.shape[0] if n_samples is None else n_samples
    if method == "k-means++":
        idx = jax.vmap(lambda kk: _plusplus_one(kk, x_nd, xx_n, k, _default_trials(k), n_samples))(keys)
    elif method == "random":
        idx = jax.vmap(lambda kk: jax.random.choice(kk, m, (k,), replace=False))(keys)
    else:
        raise ValueError(f"unknown init {method!r}")
    return sharding.rows(x_nd, idx)  # [R, k, d]


# ---------------------------------------------------------------------------
# Lloyd iterations


def _relocate_empty(s: _Lloyd, x_nd, active_r, n_samples=None):
    """Gives each empty cluster one of the points farthest from their centroid (scikit-learn's rule).

    The point leaves its old cluster's sums. Its bounds are zeroed so that the
    next E-step looks at it again. `upper` is exact after a full pass and an
    upper bound after a sparse one; either way these are the worst-fit points.
    """
    k = s.counts.shape[1]
    empty_rk = (s.counts == 0) & active_r[:, None]
    real_n = _real_rows(x_nd, n_samples)

    def relocate(s):
        upper = s.upper if real_n is None else jnp.where(real_n[:, None], s.upper, -jnp.inf)  # padding: never
        _, far_rk = lax.top_k(sharding.unsharded(upper.T, x_nd), k)  # [R, k] farthest points, farthest first
        rank_rk = jnp.cumsum(empty_rk, axis=1) - 1  # j-th empty cluster takes the j-th farthest point
        pt_rk = jnp.take_along_axis(far_rk, jnp.maximum(rank_rk, 0), axis=1)
        old_rk = jnp.take_along_axis(sharding.unsharded(s.labels.T, x_nd), pt_rk, axis=1)
        x_rkd = sharding.rows(x_nd, pt_rk) * empty_rk[..., None]
        move_rkk = jax.nn.one_hot(old_rk, k, dtype=x_nd.dtype) * empty_rk[..., None]  # [R, empty j, old]
        sums = s.sums - jnp.einsum("rjo,rjd->rod", move_rkk, x_rkd) + x_rkd
        counts = s.counts - jnp.sum(move_rkk, axis=1) + empty_rk
        r_idx = jnp.broadcast_to(jnp.arange(empty_rk.shape[0])[:, None], pt_rk.shape)
        j_idx = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32)[None, :], pt_rk.shape)
        pt = jnp.where(empty_rk, pt_rk, s.labels.shape[0])  # out of range: dropped
        labels = sharding.scatter(s.labels, (pt, r_idx), j_idx)
        upper = sharding.scatter(s.upper, (pt, r_idx), 0.0)
        lower = sharding.scatter(s.lower, (pt, r_idx), 0.0)
        return s._replace(sums=sums, counts=counts, labels=labels, upper=upper, lower=lower)

    return lax.cond(jnp.any(empty_rk), relocate, lambda s: s, s)


def _full_estep(s: _Lloyd, *, x_nd, xx_n, active_r, n_samples=None):
    labels, d1, d2 = _nearest_two(x_nd, xx_n, s.centers)
    if n_samples is not None:
        labels = jnp.where(_real_rows(x_nd, n_samples)[:, None], labels, -1)
    keep = ~active_r[None, :]
    return s._replace(
        labels=jnp.where(keep, s.labels, labels),
        upper=jnp.where(keep, s.upper, d1),
        lower=jnp.where(keep, s.lower, d2),
        n_full=s.n_full + 1,
    )


def _true_indices(mask_n, size):
    """Indices of the first `size` True entries of mask_n [n] as [size] int32, padded with n.

    jnp.nonzero(mask, size=size, fill_value=n), written as a cumulative sum and one scatter: the same
    result and run time, and about half the compile time (the loop has one per gather size).
    """
    n = mask_n.shape[0]
    pos_n = jnp.cumsum(mask_n, dtype=jnp.int32) - 1
    idx = jnp.full((size,), n, jnp.int32)
    return idx.at[jnp.where(mask_n, pos_n, size)].set(jnp.arange(n, dtype=jnp.int32), mode="drop")


def _sparse_estep(s: _Lloyd, *, x_nd, xx_n, active_r, doubt_n, budget):
    """Recomputes only the points in doubt (at most `budget`, gathered once for all restarts)."""
    n = x_nd.shape[0]
    idx_b = _true_indices(sharding.unsharded(doubt_n, x_nd), budget)
    valid_b = idx_b < n
    idx_safe = jnp.minimum(idx_b, n - 1)
    new_lab, d1, d2 = _nearest_two(sharding.rows(x_nd, idx_safe), sharding.rows(xx_n, idx_safe), s.centers)
    upd = valid_b[:, None] & active_r[None, :]
    rows = jnp.where(valid_b, idx_b, n)  # padding rows are dropped by the scatter
    return s._replace(
        labels=sharding.scatter(s.labels, rows, jnp.where(upd, new_lab, sharding.rows(s.labels, idx_safe))),
        upper=sharding.scatter(s.upper, rows, jnp.where(upd, d1, sharding.rows(s.upper, idx_safe))),
        lower=sharding.scatter(s.lower, rows, jnp.where(upd, d2, sharding.rows(s.lower, idx_safe))),
    )


def _update_sums(s: _Lloyd, prev_labels_nr, x_nd, active_r, caps, n_samples=None):
    """Brings s.sums and s.counts up to date with s.labels.

    After the first iterations few points change cluster, so only those are gathered and their
    moves added (one_hot(-1) = 0 covers points never assigned), in the smallest of the gather sizes
    `caps` (largest first) that holds them all. When more than caps[0] changed, or the labels were
    never counted, everything is recounted, which also clears rounding accumulated by the updates.
    """
    n, _ = s.labels.shape
    k = s.centers.shape[1]
    changed_nr = (s.labels != prev_labels_nr) & active_r[None, :]
    changed_n = jnp.any(changed_nr, axis=1)

    def moves(s, cap):
        idx = _true_indices(sharding.unsharded(changed_n, x_nd), cap)
        safe = jnp.minimum(idx, n - 1)
        m = sharding.rows(changed_nr, safe) & (idx < n)[:, None]
        new = jax.nn.one_hot(sharding.rows(s.labels, safe), k, dtype=x_nd.dtype)
        old = jax.nn.one_hot(sharding.rows(prev_labels_nr, safe), k, dtype=x_nd.dtype)
        delta_crk = (new - old) * m[..., None]
        return s._replace(
            sums=s.sums + _weighted_sums(delta_crk, sharding.rows(x_nd, safe)),
            counts=s.counts + jnp.sum(delta_crk, axis=0),
        )

    def recount(s):
        sums, counts = _cluster_sums(x_nd, s.labels, k)
        act = active_r[:, None]
        return s._replace(sums=jnp.where(act[..., None], sums, s.sums), counts=jnp.where(act, counts, s.counts))

    branches = [recount] + [functools.partial(moves, cap=c) for c in caps]
    uncounted_nr = prev_labels_nr < 0
    if n_samples is not None:  # padding rows keep the label -1 and are never counted
        uncounted_nr = uncounted_nr & _real_rows(x_nd, n_samples)[:, None]
    fits = _fitting_level(jnp.sum(changed_n), caps) * ~jnp.any(uncounted_nr)
    return lax.switch(fits, branches, s)


def _fitting_level(count, sizes):
    """Index into [whole pass, *sizes] (sizes largest first) of the smallest gather that holds `count` rows;
    0 (the whole pass) when none does."""
    return sum((count <= b).astype(jnp.int32) for b in sizes)


def _per_point(v_rk, labels_nr):
    """v[r, labels[n, r]] as [n, R]: a per-centroid value looked up for each point and restart."""
    return sharding.lookup(v_rk, (jnp.arange(v_rk.shape[0])[None, :], labels_nr))


def _half_gap(c_rkd):
    """Half the distance from each centroid to its nearest other centroid [R, k] (inf when k = 1)."""
    k = c_rkd.shape[1]
    cc = jnp.sum(c_rkd * c_rkd, axis=-1)
    g = cc[:, :, None] + cc[:, None, :] - 2.0 * jnp.einsum("rkd,rjd->rkj", c_rkd, c_rkd, precision=_HIGHEST)
    g = jnp.where(jnp.eye(k, dtype=bool)[None], jnp.inf, g)
    return 0.5 * jnp.sqrt(jnp.maximum(jnp.min(g, axis=-1), 0.0))


def _lloyd_iteration(s: _Lloyd, x_nd, xx_n, tol_abs, max_iter, prune, budget, n_samples=None):
    """E-step against s.centers, empty-cluster repair, M-step; bounds follow the centroids."""
    active_r = ~s.done
    prev_labels = s.labels
    full_estep = functools.partial(_full_estep, x_nd=x_nd, xx_n=xx_n, active_r=active_r, n_samples=n_samples)
    if prune:
        gap_nr = _per_point(s.half_gap, s.labels)
        unassigned = s.labels < 0  # before the first E-step (bounds can be inf > inf when k = 1)
        doubt_nr = ((s.upper > jnp.maximum(s.lower, gap_nr)) | unassigned) & active_r[None, :]
        if n_samples is not None:
            doubt_nr = doubt_nr & _real_rows(x_nd, n_samples)[:, None]
        doubt_n = jnp.any(doubt_nr, axis=1)
        # The smallest gather size that holds every point in doubt; none: a full pass.
        branches = [full_estep] + [
            functools.partial(_sparse_estep, x_nd=x_nd, xx_n=xx_n, active_r=active_r, doubt_n=doubt_n, budget=b)
            for b in budget
        ]
        s = lax.switch(_fitting_level(jnp.sum(doubt_n), budget), branches, s)
    else:
        s = full_estep(s)
    m = x_nd.shape[0] if n_samples is None else n_samples
    s = _update_sums(s, prev_labels, x_nd, active_r, _gather_levels(m, 1 / 8, levels=2, spacing=8), n_samples)
    s = _relocate_empty(s, x_nd, active_r, n_samples)

    new_c = jnp.where(s.counts[..., None] > 0, s.sums / jnp.maximum(s.counts, 1.0)[..., None], s.centers)
    new_c = jnp.where(active_r[:, None, None], new_c, s.centers)
    move_rk = jnp.sqrt(jnp.sum((new_c - s.centers) ** 2, axis=-1))
    shift_r = jnp.sum(move_rk**2, axis=-1)
    # Hamerly's bound update: own centroid moved away by at most move, any other came closer by at most
    # the largest move among the others.
    if move_rk.shape[1] > 1:
        top2, arg = lax.top_k(move_rk, 2)
        other_max_nr = jnp.where(s.labels == arg[None, :, 0], top2[None, :, 1], top2[None, :, 0])
    else:  # k = 1: the lower bound is inf and stays so
        other_max_nr = jnp.zeros_like(s.upper)
    own_move_nr = _per_point(move_rk, s.labels)

    stable_r = jnp.all(s.labels == prev_labels, axis=0)
    n_iter = s.n_iter + active_r
    conv_r = active_r & (stable_r | (shift_r <= tol_abs))
    return s._replace(
        centers=new_c,
        half_gap=_half_gap(new_c) if prune else s.half_gap,
        upper=s.upper + own_move_nr,
        lower=s.lower - other_max_nr,
        n_iter=n_iter,
        converged=s.converged | conv_r,
        done=s.done | conv_r | (n_iter >= max_iter),
    )


def _lloyd(x_nd, xx_n, init_rkd, tol, max_iter, prune, budget, history=0, n_samples=None):
    """Runs all restarts to their stop; returns the final _Lloyd state. xx_n: [n] squared norms of x.
    n_samples: the rows that are data, the rest padding (None: all; see "Padding rows").

    history > 0 (at least max_iter + 1): also returns every restart's centroids at each iteration,
    [history, R, k, d] (row 0 the start, row t after iteration t, NaN after the restart stopped). The loop's
    own arithmetic is the same, so the final state is the same bits as without it.
    """
    r, k, d = init_rkd.shape
    tol_abs = tol * jnp.mean(_feature_variance(x_nd, n_samples))  # scikit-learn's scale for the tolerance
    zeros_nr = jnp.zeros_like(x_nd[:, :1]) + jnp.zeros((1, r), x_nd.dtype)  # laid out like x along n
    s = _Lloyd(
        centers=init_rkd,
        sums=jnp.zeros((r, k, d), x_nd.dtype),
        counts=jnp.zeros((r, k), x_nd.dtype),
        labels=zeros_nr.astype(jnp.int32) - 1,
        upper=zeros_nr + jnp.inf,
        lower=zeros_nr,
        n_iter=jnp.zeros((r,), jnp.int32),
        done=jnp.zeros((r,), bool) | (max_iter <= 0),
        converged=jnp.zeros((r,), bool),
        n_full=jnp.zeros((), jnp.int32),
        half_gap=_half_gap(init_rkd) if prune else jnp.zeros((r, k), x_nd.dtype),
    )
    body = functools.partial(
        _lloyd_iteration,
        x_nd=x_nd,
        xx_n=xx_n,
        tol_abs=tol_abs,
        max_iter=max_iter,
        prune=prune,
        budget=budget,
        n_samples=n_samples,
    )
    if not history:
        return lax.while_loop(lambda s: ~jnp.all(s.done), body, s)

    def recording(carry):
        s, hist = carry
        new = body(s)
        # A restart still running writes its new centroids to row n_iter; the others' rows fall out of range.
        row_r = jnp.where(s.done, history, new.n_iter)
        return new, hist.at[row_r, jnp.arange(r)].set(new.centers, mode="drop")

    hist = jnp.full((history, r, k, d), jnp.nan, x_nd.dtype).at[0].set(init_rkd)
    return lax.while_loop(lambda c: ~jnp.all(c[0].done), recording, (s, hist))


def _feature_variance(x_nd, n_samples=None):
    """Variance of each feature [d] over the first n_samples rows (None: all)."""
    if n_samples is None:
        return jnp.var(x_nd, axis=0)
    real_n1 = _real_rows(x_nd, n_samples)[:, None]
    mean_d = jnp.sum(jnp.where(real_n1, x_nd, 0.0), axis=0) / n_samples
    return jnp.sum(jnp.where(real_n1, (x_nd - mean_d) ** 2, 0.0), axis=0) / n_samples


@functools.partial(jax.jit, static_argnames=("n_clusters", "n_init", "init", "prune", "budget", "history", "n_samples"))
def _fit(key, x_nd, init_rkd, tol, max_iter, *, n_clusters, n_init, init, prune, budget, history=0, n_samples=None):
    """The fit: (KMeansResult, full passes taken) and, when history > 0, the best restart's centroids at every
    iteration [history, k, d] (see `_lloyd`). n_samples: None, or the count of leading rows that are data
    (< n; the rest padding)."""
    x_nd = x_nd.astype(jnp.float32)
    xx_n = jnp.sum(x_nd * x_nd, axis=-1)
    if init_rkd is None:
        init_rkd = _init_centers(key, x_nd, xx_n, n_clusters, n_init, init, n_samples)
    s = _lloyd(x_nd, xx_n, init_rkd.astype(jnp.float32), tol, max_iter, prune, budget, history, n_samples)
    if history:
        s, hist_trkd = s
    # Final E-step against the final centroids (the loop's labels refer to the previous ones).
    labels_nr, d1_nr, _ = _nearest_two(x_nd, xx_n, s.centers)
    real_n = _real_rows(x_nd, n_samples)
    if real_n is not None:
        labels_nr = jnp.where(real_n[:, None], labels_nr, -1)
        d1_nr = jnp.where(real_n[:, None], d1_nr, 0.0)
    inertia_r = jnp.sum(d1_nr**2, axis=0)
    best = jnp.argmin(inertia_r)
    centroids, labels = s.centers[best], labels_nr[:, best]
    # Report the winner's inertia by direct differences, free of the expansion's cancellation.
    if real_n is None:
        inertia = jnp.sum((x_nd - sharding.lookup(centroids, labels)) ** 2)
    else:
        sq_nd = (x_nd - sharding.lookup(centroids, jnp.maximum(labels, 0))) ** 2
        inertia = jnp.sum(jnp.where(real_n[:, None], sq_nd, 0.0))
    converged = s.converged[best] & jnp.isfinite(inertia)  # an overflowed objective never counts as converged
    res = KMeansResult(centroids, labels, inertia, s.n_iter[best], converged, inertia_r)
    return (res, s.n_full, hist_trkd[:, best]) if history else (res, s.n_full)


_INITS = ("k-means++", "random")


def _check_args(x, n_clusters, n_init, max_iter, tol, init):
    """The checks of kmeans.fit and spherical_kmeans.fit: x a matrix, 1 <= k <= n, n_init and max_iter >= 1,
    a finite tol >= 0, and `init` (see `_check_init`). Returns (x, n_clusters, n_init, max_iter, init_rkd, method).
    """
    x = checks.as_matrix(x)
    n, d = x.shape
    n_clusters = checks.check_n_clusters(n_clusters, n)
    n_init = checks.check_positive_int(n_init, "n_init")
    max_iter = checks.check_positive_int(max_iter, "max_iter")
    if not (float(tol) >= 0 and math.isfinite(float(tol))):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}.")
    init_rkd, method = _check_init(init, n_clusters, n_init, d)
    return x, n_clusters, n_init, max_iter, init_rkd, method


def _prepare(key, x, n_clusters, n_init, max_iter, tol, init, prune, prune_budget, n_samples=None):
    """Checks the public arguments; returns (args, static kwargs) for `_fit`."""
    if not 0 < prune_budget <= 1:
        raise ValueError(f"prune_budget must be in (0, 1], got {prune_budget!r}.")
    x, n_clusters, n_init, max_iter, init_rkd, method = _check_args(x, n_clusters, n_init, max_iter, tol, init)
    n_samples = _check_n_samples(n_samples, x.shape[0])
    n = x.shape[0] if n_samples is None else n_samples
    checks.check_n_clusters(n_clusters, n)
    x = jnp.asarray(x)
    checks.check_squares_fit_float32(x)
    args = (key, x, init_rkd, jnp.float32(tol), jnp.int32(max_iter))
    static = {
        "n_clusters": n_clusters,
        "n_init": n_init if init_rkd is None else init_rkd.shape[0],
        "init": method,
        "prune": bool(prune),
        "budget": _gather_levels(n, prune_budget),
        "n_samples": n_samples,
    }
    return args, static


def _gather_levels(n, fraction, levels=4, spacing=2):
    """Gather sizes, largest first: fraction * n, then divided by `spacing` (distinct, >= 1)."""
    sizes = [max(1, min(n, int(fraction * n / spacing**i))) for i in range(levels)]
    return tuple(sorted(set(sizes), reverse=True))


def fit(
    key,
    x,
    n_clusters: int,
    *,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-4,
    init="k-means++",
    prune: bool = True,
    prune_budget: float = 0.25,
    n_samples: int | None = None,
) -> KMeansResult:
    """Fits k-means to x [n, d] with `n_init` fused restarts; returns the lowest-inertia one.

    Args:
      key: a jax.random key; the same key gives the same bits.
      x: [n, d] data (NumPy or JAX, possibly sharded along n). Cast to float32.
      n_clusters: k, 1 <= k <= n.
      n_init: restarts, run together; the one with the lowest inertia is returned.
        Explicit [n_init, k, d] init centroids set it.
      max_iter: Lloyd iterations per restart at most.
      tol: a restart stops when its squared centroid shift, summed over
        centroids, is at most tol * mean feature variance (scikit-learn's rule),
        or when no label changes.
      init: "k-means++" (greedy, 2 + ln k local trials), "random" (k distinct
        points), or explicit centroids [k, d] or [n_init, k, d].
      prune: skip points whose Hamerly bounds prove their label cannot change.
      prune_budget: the sparse step gathers at most this fraction of the points
        (in sizes halving down to 1/8 of it, the smallest that holds every point
        in doubt); when more are in doubt the iteration is a full pass.
      n_samples: the first n_samples rows of x are the data; the rows after them only pad x to a length
        that splits evenly over devices (e.g. for `jax.make_array_from_process_local_data`) and are ignored:
        the fit is the one on x[:n_samples], its labels -1 on the padding rows. None: all rows. An int in
        [1, len(x)], at least n_clusters.
    """
    args, static = _prepare(key, x, n_clusters, n_init, max_iter, tol, init, prune, prune_budget, n_samples)
    return _fit(*args, **static)[0]


def fit_timed(key, x, n_clusters: int, **kwargs) -> timing.Timed:
    """`fit` with compilation and the run timed apart: Timed(out=KMeansResult, compile_seconds, run_seconds)."""
    return timing.fit_timed(fit, _prepare, _fit, key, x, n_clusters, post=lambda out: out[0], **kwargs)


def _prepare_history(key, x, n_clusters, n_init, max_iter, tol, init, prune, prune_budget, n_samples=None):
    """`_prepare`, with room in the history for the seeding and every iteration."""
    args, static = _prepare(key, x, n_clusters, n_init, max_iter, tol, init, prune, prune_budget, n_samples)
    return args, static | {"history": int(args[4]) + 1}


def fit_with_history(key, x, n_clusters: int, **kwargs) -> tuple[KMeansResult, jax.Array]:
    """`fit` (the same keyword arguments, key and bits) that also returns the winning restart's centroids at
    every Lloyd iteration: history [max_iter + 1, k, d], row 0 its seeding, row t its centroids after
    iteration t (row res.n_iter is res.centroids), NaN beyond. Costs a [max_iter + 1, n_init, k, d] buffer
    and a write per iteration; `fit` itself is compiled without it.
    """
    args, static = _prepare_history(key, x, n_clusters, **timing.keyword_arguments(fit, kwargs))
    res, _, history = _fit(*args, **static)
    return res, history


def fit_with_history_timed(key, x, n_clusters: int, **kwargs) -> timing.Timed:
    """`fit_with_history` with compilation and the run timed apart: Timed(out=(KMeansResult, history), ...)."""
    return timing.fit_timed(fit, _prepare_history, _fit, key, x, n_clusters, post=lambda o: (o[0], o[2]), **kwargs)


def _check_init(init, k, n_init, d):
    """(None, init) for an init method's name; else (centroids [r, k, d] float32, "given"), r 1 or n_init.

    Shared by kmeans, spherical_kmeans and minibatch_kmeans: the same names and messages for all three.
    """
    if isinstance(init, str):
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS} or an array of centroids, got {init!r}.")
        return None, init
    c = np.asarray(init, np.float32)
    if c.ndim == 2:
        c = c[None]
    if c.ndim != 3 or c.shape[1:] != (k, d) or c.shape[0] not in (1, n_init):
        raise ValueError(
            f"init centroids must have shape [{k}, {d}] or [{n_init}, {k}, {d}] (n_clusters, n_features), "
            f"got {np.shape(init)}."
        )
    if not np.all(np.isfinite(c)):
        raise ValueError("init centroids hold NaN or infinite values.")
    return jnp.asarray(c), "given"


@jax.jit
def _predict(c_kd, x_nd):
    return jnp.argmin(_sq_dist(x_nd, jnp.sum(x_nd * x_nd, -1), c_kd), axis=-1).astype(jnp.int32)


@jax.jit
def _transform(c_kd, x_nd):
    return jnp.sqrt(_sq_dist(x_nd, jnp.sum(x_nd * x_nd, -1), c_kd))


def _check_centroids(centroids, x):
    c = checks.as_matrix(centroids, "centroids")
    x = checks.as_matrix(x)
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but the centroids have {c.shape[1]}.")
    return jnp.asarray(c, jnp.float32), jnp.asarray(x, jnp.float32)


def predict(centroids, x):
    """Index of the nearest centroid [n] int32 for each row of x [n, d]."""
    return _predict(*_check_centroids(centroids, x))


def transform(centroids, x):
    """Euclidean distances [n, k] from each row of x to each centroid."""
    return _transform(*_check_centroids(centroids, x))
