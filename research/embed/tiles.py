"""Tile pairs: every pair of rows within eps, in any dimension, found through boxes around tiles of rows.

    stage, capacity = tiles.search(x_nd, eps, max_pairs)  # host side: four jitted stages, a count after each
    p = tiles.pairs(stage.arrays, capacity)                # TilePairs, traceable: each pair within eps once

The rows are ordered along a k-d path key (each level halves every node at the mean of its widest
coordinate; one sort of the keys at the end), so rows near in space are mostly near in order, and cut into
tiles of `TILE` consecutive rows, `GROUP` tiles to a super tile. A pair of rows within eps lies in a pair of
tiles whose bounding boxes (in all coordinates) come within eps, inside a pair of super tiles whose boxes do.
Four stages narrow that down, each laid out with a static size that the host reads off the count of the
stage before (`cells.capacity_for`): the near super tile pairs; the near tile pairs among them; those in
which some row of each tile comes within eps of the other's box; the distances of their rows
([capacity, TILE, TILE], one bit mask of neighbours per row). `pairs` then lays the pairs within eps out as
flat arrays. Boxes and distances are summed from the same float32 differences in the same order, so the
pruning never drops a pair that the distance test keeps. Measurements: docs/design/neighbour_embeddings.md#dbscan.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from research.embed.cells import capacity_for

TILE = 16  # rows per tile (at most 32: a row's neighbours in a tile are one uint32 bit mask)
GROUP = 16  # tiles per super tile
_DEEPER = 2  # levels of the path key beyond one leaf per tile


class TilePairs(NamedTuple):
    """The pairs of distinct rows of x within eps, each once, in the sorted order.

    order_n: [n] int32, the original row number of each sorted position.
    rows_t, cols_t: [capacity] int32, sorted positions of each pair's two rows.
    valid_t: [capacity] bool, False on the padding after the last pair.
    sq_t: [capacity] float32, squared distances (inf on padding).
    """

    order_n: jax.Array
    rows_t: jax.Array
    cols_t: jax.Array
    valid_t: jax.Array
    sq_t: jax.Array


class Stage(NamedTuple):
    """One stage of the search: `count` says how large the next one must be; the rest is carried along."""

    count: jax.Array  # [] int32
    step: int  # the next one: 1 near tile pairs, 2 refined tile pairs, 3 row masks; 4: done, `pairs` next
    arrays: tuple


def _sq_gap(lo_a, hi_a, lo_b, hi_b):
    """Squared distance between boxes [..., d] (0 where they overlap), summed as `_sq_rows` sums."""
    sq = 0.0
    for f in range(lo_a.shape[-1]):
        gap = jnp.maximum(0.0, jnp.maximum(lo_b[..., f] - hi_a[..., f], lo_a[..., f] - hi_b[..., f]))
        sq = sq + gap * gap
    return sq


def _path_order(x_nd, levels: int):
    """Rows ordered by their k-d path: at each level every node splits at the mean of its widest coordinate."""
    n = x_nd.shape[0]
    nodes = 1 << levels  # room for the last level's nodes: one loop body serves every level
    ones = jnp.ones((n,), jnp.float32)

    def level(_, key):
        hi = jax.ops.segment_max(x_nd, key, nodes)
        lo = jax.ops.segment_min(x_nd, key, nodes)
        dim_k = jnp.argmax(hi - lo, axis=1)
        v_n = jnp.take_along_axis(x_nd, dim_k[key][:, None], axis=1)[:, 0]
        mean_k = jax.ops.segment_sum(v_n, key, nodes) / jnp.maximum(jax.ops.segment_sum(ones, key, nodes), 1.0)
        return 2 * key + (v_n > mean_k[key]).astype(jnp.int32)

    key = jax.lax.fori_loop(0, levels, level, jnp.zeros((n,), jnp.int32))
    return jnp.argsort(key, stable=True).astype(jnp.int32)


def _boxes(x_md, valid_m, size: int):
    """(lo, hi) [m / size, d] of each run of `size` rows (empty boxes where no row is valid: lo inf, hi -inf)."""
    d = x_md.shape[1]
    v = valid_m.reshape(-1, size, 1)
    xs = x_md.reshape(-1, size, d)
    return jnp.min(jnp.where(v, xs, jnp.inf), axis=1), jnp.max(jnp.where(v, xs, -jnp.inf), axis=1)


@jax.jit
def _prepare(x_nd, eps):
    n, d = x_nd.shape
    x_nd = x_nd.astype(jnp.float32)
    x_nd = x_nd - jnp.mean(x_nd, axis=0)
    levels = max(1, min(20, (max(n // TILE, 1)).bit_length() + _DEEPER))
    order_n = _path_order(x_nd, levels)
    super_rows = TILE * GROUP
    m = -(-n // super_rows) * super_rows
    valid_m = jnp.arange(m) < n
    x_md = jnp.zeros((m, d), jnp.float32).at[:n].set(x_nd[order_n])
    lo_t, hi_t = _boxes(x_md, valid_m, TILE)
    lo_s = jnp.min(lo_t.reshape(-1, GROUP, d), axis=1)
    hi_s = jnp.max(hi_t.reshape(-1, GROUP, d), axis=1)
    s = lo_s.shape[0]
    near_ss = _sq_gap(lo_s[:, None], hi_s[:, None], lo_s[None], hi_s[None]) <= jnp.square(eps)
    near_ss = near_ss & (jnp.arange(s)[:, None] <= jnp.arange(s)[None, :])
    return jnp.sum(near_ss, dtype=jnp.int32), (eps, order_n, x_md, valid_m, lo_t, hi_t, near_ss)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _tile_pairs(arrays, *, capacity):
    eps, order_n, x_md, valid_m, lo_t, hi_t, near_ss = arrays
    sa, sb = jnp.nonzero(near_ss, size=capacity, fill_value=-1)  # fill: no super tile, no pairs
    g = jnp.arange(GROUP, dtype=jnp.int32)
    ta = jnp.where(sa[:, None] >= 0, sa[:, None] * GROUP + g, -1)  # [capacity, GROUP]
    tb = jnp.where(sb[:, None] >= 0, sb[:, None] * GROUP + g, -1)
    lo_a, hi_a = lo_t[jnp.maximum(ta, 0)][:, :, None], hi_t[jnp.maximum(ta, 0)][:, :, None]
    lo_b, hi_b = lo_t[jnp.maximum(tb, 0)][:, None, :], hi_t[jnp.maximum(tb, 0)][:, None, :]
    near = _sq_gap(lo_a, hi_a, lo_b, hi_b) <= jnp.square(eps)
    near = near & (ta[:, :, None] >= 0) & ((sa != sb)[:, None, None] | (g[:, None] <= g[None, :]))
    pair_a = jnp.broadcast_to(ta[:, :, None], near.shape).reshape(-1)
    pair_b = jnp.broadcast_to(tb[:, None, :], near.shape).reshape(-1)
    near = near.reshape(-1)
    return jnp.sum(near, dtype=jnp.int32), (eps, order_n, x_md, valid_m, near, pair_a, pair_b)


def _sq_rows(a_ptd, b_ptd):
    """Squared distances [p, t, t] between the rows of two tiles, by float32 differences summed as `_sq_gap` sums."""
    sq = 0.0
    for f in range(a_ptd.shape[-1]):
        sq = sq + jnp.square(a_ptd[:, :, None, f] - b_ptd[:, None, :, f])
    return sq


def _kept(mask, pair_a, pair_b, capacity):
    """The tile pairs where mask holds, packed into [capacity]: (ok, tile a, tile b); 0s after the last."""
    (k,) = jnp.nonzero(mask, size=capacity, fill_value=0)
    ok = jnp.arange(capacity) < jnp.sum(mask)
    return ok, jnp.where(ok, pair_a[k], 0), jnp.where(ok, pair_b[k], 0)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _refine(arrays, *, capacity):
    """Keeps the tile pairs in which some row of each tile comes within eps of the other tile's box."""
    eps, order_n, x_md, valid_m, near, pair_a, pair_b = arrays
    ok, ta, tb = _kept(near, pair_a, pair_b, capacity)
    x_td = x_md.reshape(-1, TILE, x_md.shape[1])
    v_t = valid_m.reshape(-1, TILE)
    lo_t, hi_t = _boxes(x_md, valid_m, TILE)

    def rows_near(t_rows, t_box):  # [capacity]: does some row of tile t_rows lie within eps of t_box's box?
        x = x_td[t_rows]
        sq = _sq_gap(x, x, lo_t[t_box][:, None], hi_t[t_box][:, None])
        return jnp.any((sq <= jnp.square(eps)) & v_t[t_rows], axis=1)

    keep = ok & rows_near(ta, tb) & rows_near(tb, ta)
    return jnp.sum(keep, dtype=jnp.int32), (eps, order_n, x_md, valid_m, keep, ta, tb)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _row_masks(arrays, *, capacity):
    eps, order_n, x_md, valid_m, keep, pair_a, pair_b = arrays
    ok, ta, tb = _kept(keep, pair_a, pair_b, capacity)
    d = x_md.shape[1]
    x_td = x_md.reshape(-1, TILE, d)
    v_t = valid_m.reshape(-1, TILE)
    r = jnp.arange(TILE)
    within = _sq_rows(x_td[ta], x_td[tb]) <= jnp.square(eps)
    within = within & (v_t[ta] & ok[:, None])[:, :, None] & v_t[tb][:, None, :]
    within = within & ((ta != tb)[:, None, None] | (r[:, None] < r[None, :]))  # a tile with itself: once, no self
    bits_pr = jnp.sum(jnp.where(within, jnp.left_shift(jnp.uint32(1), r.astype(jnp.uint32)), jnp.uint32(0)), axis=2)
    per_row = jax.lax.population_count(bits_pr).astype(jnp.int32).reshape(-1)
    return jnp.sum(per_row), (eps, order_n, x_md, ta, tb, bits_pr.reshape(-1), per_row)


