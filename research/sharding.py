"""Sharding-aware indexing for algorithms whose data is sharded along the sample axis.

Under an automatic mesh (or none) these are plain indexing. Under an explicit
mesh (`jax.make_mesh(..., axis_types=(AxisType.Explicit,))`, the default of
recent JAX), JAX asks how the result of a gather, scatter or contraction over
the sharded axis is laid out; these helpers answer once: small results
(gathered rows, per-cluster sums) are replicated, per-sample results keep the
samples' sharding.
"""

from __future__ import annotations

import jax


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
