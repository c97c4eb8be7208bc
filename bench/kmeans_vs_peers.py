r"""k-means side by side: jaxcluster vs scikit-learn KMeans vs faiss, same data, same run.

  pip install -e '.[bench]'   # faiss-cpu (scikit-learn is a runtime dependency)
  JAXCLUSTER_DATA=../shared/datasets python -m bench.kmeans_vs_peers

For each --n_init, every method fits --repeats times (seeds 0..). Reported: the median fit time (ours:
compilation apart), the inertia recomputed here in float64 from each method's centroids (the same code
for all), ACC and NMI. faiss runs --faiss_niter iterations (it has no tolerance).
Writes results/kmeans_vs_peers.md and .csv.
"""

from __future__ import annotations

import jax
import numpy as np

from bench import common
from research import data, metrics
from research.cluster import kmeans


def inertia64(x, centroids):
    """Sum of squared distances of each point to its nearest centroid, in float64; and the labels."""
    c = np.asarray(centroids, np.float64)
    labels = np.asarray(kmeans.predict(np.asarray(c, np.float32), x))
    diff = x.astype(np.float64) - c[labels]
    return float(np.einsum("nd,nd->", diff, diff)), labels


def run_ours(x, k, n_init, seed, first):
    res, secs, comp = common.timed(kmeans.fit_timed, kmeans.fit, first, jax.random.key(seed), x, k, n_init=n_init)
    return res.centroids, secs, comp


def run_sklearn(x, k, n_init, seed, first):
    from sklearn.cluster import KMeans

    km, secs, _ = common.clock(KMeans(k, n_init=n_init, random_state=seed, algorithm="lloyd").fit, x)
    return km.cluster_centers_, secs, None


def run_faiss(x, k, n_init, seed, first, niter=300):
    import faiss

    # All points, as the others use: by default faiss trains on a sample of 256 points per centroid.
    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, nredo=n_init, seed=seed + 1, verbose=False, max_points_per_centroid=len(x)
    )
    _, secs, _ = common.clock(km.train, x)
    return km.centroids, secs, None


def main():
    ap = common.parser(__doc__, "results/kmeans_vs_peers")
    ap.add_argument("--n_clusters", type=int, default=10)
    ap.add_argument("--n_init", default="1,10", help="comma-separated restart counts")
    ap.add_argument("--peers", default="sklearn,faiss")
    ap.add_argument("--faiss_niter", type=int, default=300)
    args = ap.parse_args()

    ds = data.load(args.dataset, "all", args.data_dir)
    x = np.ascontiguousarray(ds.x, np.float32)
    methods = {"jaxcluster": run_ours, "scikit-learn": run_sklearn}
    if "faiss" in args.peers:
        methods["faiss"] = lambda *a: run_faiss(*a, niter=args.faiss_niter)
    if "sklearn" not in args.peers:
        methods.pop("scikit-learn")

    rows = []
    for n_init in [int(v) for v in args.n_init.split(",")]:
        for name, fn in methods.items():
            rep = common.repeat(fn, args.repeats, x, args.n_clusters, n_init, label=f"{name} n_init={n_init}")
            inertias, labels = zip(*(inertia64(x, c) for c in rep.outs))
            scores = [metrics.evaluate(ds.y, lab) for lab in labels] if ds.y is not None else []
            rows.append(
                {
                    "method": name,
                    "n_init": n_init,
                    "fit_seconds_median": rep.median,
                    "compile_seconds": rep.compile_seconds,
                    "inertia_best": min(inertias),
                    "inertia_median": float(np.median(inertias)),
                    "acc_mean": float(np.mean([s["acc"] for s in scores])) if scores else None,
                    "nmi_mean": float(np.mean([s["nmi"] for s in scores])) if scores else None,
                    "repeats": args.repeats,
                }
            )
    caption = f"k-means on {ds.name} ({x.shape[0]}x{x.shape[1]}), k={args.n_clusters}; median of {args.repeats} seeds."
    common.write_table(rows, table_columns(rows), args.out, "bench.kmeans_vs_peers", caption=caption)


def table_columns(rows):
    sklearn = {r["n_init"]: r for r in rows if r["method"] == "scikit-learn"}

    def vs_sklearn(r, key):
        return sklearn.get(r["n_init"], {}).get(key)

    return [
        ("method", "method"),
        ("n_init", "n_init"),
        ("fit s (median)", "fit_seconds_median", ".2f"),
        ("compile s", "compile_seconds", ".2f"),
        ("speed-up vs sklearn", lambda r: common.ratio(vs_sklearn(r, "fit_seconds_median"), r["fit_seconds_median"])),
        ("inertia (best)", "inertia_best", ".7g"),
        ("inertia / sklearn best", lambda r: common.ratio(r["inertia_best"], vs_sklearn(r, "inertia_best"), ".5f", "")),
        ("ACC", "acc_mean", ".4f"),
        ("NMI", "nmi_mean", ".4f"),
    ]


if __name__ == "__main__":
    main()