def _cumsum(v):
    """Inclusive prefix sum (a scan in log steps: several times faster than jnp.cumsum on XLA's CPU)."""
    return jax.lax.associative_scan(jnp.add, v)


def _nth_bit(bits, k):
    """Position of the k-th (from 0) set bit of each uint32 (k below its popcount), by halving."""
    pos = jnp.zeros(bits.shape, jnp.int32)
    for width in (16, 8, 4, 2, 1):
        low = jax.lax.population_count(jnp.right_shift(bits, pos.astype(jnp.uint32)) & jnp.uint32((1 << width) - 1))
        low = low.astype(jnp.int32)
        up = k >= low
        k = jnp.where(up, k - low, k)
        pos = jnp.where(up, pos + width, pos)
    return pos


def _within_pairs(arrays, capacity: int) -> TilePairs:
    _, order_n, x_md, ta, tb, bits_q, per_row_q = arrays
    offset_q = _cumsum(per_row_q) - per_row_q
    total = jnp.sum(per_row_q)
    marks = jnp.zeros((capacity + 1,), jnp.int32).at[jnp.minimum(offset_q, capacity)].add(1)
    q_t = _cumsum(marks[:capacity]) - 1  # the (tile pair, row) of each slot
    slot_t = jnp.arange(capacity, dtype=jnp.int32)
    valid_t = slot_t < total
    q_t = jnp.where(valid_t, q_t, 0)
    c_t = _nth_bit(bits_q[q_t], slot_t - offset_q[q_t])
    p_t, r_t = q_t // TILE, q_t % TILE
    rows_t = jnp.where(valid_t, ta[p_t] * TILE + r_t, 0)
    cols_t = jnp.where(valid_t, tb[p_t] * TILE + c_t, 0)
    sq_t = 0.0
    for col in x_md.T:  # a gather per coordinate: much faster on XLA's CPU than gathering rows
        sq_t = sq_t + jnp.square(col[rows_t] - col[cols_t])
    return TilePairs(order_n, rows_t, cols_t, valid_t, jnp.where(valid_t, sq_t, jnp.inf))


