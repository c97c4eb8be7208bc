"""Synthetic data drawn with NumPy alone: Gaussian blobs for teaching and tests.

    x_nd, y_n = synthetic.blobs(synthetic.Blobs(n_samples=500, centers=3, cluster_std=1.0, dim=2, seed=0))
    ds = data.load("blobs", blobs=synthetic.Blobs(centers=5))      # the same, as a Dataset

Each of `centers` blobs is an isotropic Gaussian with standard deviation `cluster_std` around a centre drawn
uniformly in the box [-10, 10]^dim (scikit-learn's `make_blobs` rule); the samples are shared out as evenly as
possible (the first blobs get one more when they do not divide) and shuffled. Labels are the blob ids. The
draw depends on `seed` alone: the same Blobs give the same bits on every machine (NumPy's PCG64).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

CENTER_BOX = (-10.0, 10.0)


class Blobs(NamedTuple):
    """The settings of a blobs dataset (the binaries' --blobs_* flags)."""

    n_samples: int = 500
    centers: int = 3
    cluster_std: float = 1.0
    dim: int = 2
    seed: int = 0


def check(spec: Blobs) -> Blobs:
    """The spec with whole numbers as ints; ValueError naming the setting that is out of range."""
    for name, low in (("n_samples", 1), ("centers", 1), ("dim", 1), ("seed", 0)):
        v = getattr(spec, name)
        if isinstance(v, bool) or not float(v).is_integer() or v < low:
            raise ValueError(f"blobs: {name} must be a whole number >= {low}, got {v!r}.")
    if not (math.isfinite(float(spec.cluster_std)) and spec.cluster_std > 0):
        raise ValueError(f"blobs: cluster_std must be a finite number > 0, got {spec.cluster_std!r}.")
    if spec.n_samples < spec.centers:
        raise ValueError(
            f"blobs: n_samples={spec.n_samples} is fewer than centers={spec.centers}; every blob needs a sample."
        )
    return Blobs(int(spec.n_samples), int(spec.centers), float(spec.cluster_std), int(spec.dim), int(spec.seed))


def blobs(spec: Blobs | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x [n_samples, dim] float32, y [n_samples] int64 blob ids) drawn as the module docstring says; `spec`
    None: Blobs()'s defaults."""
    spec = check(Blobs() if spec is None else spec)
    rng = np.random.default_rng(spec.seed)
    centres_cd = rng.uniform(*CENTER_BOX, size=(spec.centers, spec.dim))
    per_blob = np.full(spec.centers, spec.n_samples // spec.centers)
    per_blob[: spec.n_samples % spec.centers] += 1
    y_n = np.repeat(np.arange(spec.centers, dtype=np.int64), per_blob)
    x_nd = centres_cd[y_n] + spec.cluster_std * rng.standard_normal((spec.n_samples, spec.dim))
    order = rng.permutation(spec.n_samples)
    return x_nd[order].astype(np.float32), y_n[order]
