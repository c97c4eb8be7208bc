"""Figures researchers look at, saved as PNG with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from research import runlog


def _save(fig, path) -> Path:
    """Saves and closes `fig` (from the writing process only, `runlog.is_writer`)."""
    path = Path(path)
    if runlog.is_writer():
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def cluster_grid(
    x_nd,
    labels_n,
    image_shape,
    path,
    *,
    per_cluster: int = 10,
    seed: int = 0,
    title: str | None = None,
    y_n=None,
    cmap: str | None = None,
) -> Path:
    """One row per cluster, `per_cluster` random members drawn in it (blank where a cluster is smaller).

    Rows are labelled with the cluster id, its size and, when true labels `y_n`
    are given, the cluster's majority class and its share. Gray images (H, W) are
    drawn with `cmap` (default "gray_r", dark ink on white, for digits; "gray" for
    photos); (H, W, 3) rows are drawn as RGB in [0, 1].
    """
    if image_shape is None:
        raise ValueError("cluster_grid needs images; this dataset has no image_shape.")
    labels_n = np.asarray(labels_n)
    clusters = np.unique(labels_n)  # (x_nd is read only at the rows drawn: a memory-mapped file stays on disk)
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
                ax.imshow(
                    np.clip(x_nd[pick[col]].reshape(image_shape), 0.0, 1.0)
                    if len(image_shape) == 3
                    else x_nd[pick[col]].reshape(image_shape),
                    cmap=(cmap or "gray_r") if len(image_shape) == 2 else None,
                )
        text = f"{c}: n={len(members)}"
        if y_n is not None:
            major = np.bincount(np.asarray(y_n)[members]).argmax()
            share = np.mean(np.asarray(y_n)[members] == major)
            text += f"\n{major} ({share:.0%})"
        axes[row, 0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def confusion_matrix(conf, path, *, class_names=None, title: str | None = None) -> Path:
    """A confusion matrix [c, c] (rows: true class, columns: predicted) as a heat map.

    Cells are coloured by the row-normalised rate (each class's recall spread over the
    predictions, so rare classes are as visible as common ones) and annotated with counts.
    """
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"conf must be a square [c, c] matrix, got shape {conf.shape}.")
    c = conf.shape[0]
    names = [str(i) for i in range(c)] if class_names is None else [str(v) for v in class_names]
    rate = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    size = max(3.5, 0.45 * c + 1.5)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    im = ax.imshow(rate, cmap="Blues", vmin=0.0, vmax=1.0)
    if c <= 30:
        for i in range(c):
            for j in range(c):
                if conf[i, j]:
                    ax.text(
                        j,
                        i,
                        str(conf[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if rate[i, j] > 0.5 else "black",
                    )
    ax.set_xticks(range(c), names, fontsize=7)
    ax.set_yticks(range(c), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _check_pr(precision, recall, thresholds):
    precision, recall, thresholds = np.asarray(precision), np.asarray(recall), np.asarray(thresholds)
    if not (len(precision) == len(recall) == len(thresholds) + 1):
        raise ValueError(
            f"need precision and recall of length len(thresholds) + 1; got {len(precision)}, {len(recall)}, "
            f"{len(thresholds)}."
        )
    return precision, recall, thresholds


def _unit_axes(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)


def precision_recall_vs_threshold(
    precision, recall, thresholds, path, *, marked=None, title: str | None = None
) -> Path:
    """Precision and recall against the decision threshold (as `research.probe.precision_recall_curve` or
    scikit-learn's return them: [m + 1], [m + 1], [m]); `marked`: thresholds to draw as vertical lines,
    {label: threshold} (e.g. 0, the classifier's own, and the one for a target precision)."""
    precision, recall, thresholds = _check_pr(precision, recall, thresholds)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(thresholds, precision[:-1], label="precision")
    ax.plot(thresholds, recall[:-1], label="recall")
    for i, (label, t) in enumerate((marked or {}).items()):
        ax.axvline(t, color=f"C{i + 2}", lw=0.9, ls=":", label=label)
    ax.set_xlabel("threshold on the decision function")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def pr_curve(precision, recall, path, *, points=None, title: str | None = None) -> Path:
    """Precision against recall; `points`: {label: (precision, recall)} to mark (classifiers at chosen
    thresholds)."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot(np.asarray(recall), np.asarray(precision))
    for i, (label, (p, r)) in enumerate((points or {}).items()):
        ax.plot([r], [p], "o", color=f"C{i + 2}", label=label)
    if points:
        ax.legend(fontsize=8)
    _unit_axes(ax, "recall", "precision")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def roc_curve(fpr, tpr, auc: float, path, *, points=None, title: str | None = None) -> Path:
    """The ROC curve (true against false positive rate) with its area in the legend and the chance diagonal;
    `points`: {label: (fpr, tpr)} to mark."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot(np.asarray(fpr), np.asarray(tpr), label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--", label="chance")
    for i, (label, (f, t)) in enumerate((points or {}).items()):
        ax.plot([f], [t], "o", color=f"C{i + 2}", label=label)
    ax.legend(fontsize=8, loc="lower right")
    _unit_axes(ax, "false positive rate", "true positive rate (recall)")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def reconstructions(x_nd, x_hat_nd, image_shape, path, *, n: int = 10, seed: int = 0, title: str | None = None):
    """`n` random originals (top row) above their reconstructions (bottom row)."""
    if image_shape is None:
        raise ValueError("reconstructions needs images; this dataset has no image_shape.")
    pick = np.random.default_rng(seed).choice(len(x_nd), size=min(n, len(x_nd)), replace=False)
    fig, axes = plt.subplots(2, len(pick), figsize=(len(pick) * 0.9, 2.0), squeeze=False)
    cmap = "gray_r" if len(image_shape) == 2 else None
    for col, i in enumerate(pick):
        for row, rows in enumerate((x_nd, x_hat_nd)):
            ax = axes[row, col]
            ax.imshow(np.clip(np.asarray(rows[i]).reshape(image_shape), 0, 1), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("original", fontsize=7)
    axes[1, 0].set_ylabel("reconstructed", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


_CLASS_MARKERS = ("o", "s", "D", "^", "v", "<", ">", "p", "*", "h", "X", "P", "d", "8", "H")


def umatrix(
    umatrix_hw,
    winners_n2,
    path,
    *,
    y_n=None,
    max_points: int = 2000,
    jitter: float = 0.3,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """A self-organizing map's U-matrix (bone_r: dark = far from the neighbours) with the samples on it.

    umatrix_hw: [rows, cols] distance map (e.g. som.distance_map). winners_n2: [n, 2] (row, col) of each
    sample's best-matching unit. Up to `max_points` random samples are drawn at their unit, jittered, one
    marker and colour per class of `y_n` (one kind when there are no labels).
    """
    um = np.asarray(umatrix_hw)
    winners_n2 = np.asarray(winners_n2)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(winners_n2), size=min(max_points, len(winners_n2)), replace=False)
    h, w = um.shape
    fig, ax = plt.subplots(figsize=(max(4.0, w * 0.45 + 2.0), max(3.5, h * 0.45)))
    im = ax.imshow(um, cmap="bone_r", origin="upper", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="distance to neighbours (normalised)")
    pos = winners_n2[pick] + rng.uniform(-jitter, jitter, size=(len(pick), 2))
    if y_n is None:
        ax.scatter(pos[:, 1], pos[:, 0], s=12, marker="o", facecolors="none", edgecolors="tab:red", linewidths=0.8)
    else:
        y = np.asarray(y_n)[pick]
        classes = np.unique(y)
        colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            at = pos[y == c]
            style = {"s": 14, "marker": _CLASS_MARKERS[i % len(_CLASS_MARKERS)], "linewidths": 0.8, "label": str(c)}
            ax.scatter(at[:, 1], at[:, 0], facecolors="none", edgecolors=colours(i % colours.N), **style)
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncol=min(len(classes), 10),
            fontsize=7,
            title="class",
            title_fontsize=7,
            handletextpad=0.1,
            columnspacing=0.8,
        )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def density_contours(
    x_n2,
    log_density,
    path,
    *,
    labels_n=None,
    centroids_k2=None,
    grid_size: int = 150,
    max_points: int = 5000,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """Filled contours of a 2-D log-density with the points scattered over it.

    log_density: a callable mapping a [m, 2] array of grid points to [m] log-densities (e.g.
    `lambda g: gmm.score_samples(params, g)`). The grid spans the points with a 5% margin; the
    levels span the 1st to 100th percentile of the grid values, so the far tails do not flatten
    the picture. Up to `max_points` random points are drawn, coloured by `labels_n` when given;
    `centroids_k2` (e.g. the component means) are marked with crosses.
    """
    x_n2 = np.asarray(x_n2, np.float64)
    if x_n2.ndim != 2 or x_n2.shape[1] != 2:
        raise ValueError(f"density_contours needs 2-D points [n, 2], got shape {x_n2.shape}.")
    lo, hi = x_n2.min(axis=0), x_n2.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-12)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid_size)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid_size)
    mx, my = np.meshgrid(gx, gy)
    grid = np.stack([mx.ravel(), my.ravel()], axis=1).astype(np.float32)
    z = np.asarray(log_density(grid), np.float64).reshape(mx.shape)
    finite = z[np.isfinite(z)]
    vmin, vmax = (np.percentile(finite, 1), finite.max()) if finite.size else (0.0, 1.0)
    levels = np.linspace(vmin, vmax if vmax > vmin else vmin + 1.0, 15)
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    cs = ax.contourf(mx, my, np.clip(z, vmin, None), levels=levels, cmap="viridis", alpha=0.85)
    fig.colorbar(cs, ax=ax, fraction=0.046, pad=0.02, label="log density")
    pick = np.random.default_rng(seed).choice(len(x_n2), size=min(max_points, len(x_n2)), replace=False)
    if labels_n is None:
        ax.scatter(x_n2[pick, 0], x_n2[pick, 1], s=3, color="white", edgecolors="none", alpha=0.7)
    else:
        ax.scatter(x_n2[pick, 0], x_n2[pick, 1], s=3, c=np.asarray(labels_n)[pick], cmap="tab20", edgecolors="none")
    if centroids_k2 is not None:
        c = np.asarray(centroids_k2)
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=40, c="red", linewidths=1.5, label="means")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_xlabel("feature 1")
    ax.set_ylabel("feature 2")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def k_selection(ks, inertia, silhouette, bic, path, *, suggested: dict | None = None, title: str | None = None):
    """Three panels against K: k-means inertia (elbow), mean silhouette, GMM BIC; the K each suggests marked.

    ks: the K values; inertia, silhouette, bic: one value per K (NaN where not computed, e.g.
    silhouette at K = 1). suggested: {"elbow": K, "silhouette": K, "bic": K} (any subset).
    """
    ks = np.asarray(ks)
    suggested = suggested or {}
    panels = (
        ("k-means inertia (elbow)", inertia, "elbow"),
        ("mean silhouette (k-means)", silhouette, "silhouette"),
        ("GMM BIC (lower is better)", bic, "bic"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.4))
    for ax, (name, values, which) in zip(axes, panels):
        values = np.asarray(values, np.float64)
        ax.plot(ks, values, "o-", ms=3.5, lw=1.2)
        best = suggested.get(which)
        if best is not None and best in ks:
            ax.axvline(best, color="tab:red", ls="--", lw=1.0)
            ax.plot([best], [values[list(ks).index(best)]], "o", color="tab:red", ms=6, label=f"K={best}")
            ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("K")
        ax.set_xticks(ks if len(ks) <= 20 else ks[:: -(-len(ks) // 20)])
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def training_curves(rows, path, *, metrics=("acc", "nmi", "ari"), title: str | None = None) -> Path:
    """Scores over training steps (left axis) and the fraction of labels that changed (right, log scale).

    rows: dicts with "step" and any of `metrics` and "delta_label", e.g. DEC's rows of metrics.jsonl.
    """
    rows = sorted(rows, key=lambda r: r["step"])
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for m in metrics:
        pts = [(r["step"], r[m]) for r in rows if m in r]
        if pts:
            ax.plot(*zip(*pts), marker=".", label=m.upper().replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("score")
    pts = [(r["step"], r["delta_label"]) for r in rows if r.get("delta_label", 0) > 0]
    if pts:
        right = ax.twinx()
        right.plot(*zip(*pts), color="gray", linestyle=":", label="labels changed")
        right.set_yscale("log")
        right.set_ylabel("fraction of labels changed", color="gray")
        right.legend(loc="lower right", fontsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def embedding_2d(z_n2, labels_n, path, *, centroids_k2=None, title: str | None = None, axis_names=("1", "2")) -> Path:
    """Points of a 2-D picture of an embedding coloured by cluster, with the cluster centroids as black crosses
    (said in the title)."""
    z_n2, labels_n = np.asarray(z_n2), np.asarray(labels_n)
    clusters = np.unique(labels_n)
    colours = plt.get_cmap("tab10" if len(clusters) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    for i, c in enumerate(clusters):
        at = z_n2[labels_n == c]
        ax.scatter(at[:, 0], at[:, 1], s=4, alpha=0.6, color=colours(i % colours.N), label=str(c), linewidths=0)
    if centroids_k2 is not None:
        centroids_k2 = np.asarray(centroids_k2)
        ax.scatter(centroids_k2[:, 0], centroids_k2[:, 1], s=60, marker="x", color="black")
    ax.legend(markerscale=3, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="cluster")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if title or centroids_k2 is not None:
        ax.set_title(
            " ".join(filter(None, [title, "(x: centroids)" if centroids_k2 is not None else None])), fontsize=9
        )
    return _save(fig, path)


def embedding_pca(z_nd, labels_n, path, *, centroids_kd=None, title: str = "", seed: int = 0, max_points: int = 3000):
    """`embedding_2d` of at most `max_points` random rows of an embedding, projected on its first two principal
    axes (fitted on those rows; the centroids projected alike)."""
    z_nd, labels_n = np.asarray(z_nd, np.float64), np.asarray(labels_n)
    pick = np.random.default_rng(seed).choice(len(z_nd), size=min(max_points, len(z_nd)), replace=False)
    mean = z_nd[pick].mean(axis=0)
    axes_2d = np.linalg.svd(z_nd[pick] - mean, full_matrices=False)[2][:2].T
    project = lambda a: (np.asarray(a, np.float64) - mean) @ axes_2d
    return embedding_2d(
        project(z_nd[pick]),
        labels_n[pick],
        path,
        centroids_k2=None if centroids_kd is None else project(centroids_kd),
        title=f"{title}: embedding of {len(pick)} samples",
        axis_names=("PC 1", "PC 2"),
    )


def k_curves(ks, curves: dict, path, *, title: str | None = None) -> Path:
    """One panel per named curve over K (e.g. {"nmi": [...], "generalizability": [...]}), side by side."""
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.2), squeeze=False, layout="constrained")
    for ax, (name, values) in zip(axes[0], curves.items(), strict=True):
        ax.plot(ks, values, marker="o")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # K is whole: no 2.5 ticks
        ax.set_xlabel("K")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _scatter_by(ax, z_n2, labels_n, legend_title: str):
    """Points coloured by label (tab10/tab20); label -1 (DBSCAN's noise) in light grey, drawn first."""
    labels_n = np.asarray(labels_n)
    groups = np.unique(labels_n)
    colours = plt.get_cmap("tab10" if len(groups[groups >= 0]) <= 10 else "tab20")
    for i, c in enumerate(groups[groups >= 0]):
        at = z_n2[labels_n == c]
        ax.scatter(at[:, 0], at[:, 1], s=2, alpha=0.6, color=colours(i % colours.N), label=str(c), linewidths=0)
    if np.any(groups < 0):
        at = z_n2[labels_n < 0]
        ax.scatter(at[:, 0], at[:, 1], s=2, alpha=0.4, color="lightgrey", label="noise", linewidths=0, zorder=0)
    if len(groups) <= 25:
        ax.legend(markerscale=4, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), title=legend_title)
    ax.set_xticks([])
    ax.set_yticks([])


def embedding_panels(z_n2, panels, path, *, title: str | None = None) -> Path:
    """One 2-D embedding drawn once per labelling, side by side: panels = [(labels_n, panel title, legend
    title), ...], e.g. the true classes and the clusters found (label -1 is drawn as grey noise)."""
    z_n2 = np.asarray(z_n2)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (labels_n, name, legend_title) in zip(axes[0], panels):
        _scatter_by(ax, z_n2, labels_n, legend_title)
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def embedding_thumbnails(
    z_n2, x_nd, image_shape, path, *, labels_n=None, n: int = 200, seed: int = 0, title: str | None = None
) -> Path:
    """A 2-D embedding with `n` random samples drawn as image thumbnails at their points, over all the points
    (coloured by `labels_n` when given)."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    z_n2, x_nd = np.asarray(z_n2), np.asarray(x_nd)
    fig, ax = plt.subplots(figsize=(9.0, 8.0))
    if labels_n is None:
        ax.scatter(z_n2[:, 0], z_n2[:, 1], s=1, color="lightgrey", linewidths=0)
    else:
        _scatter_by(ax, z_n2, labels_n, "label")
    pick = np.random.default_rng(seed).choice(len(z_n2), size=min(n, len(z_n2)), replace=False)
    zoom = 0.5 * 28 / max(image_shape[:2])  # thumbnails of about 14 pixels whatever the image size
    for i in pick:
        img = x_nd[i].reshape(image_shape)
        box = OffsetImage(img, cmap="gray_r", zoom=zoom, alpha=0.9)
        ax.add_artist(AnnotationBbox(box, z_n2[i], frameon=False, pad=0.0))
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def embedding_sweep(embeddings, names, labels_n, path, *, title: str | None = None) -> Path:
    """Small multiples: several 2-D embeddings of the same points (e.g. one per perplexity), coloured alike."""
    cols = min(4, len(embeddings))
    rows = -(-len(embeddings) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.ravel()[len(embeddings) :]:
        ax.axis("off")
    for ax, z_n2, name in zip(axes.ravel(), embeddings, names):
        _scatter_by(ax, np.asarray(z_n2), labels_n, "label")
        if ax.get_legend() is not None and ax is not axes.ravel()[len(embeddings) - 1]:
            ax.get_legend().remove()
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def embedding_snapshots(
    points_pm2, labels, names, path, *, centroids_pk2=None, legend_title="label", max_panels: int = 12, title=None
) -> Path:
    """Small multiples of one embedding as it changes (e.g. DEC's codes at its target updates), already projected
    to 2-D alike: points [p, m, 2], labels [m] (one colouring, e.g. the true classes) or [p, m] (one per panel,
    e.g. the clusters), names [p]. At most `max_panels` are drawn, evenly spaced, the first and last kept."""
    points_pm2 = np.asarray(points_pm2)
    labels = np.asarray(labels)
    p = len(points_pm2)
    pick = np.unique(np.round(np.linspace(0, p - 1, min(p, max_panels))).astype(int))
    cols = min(4, len(pick))
    rows = -(-len(pick) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.ravel()[len(pick) :]:
        ax.axis("off")
    for j, (ax, i) in enumerate(zip(axes.ravel(), pick)):
        _scatter_by(ax, points_pm2[i], labels[i] if labels.ndim == 2 else labels, legend_title)
        if centroids_pk2 is not None:
            c = np.asarray(centroids_pk2)[i]
            ax.scatter(c[:, 0], c[:, 1], s=40, marker="x", color="black", linewidths=1.2)
        if ax.get_legend() is not None and j != len(pick) - 1:
            ax.get_legend().remove()
        ax.set_title(names[i], fontsize=9)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def curve_crossings(xs, a, b) -> list[float]:
    """The x where curves a and b (sampled at increasing xs) meet, linearly interpolated between samples."""
    xs, d = np.asarray(xs, np.float64), np.asarray(a, np.float64) - np.asarray(b, np.float64)
    out = [float(xs[i]) for i in range(len(d)) if d[i] == 0]
    for i in range(len(d) - 1):
        if d[i] * d[i + 1] < 0:
            out.append(float(xs[i] + (xs[i + 1] - xs[i]) * d[i] / (d[i] - d[i + 1])))
    return sorted(out)


def crossing_curves(xs, a, b, names, path, *, xlabel: str = "K", title: str | None = None) -> Path:
    """Two curves of one scale on one axis (e.g. NMI and the DEC paper's G over K), their crossings marked and
    annotated; when they do not cross, the figure says so and where they come closest."""
    xs, a, b = (np.asarray(v, np.float64) for v in (xs, a, b))
    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    ax.plot(xs, a, marker="o", label=names[0])
    ax.plot(xs, b, marker="s", label=names[1])
    crossings = curve_crossings(xs, a, b)
    for x in crossings:
        y = float(np.interp(x, xs, a))
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"cross at {xlabel} ≈ {x:.2f}", (x, y), xytext=(8, -18), textcoords="offset points", fontsize=8)
        ax.plot([x], [y], marker="x", color="black", markersize=9)
    note = None
    if not crossings:
        i = int(np.argmin(np.abs(a - b)))
        below = names[0] if a[i] < b[i] else names[1]
        ax.annotate("", xy=(xs[i], a[i]), xytext=(xs[i], b[i]), arrowprops={"arrowstyle": "<->", "color": "grey"})
        note = (
            f"no crossing for {xlabel} = {xs[0]:g}..{xs[-1]:g}:\n{below} stays below (closest at "
            f"{xlabel} = {xs[i]:g}, gap {abs(a[i] - b[i]):.3f})"
        )
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=8, loc="best", title=note, title_fontsize=8)
    legend.get_title().set_multialignment("left")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def image_preview(x_nd, image_shape, path, *, rows: int = 10, cols: int = 10, seed: int = 0, title=None) -> Path:
    """A rows x cols grid of random samples (all of them when fewer), drawn as one mosaic image.

    Gray (H, W) images are drawn dark on white, (H, W, 3) as RGB. Data already in [0, 1] is drawn as it is;
    other values are scaled per image to its own min..max.
    """
    if image_shape is None or len(image_shape) not in (2, 3) or (len(image_shape) == 3 and image_shape[2] != 3):
        raise ValueError(f"image_preview needs images of shape (H, W) or (H, W, 3), got {image_shape}.")
    h, w = image_shape[:2]
    n = min(rows * cols, len(x_nd))
    pick = np.sort(np.random.default_rng(seed).choice(len(x_nd), size=n, replace=False))
    tiles = np.asarray(x_nd[pick], np.float32).reshape(n, h, w, -1)  # sorted rows: a memory-mapped file reads less
    if tiles.min() < 0 or tiles.max() > 1:
        low = tiles.min(axis=(1, 2, 3), keepdims=True)
        tiles = (tiles - low) / np.maximum(tiles.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
    if tiles.shape[-1] == 1:
        tiles = 1.0 - tiles  # dark ink on white, as the other image figures draw gray images
    rows = -(-n // cols)
    gap = max(1, h // 16)
    mosaic = np.ones((rows * (h + gap) + gap, cols * (w + gap) + gap, tiles.shape[-1]), np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        mosaic[gap + r * (h + gap) : (r + 1) * (h + gap), gap + c * (w + gap) : (c + 1) * (w + gap)] = tile
    scale = max(0.5, min(1.0, 0.1 * max(h, w)))  # inches per tile: small images are not drawn tiny
    fig, ax = plt.subplots(figsize=(cols * scale, rows * scale + (0.3 if title else 0.0)))
    ax.imshow(mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def centroid_paths(x_nd, labels_n, history_tkd, path, *, title=None, seed: int = 0, max_points: int = 3000) -> Path:
    """The centroids' paths over the iterations of an iterative clustering (k-means' history [T, k, d]: row 0
    the seeding, row T - 1 the end), drawn over at most `max_points` random points coloured by final label.

    Data of more than two features is drawn on its first two principal axes (fitted on those points; the
    paths projected alike), one feature against zero.
    """
    x_nd, labels_n = np.asarray(x_nd, np.float64), np.asarray(labels_n)
    hist_tkd = np.asarray(history_tkd, np.float64)
    if hist_tkd.ndim != 3 or hist_tkd.shape[2] != x_nd.shape[1]:
        raise ValueError(
            f"history must be [T, k, {x_nd.shape[1]}] (iterations, clusters, features), got {hist_tkd.shape}."
        )
    pick = np.random.default_rng(seed).choice(len(x_nd), size=min(max_points, len(x_nd)), replace=False)
    x_nd, labels_n = x_nd[pick], labels_n[pick]
    if x_nd.shape[1] > 2:
        mean = x_nd.mean(axis=0)
        axes_d2 = np.linalg.svd(x_nd - mean, full_matrices=False)[2][:2].T
        x_n2, hist_tk2, names = (x_nd - mean) @ axes_d2, (hist_tkd - mean) @ axes_d2, ("PC 1", "PC 2")
    elif x_nd.shape[1] == 1:
        x_n2, hist_tk2, names = np.pad(x_nd, ((0, 0), (0, 1))), np.pad(hist_tkd, ((0, 0), (0, 0), (0, 1))), ("x", "")
    else:
        x_n2, hist_tk2, names = x_nd, hist_tkd, ("x1", "x2")
    k = hist_tk2.shape[1]
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(5.8, 5.0))
    for c in range(k):
        at = x_n2[labels_n == c]
        ax.scatter(at[:, 0], at[:, 1], s=4, alpha=0.35, color=colours(c % colours.N), linewidths=0)
    for c in range(k):
        ax.plot(hist_tk2[:, c, 0], hist_tk2[:, c, 1], "-", color="black", lw=1.0, marker=".", ms=4, zorder=3)
    start, end = hist_tk2[0], hist_tk2[-1]
    ax.scatter(start[:, 0], start[:, 1], s=45, facecolors="white", edgecolors="black", zorder=4, label="seeding")
    ax.scatter(
        end[:, 0],
        end[:, 1],
        s=90,
        marker="X",
        color=[colours(c % colours.N) for c in range(k)],
        edgecolors="black",
        zorder=5,
        label=f"after {len(hist_tk2) - 1} iterations",
    )
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def loss_curves(rows, path, *, steps_per_epoch: int = 1, title: str | None = None) -> Path:
    """Training loss ("loss") and, where logged, validation loss ("eval_loss") of metrics.jsonl rows against
    epochs (steps / `steps_per_epoch`), on a log scale."""
    rows = sorted(rows, key=lambda r: r["step"])
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for key, name in (("loss", "training"), ("eval_loss", "validation")):
        pts = [(r["step"] / steps_per_epoch, r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 60 else None, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if any(r.get("loss", 0) > 0 for r in rows):
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def augment_preview(columns, image_shape, path, *, title: str | None = None) -> Path:
    """A grid of images: one row per sample, one column per (name, x_nd [n, d]) of `columns`, e.g. the originals
    then what an augmentation makes of them."""
    n = len(columns[0][1])
    fig, axes = plt.subplots(n, len(columns), figsize=(0.95 * len(columns), 0.95 * n + 0.5), squeeze=False)
    cmap = "gray_r" if len(image_shape) == 2 else None
    for col, (name, x_nd) in enumerate(columns):
        for row in range(n):
            ax = axes[row, col]
            ax.imshow(np.clip(np.asarray(x_nd[row]).reshape(image_shape), 0, 1), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(name, fontsize=6)
    if title:
        fig.suptitle(title, fontsize=7)
    return _save(fig, path)
