"""Sharding-aware indexing for algorithms whose data is sharded along the sample axis.

Under an automatic mesh (or none) these are plain indexing. Under an explicit
mesh (`jax.make_mesh(..., axis_types=(AxisType.Explicit,))`, the default of
recent JAX), JAX asks how the result of a gather, scatter or contraction over
the sharded axis is laid out; these helpers answer once: small results
(gathered rows, per-cluster sums) are replicated, per-sample results keep the
samples' sharding.

Passes over the data in blocks (`to_blocks`) lay each block across the devices: block b holds the b-th rows of
every device's shard, so a scan over blocks keeps every device busy on its own rows and only the per-block sums
cross devices. On one device (or an automatic mesh) this is the plain split into consecutive rows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def replicated(x_nd):
    """P() when x_nd lives on an explicit mesh, where JAX asks how a gather or a contraction over the
    sharded sample axis is laid out; None (let XLA decide) otherwise. Such results are small: replicate."""
    mesh = getattr(jax.typeof(x_nd).sharding, "mesh", None)
    return jax.P() if mesh is not None and not mesh.empty and mesh.are_all_axes_explicit else None


def unsharded(a, like):
    """`a` gathered onto every device when `like` is on an explicit mesh (for the rare sort-like steps)."""
    return a if replicated(like) is None else jax.sharding.reshard(a, jax.P())


def scatter(a, idx, values):
    """a.at[idx].set(values), out-of-range indices dropped, keeping a's own sharding."""
    spec = None if replicated(a) is None else jax.typeof(a).sharding.spec
    return a.at[idx].set(values, mode="drop", out_sharding=spec)


def segment_sum(values, ids, num_segments: int):
    """jax.ops.segment_sum(values, ids, num_segments), the small [num_segments, ...] result replicated."""
    out = jnp.zeros((num_segments, *values.shape[1:]), values.dtype)
    return out.at[ids].add(values, out_sharding=replicated(values))


def lookup(table, idx):
    """table[idx] for a small replicated table and per-sample indices (an array or a tuple of them)."""
    ref = idx[-1] if isinstance(idx, tuple) else idx
    if replicated(ref) is None:
        return table[idx]
    trailing = table.ndim - (len(idx) if isinstance(idx, tuple) else 1)
    return table.at[idx].get(out_sharding=jax.P(*jax.typeof(ref).sharding.spec, *[None] * trailing))


def rows(x_nd, idx):
    """x_nd[idx], replicated (see replicated)."""
    return x_nd.at[idx].get(out_sharding=replicated(x_nd))


def sample_shards(x_nd) -> int:
    """How many ways x_nd's sample axis (0) is split on an explicit mesh; 1 otherwise (no mesh, an automatic
    one, or a replicated x)."""
    if replicated(x_nd) is None:
        return 1
    sh = jax.typeof(x_nd).sharding
    axis = sh.spec[0] if len(sh.spec) else None
    names = () if axis is None else axis if isinstance(axis, tuple) else (axis,)
    return math.prod(sh.mesh.shape[name] for name in names)


def block_layout(n: int, block: int, shards: int) -> tuple[int, int]:
    """(n_blocks, rows per block) of `to_blocks`: blocks of about `block` rows, a multiple of `shards`."""
    per_shard = -(-min(block, n) // shards)
    n_blocks = -(-n // (per_shard * shards))
    return n_blocks, per_shard * shards


def to_blocks(a, block: int, shards: int = 1):
    """a [n, ...] as [n_blocks, rows, ...] zero-padded (`block_layout`), block b holding the b-th run of rows of
    each of the `shards` equal parts of the padded rows (`sample_shards(a)` keeps each device on its own)."""
    n = a.shape[0]
    nb, rows = block_layout(n, block, shards)
    padded = jnp.pad(a, [(0, nb * rows - n)] + [(0, 0)] * (a.ndim - 1))
    parts = padded.reshape(shards, nb, rows // shards, *a.shape[1:])
    return jnp.swapaxes(parts, 0, 1).reshape(nb, rows, *a.shape[1:])


def from_blocks(ab, n: int, shards: int = 1):
    """The rows of `to_blocks`' layout [n_blocks, rows, ...] back in their order, the padding dropped: [n, ...]."""
    nb, rows = ab.shape[:2]
    parts = ab.reshape(nb, shards, rows // shards, *ab.shape[2:])
    return jnp.swapaxes(parts, 0, 1).reshape(nb * rows, *ab.shape[2:])[:n]


def slid_layout(n: int, block: int) -> tuple[int, int]:
    """(n_blocks, rows per block) of `slid_block`: blocks of min(block, n) rows covering n rows."""
    size = min(block, n)
    return -(-n // size), size


def slid_block(a, i, size: int):
    """Block i of a's rows (axis 0) cut in place: rows [start, start + size) with start = min(i size, n - size),
    so the last block slides back to end at row n rather than into a padded copy of a; and fresh [size] bool,
    False on the rows an earlier block already covered."""
    start = jnp.minimum(i * size, a.shape[0] - size)
    return jax.lax.dynamic_slice_in_dim(a, start, size, axis=0), start + jnp.arange(size) >= i * size


def from_slid_blocks(v_bb, n: int):
    """Per-row values [n, ...] from values per `slid_block` [n_blocks, size, ...]: the slid-back overlap dropped."""
    n_blocks, size = v_bb.shape[:2]
    return jnp.concatenate([v_bb[:-1].reshape(-1, *v_bb.shape[2:]), v_bb[-1, n_blocks * size - n :]])


def on_one_device(a):
    """`a` on one device: a jax.Array spread over several is gathered (through the host), anything else is
    returned as it is. For the steps that run on one device after a sharded search (the embeddings' layouts)."""
    spread = isinstance(a, jax.Array) and len(a.sharding.device_set) > 1
    return jnp.asarray(jax.device_get(a)) if spread else a
