r"""Spherical k-means beside plain k-means: ACC / NMI / ARI and time on the same data, same run.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.spherical_kmeans          # MNIST-70k
  python -m bench.spherical_kmeans --dataset=digits --repeats=2                 # smoke test
  python -m bench.spherical_kmeans --n_samples=5000 --repeats=2                 # MNIST subset

Methods, all from jaxcluster with the same n_init, seeds 0..repeats-1:
  spherical k-means         cosine similarity on the unit rows (spherical_kmeans.fit)
  k-means                   Euclidean, raw rows (kmeans.fit)
  k-means on unit rows      Euclidean on L2-normalised rows: same seeding, but
                            centroids are means, not projected on the sphere

Each row reports the mean and std over seeds of ACC, NMI and ARI against the
true labels, the median fit time (compilation timed apart on the first seed)
and the mean cosine similarity of the points to their centroid (computed here
the same way for every method). Writes <out>.md and <out>.csv (default
results/spherical_kmeans).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import numpy as np

from research import data, metrics, report
from research.cluster import kmeans, spherical_kmeans


def _timed(mod, x, k, n_init, seed, first):
    if first:
        t = mod.fit_timed(jax.random.key(seed), x, k, n_init=n_init)
        return t.out, t.run_seconds, t.compile_seconds
    t0 = time.perf_counter()
    res = jax.block_until_ready(mod.fit(jax.random.key(seed), x, k, n_init=n_init))
    return res, time.perf_counter() - t0, None


def mean_cosine(xn, labels, k):
    """Mean cosine similarity of unit rows xn to the normalised mean direction of their cluster."""
    c = np.zeros((k, xn.shape[1]))
    np.add.at(c, labels, xn)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-30)
    return float(np.mean(np.sum(xn * c[labels], axis=1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--n_samples", type=int, default=0, help="a random subset of this many rows (0: all)")
    ap.add_argument("--n_clusters", type=int, default=10)
    ap.add_argument("--n_init", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="results/spherical_kmeans")
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
        scores, times, compile_s, cosines = [], [], None, []
        for seed in range(args.repeats):
            res, secs, comp = _timed(mod, inputs, args.n_clusters, args.n_init, seed, seed == 0)
            compile_s = comp if comp is not None else compile_s
            labels = np.asarray(res.labels)
            scores.append(metrics.evaluate(y, labels))
            cosines.append(mean_cosine(xn, labels, args.n_clusters))
            times.append(secs)
            print(
                f"{name:22s} seed={seed} {secs:6.2f}s acc={scores[-1]['acc']:.4f} nmi={scores[-1]['nmi']:.4f} "
                f"ari={scores[-1]['ari']:.4f} cos={cosines[-1]:.5f}",
                flush=True,
            )
        row = {"method": name, "fit_seconds_median": statistics.median(times), "compile_seconds": compile_s}
        for m in ("acc", "nmi", "ari"):
            v = [s[m] for s in scores]
            row[f"{m}_mean"], row[f"{m}_std"] = float(np.mean(v)), float(np.std(v))
        row["mean_cosine"] = float(np.mean(cosines))
        row["repeats"] = args.repeats
        rows.append(row)
    write(rows, args, ds.name, x)


def write(rows, args, name, x):
    out = report.write_csv(rows, args.out)
    lines = [
        (
            f"Spherical vs plain k-means on {name} ({x.shape[0]}x{x.shape[1]}), k={args.n_clusters}, "
            f"n_init={args.n_init}; mean (std) over {args.repeats} seeds; {report.cpu_name()}, {os.cpu_count()} cores; "
            f"jax {jax.__version__} on {jax.default_backend()}."
        ),
        "",
        "| method | ACC | NMI | ARI | mean cosine to centroid | fit s (median) | compile s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        comp = f"{r['compile_seconds']:.2f}" if r["compile_seconds"] is not None else "-"
        lines.append(
            f"| {r['method']} | {r['acc_mean']:.4f} ({r['acc_std']:.4f}) | {r['nmi_mean']:.4f} ({r['nmi_std']:.4f}) "
            f"| {r['ari_mean']:.4f} ({r['ari_std']:.4f}) | {r['mean_cosine']:.5f} | {r['fit_seconds_median']:.2f} "
            f"| {comp} |"
        )
    sub = f" --n_samples={args.n_samples}" if args.n_samples else ""
    lines += [
        "",
        (
            f"Command: `python -m bench.spherical_kmeans --dataset={args.dataset}{sub} --n_init={args.n_init} "
            f"--repeats={args.repeats}`"
        ),
    ]
    report.write_markdown(lines, out)


if __name__ == "__main__":
    main()
