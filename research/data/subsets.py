"""Subsets of a dataset drawn for experiments: the DEC paper's imbalanced MNIST, held-out validation rows."""

from __future__ import annotations

import numpy as np

from research.data.sources import Dataset


def imbalanced(ds: Dataset, r_min: float, seed: int = 0) -> Dataset:
    """Keeps each sample of class k (k-th of the C classes in sorted order) with probability
    r_min + (1 - r_min) * k / (C - 1): the smallest class keeps about r_min of its samples, the largest all
    (DEC paper, section 5.2, with C = 10). The draw depends on `seed` only, so every method run with one seed
    sees the same subset."""
    if ds.y is None:
        raise ValueError(f"an imbalanced subset is drawn by class, and {ds.name} has no labels.")
    if not 0 < r_min <= 1:
        raise ValueError(f"the smallest retention rate must be in (0, 1], got {r_min}.")
    classes, y_index = np.unique(ds.y, return_inverse=True)
    rate = r_min + (1 - r_min) * np.arange(len(classes)) / max(len(classes) - 1, 1)
    keep = np.random.default_rng(seed).random(len(ds.y)) < rate[y_index]
    return ds._replace(x=ds.x[keep], y=ds.y[keep])


def split_validation(ds: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, validation): a random `fraction` of the rows held out (at least one row on each side)."""
    n = len(ds.x)
    n_val = round(fraction * n)
    if not 0 < fraction < 1 or not 0 < n_val < n:
        raise ValueError(f"validation fraction {fraction} leaves no rows on one side of {n} samples.")
    order = np.random.default_rng(seed).permutation(n)
    val, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    return tuple(ds._replace(x=ds.x[i], y=None if ds.y is None else ds.y[i]) for i in (tr, val))
