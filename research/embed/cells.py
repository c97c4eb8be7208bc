"""Cell lists: every pair of rows that can lie within eps, found through a grid, as flat arrays.

    t = cells.candidate_count(x_nd, eps)                   # [] int32, jitted: how many candidate pairs
    p = cells.candidate_pairs(x_nd, eps, capacity=c)       # CellPairs, traceable; c >= t, static

The rows are bucketed on a grid of square cells of side eps over their two coordinates of largest
variance, and sorted by cell (row of cells, then column). Two rows within eps lie in the same or in
adjacent cells, so each row's candidates are three contiguous runs of the sorted rows (the cell rows
above, at and below its own, three cells wide each). The runs are laid end to end as [capacity] arrays,
one entry per (row, candidate) pair, grouped by row: reductions over a row's neighbours are then
`jax.ops.segment_*` calls with sorted segment ids. Low dimension is the case this serves; in high
dimension two coordinates filter little, and `candidate_count` says so before anything is allocated.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from research.embed.neighbors import _DIRECT_MAX_D, _EPS32

_MAX_CELLS_PER_SIDE = 32000  # keeps the cell key (row * width + column) inside int32


class CellPairs(NamedTuple):
    """Candidate pairs of the rows of x, in the grid's sorted order.

    x_nd: [n, d] float32, the rows centred and sorted by cell.
    order_n: [n] int32, the original row number of each sorted row.
    rows_t, cols_t: [capacity] int32, the sorted positions of each pair's row and candidate; rows_t is
      non-decreasing (pairs grouped by row) and each row's own position is among its candidates.
    valid_t: [capacity] bool, False on the padding after the last pair (there rows_t = n - 1, cols_t = 0).
    sq_t: [capacity] float32, the squared distance of each pair (inf on padding).
    """

    x_nd: jax.Array
    order_n: jax.Array
    rows_t: jax.Array
    cols_t: jax.Array
    valid_t: jax.Array
    sq_t: jax.Array


def _cell_side(x_nd, eps):
    """A cell side no smaller than eps plus the rounding of computed distances, and coarse enough for int32 keys."""
    d = x_nd.shape[1]
    slack = 8.0 * _EPS32 * jnp.max(jnp.abs(x_nd))
    if d <= _DIRECT_MAX_D:
        side = eps * (1.0 + 1e-4) + slack
    else:  # the expansion |x|^2 + |y|^2 - 2 x.y errs with the squared norms: a pair may come out within eps
        r2 = jnp.max(jnp.sum(x_nd * x_nd, axis=-1))
        side = jnp.sqrt(eps * eps + 16.0 * (d + 4) * _EPS32 * r2) + slack
    extent = jnp.max(jnp.max(x_nd, axis=0) - jnp.min(x_nd, axis=0))
    return jnp.maximum(side, extent / _MAX_CELLS_PER_SIDE)


def _runs(x_nd, eps):
    """The grid: (x sorted by cell, order_n, start [n, 3], stop [n, 3]): each sorted row's three runs of candidates."""
    d = x_nd.shape[1]
    x_nd = x_nd.astype(jnp.float32)
    x_nd = x_nd - jnp.mean(x_nd, axis=0)
    var_d = jnp.var(x_nd, axis=0)
    a0 = jnp.argmax(var_d)
    u = jnp.take(x_nd, a0, axis=1)
    v = jnp.take(x_nd, jnp.argmax(var_d.at[a0].set(-1.0)), axis=1) if d > 1 else jnp.zeros_like(u)
    side = _cell_side(x_nd, eps)
    cx = jnp.floor((u - jnp.min(u)) / side).astype(jnp.int32)
    cy = jnp.floor((v - jnp.min(v)) / side).astype(jnp.int32)
    width = jnp.max(cx) + 1
    key = cy * width + cx
    order_n = jnp.argsort(key, stable=True).astype(jnp.int32)
    key, cx, cy = key[order_n], cx[order_n], cy[order_n]
    rows_3 = cy[:, None] + jnp.arange(-1, 2, dtype=jnp.int32)[None, :]
    lo = rows_3 * width + jnp.maximum(cx - 1, 0)[:, None]
    hi = rows_3 * width + jnp.minimum(cx + 1, width - 1)[:, None]
    start = jnp.searchsorted(key, lo, side="left").astype(jnp.int32)
    stop = jnp.searchsorted(key, hi, side="right").astype(jnp.int32)
    return x_nd[order_n], order_n, start, jnp.maximum(stop, start)


@jax.jit
def candidate_count(x_nd, eps) -> jax.Array:
    """[] int32: how many (row, candidate) pairs `candidate_pairs` lays out for x [n, d] and this eps."""
    _, _, start, stop = _runs(x_nd, jnp.asarray(eps, jnp.float32))
    return jnp.sum(stop - start)


def candidate_pairs(x_nd, eps, capacity: int) -> CellPairs:
    """Every (row, candidate) pair of x [n, d] within eps's neighbouring cells (traceable; capacity static and
    at least `candidate_count(x_nd, eps)`, else the last pairs are lost)."""
    eps = jnp.asarray(eps, jnp.float32)
    x_nd, order_n, start, stop = _runs(x_nd, eps)
    n = x_nd.shape[0]
    length_s = (stop - start).reshape(-1)  # segment s = 3 * row + run
    offset_s = jnp.cumsum(length_s) - length_s
    total = jnp.sum(length_s)
    # Segment of each slot: the last segment starting at or before it (empty segments share the next one's start).
    marks = jnp.zeros((capacity + 1,), jnp.int32).at[jnp.minimum(offset_s, capacity)].add(1)
    seg_t = jnp.cumsum(marks[:capacity]) - 1
    slot_t = jnp.arange(capacity, dtype=jnp.int32)
    valid_t = slot_t < total
    rows_t = jnp.where(valid_t, seg_t // 3, n - 1)
    cols_t = jnp.where(valid_t, start.reshape(-1)[seg_t] + slot_t - offset_s[seg_t], 0)
    sq_t = _pair_sq(x_nd, rows_t, cols_t)
    return CellPairs(x_nd, order_n, rows_t, cols_t, valid_t, jnp.where(valid_t, sq_t, jnp.inf))


def _pair_sq(x_nd, rows_t, cols_t):
    """Squared distances of the pairs: direct differences in low dimension, else the clamped expansion."""
    d = x_nd.shape[1]
    if d <= _DIRECT_MAX_D:
        sq = jnp.zeros(rows_t.shape, jnp.float32)
        for f in range(d):
            col = x_nd[:, f]
            sq = sq + jnp.square(col[rows_t] - col[cols_t])
        return sq
    norm_n = jnp.sum(x_nd * x_nd, axis=-1)
    dot = jnp.einsum("td,td->t", x_nd[rows_t], x_nd[cols_t], precision=lax.Precision.HIGHEST)
    return jnp.maximum(norm_n[rows_t] + norm_n[cols_t] - 2.0 * dot, 0.0)


def capacity_for(count: int, minimum: int = 1024) -> int:
    """The static size for `count` pairs: rounded up to the next of four steps per power of two (at most 25%
    padding, and nearby counts share one compilation)."""
    count = max(int(count), minimum)
    step = 1 << max(0, count.bit_length() - 3)
    return -(-count // step) * step