_STEPS = {1: _tile_pairs, 2: _refine, 3: _row_masks}


def prepare(x_nd, eps) -> Stage:
    """The first stage for x [n, d] (float32) and eps: ordered rows, tile boxes, near super tile pairs."""
    count, arrays = _prepare(x_nd, jnp.asarray(eps, jnp.float32))
    return Stage(count, 1, arrays)


def next_stage(stage: Stage, capacity: int) -> Stage:
    """The stage after this one, laid out with capacity >= stage.count (static)."""
    count, arrays = _STEPS[stage.step](stage.arrays, capacity=capacity)
    return Stage(count, stage.step + 1, arrays)


def search(x_nd, eps, max_pairs: int):
    """(the last stage, the capacity its pairs need), or (None, the count) as soon as a stage would lay out more
    than max_pairs entries: [count, GROUP, GROUP] tile tests, [count, TILE, TILE] distances, 2 x count pairs."""
    supers = -(-x_nd.shape[0] // (TILE * GROUP))
    if supers * supers > max_pairs:  # the first stage tests every pair of super tiles
        return None, supers * supers
    stage = prepare(x_nd, eps)
    for size in (GROUP * GROUP, TILE, TILE * TILE):
        count = int(stage.count)
        if count * size > max_pairs:
            return None, count * size
        stage = next_stage(stage, capacity_for(count))
    count = int(stage.count)
    if 2 * count > max_pairs:
        return None, 2 * count
    return stage, capacity_for(count)


def pairs(arrays, capacity: int) -> TilePairs:
    """The pairs within eps of the last stage's arrays (traceable; capacity static, >= its count)."""
    return _within_pairs(arrays, capacity)
