"""Figures researchers look at, saved as PNG with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def cluster_grid(
    x_nd, labels_n, image_shape, path, *, per_cluster: int = 10, seed: int = 0, title: str | None = None, y_n=None
) -> Path:
    """One row per cluster, `per_cluster` random members drawn in it (blank where a cluster is smaller).

    Rows are labelled with the cluster id, its size and, when true labels `y_n`
    are given, the cluster's majority class and its share.
    """
    if image_shape is None:
        raise ValueError("cluster_grid needs images; this dataset has no image_shape.")
    labels_n = np.asarray(labels_n)
    x_nd = np.asarray(x_nd)
    clusters = np.unique(labels_n)
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(
        len(clusters), per_cluster, figsize=(per_cluster * 0.8, len(clusters) * 0.85), squeeze=False
    )
    for row, c in enumerate(clusters):
        members = np.flatnonzero(labels_n == c)
        pick = rng.choice(members, size=min(per_cluster, len(members)), replace=False)
        for col in range(per_cluster):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if col < len(pick):
                ax.imshow(x_nd[pick[col]].reshape(image_shape), cmap="gray_r" if len(image_shape) == 2 else None)
        text = f"{c}: n={len(members)}"
        if y_n is not None:
            major = np.bincount(np.asarray(y_n)[members]).argmax()
            share = np.mean(np.asarray(y_n)[members] == major)
            text += f"\n{major} ({share:.0%})"
        axes[row, 0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
