r"""Spherical k-means beside plain k-means: ACC / NMI / ARI and time on the same data, same run.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.spherical_kmeans          # MNIST-70k
  python -m bench.spherical_kmeans --dataset=digits --repeats=2                 # smoke test

Methods, all ours with the same n_init, seeds 0..repeats-1: spherical k-means (cosine on unit rows),
k-means on the raw rows, and k-means on L2-normalised rows (centroids are means, not on the sphere).
Reported: mean (std) over seeds of ACC, NMI and ARI, the median fit time (compilation apart), and the
mean cosine similarity of the points to their cluster's direction (the same code for every method).
Writes <out>.md and <out>.csv (default results/spherical_kmeans).
"""

from __future__ import annotations

import jax
import numpy as np

from bench import common
from research import data, metrics
from research.cluster import kmeans, spherical_kmeans


def run(mod, x, k, n_init, seed, first):
    return common.timed(mod.fit_timed, mod.fit, first, jax.random.key(seed), x, k, n_init=n_init)


def mean_cosine(xn, labels, k):
    """Mean cosine similarity of unit rows xn to the normalised mean direction of their cluster."""
    c = np.zeros((k, xn.shape[1]))
    np.add.at(c, labels, xn)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-30)
    return float(np.mean(np.sum(xn * c[labels], axis=1)))


def main():
    ap = common.parser(__doc__, "results/spherical_kmeans")
    ap.add_argument("--n_samples", type=int, default=0, help="a random subset of this many rows (0: all)")
    ap.add_argument("--n_clusters", type=int, default=10)
    ap.add_argument("--n_init", type=int, default=10)
    args = ap.parse_args()

    ds = data.load(args.dataset, "all", args.data_dir)
    x, y = np.ascontiguousarray(ds.x, np.float32), ds.y
    if args.n_samples and args.n_samples < len(x):
        pick = np.sort(np.random.default_rng(0).choice(len(x), args.n_samples, replace=False))
        x, y = x[pick], y[pick]
    xn = np.asarray(spherical_kmeans.normalize_rows(x))
    methods = {
        "spherical k-means": (spherical_kmeans, x),
        "k-means": (kmeans, x),
        "k-means on unit rows": (kmeans, xn),
    }
    rows = []
    for name, (mod, inputs) in methods.items():
        rep = common.repeat(run, args.repeats, mod, inputs, args.n_clusters, args.n_init, label=name)
        labels = [np.asarray(res.labels) for res in rep.outs]
        scores = [metrics.evaluate(y, lab) for lab in labels]
        row = {"method": name, "fit_seconds_median": rep.median, "compile_seconds": rep.compile_seconds}
        for m in ("acc", "nmi", "ari"):
            v = [s[m] for s in scores]
            row[f"{m}_mean"], row[f"{m}_std"] = float(np.mean(v)), float(np.std(v))
        row["mean_cosine"] = float(np.mean([mean_cosine(xn, lab, args.n_clusters) for lab in labels]))
        row["repeats"] = args.repeats
        rows.append(row)
    caption = (
        f"Spherical vs plain k-means on {ds.name} ({x.shape[0]}x{x.shape[1]}), k={args.n_clusters}, "
        f"n_init={args.n_init}; mean (std) over {args.repeats} seeds."
    )
    common.write_table(rows, COLUMNS, args.out, "bench.spherical_kmeans", caption=caption)


def _mean_std(m):
    return lambda r: f"{r[f'{m}_mean']:.4f} ({r[f'{m}_std']:.4f})"


COLUMNS = [
    ("method", "method"),
    ("ACC", _mean_std("acc")),
    ("NMI", _mean_std("nmi")),
    ("ARI", _mean_std("ari")),
    ("mean cosine to centroid", "mean_cosine", ".5f"),
    ("fit s (median)", "fit_seconds_median", ".2f"),
    ("compile s", "compile_seconds", ".2f"),
]


if __name__ == "__main__":
    main()
