r"""k-means side by side: jaxcluster vs scikit-learn KMeans vs faiss, same data, same run.

  pip install -e '.[bench]'   # faiss-cpu (scikit-learn is a runtime dependency)
  JAXCLUSTER_DATA=../shared/datasets python -m bench.kmeans_vs_peers

For each n_init, every method fits `--repeats` times with seeds 0.. and we
report the median fit time (ours: compilation timed apart, on the first call),
the inertia and ACC/NMI. Inertia is recomputed here in float64 from each
method's centroids (each point to its nearest centroid), so every method is
scored by the same code. faiss runs a fixed number of iterations (no
tolerance): we give it --faiss_niter (default 300, scikit-learn's max_iter).

Writes results/kmeans_vs_peers.md and .csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import numpy as np

from research import data, metrics, report
from research.cluster import kmeans


def inertia64(x, centroids):
    """Sum of squared distances of each point to its nearest centroid, in float64; and the labels."""
    c = np.asarray(centroids, np.float64)
    labels = np.asarray(kmeans.predict(np.asarray(c, np.float32), x))
    diff = x.astype(np.float64) - c[labels]
    return float(np.einsum("nd,nd->", diff, diff)), labels


def run_ours(x, k, n_init, seed, first):
    if first:  # the first call compiles: time it apart
        t = kmeans.fit_timed(jax.random.key(seed), x, k, n_init=n_init)
        return t.out.centroids, t.run_seconds, t.compile_seconds
    t0 = time.perf_counter()
    res = jax.block_until_ready(kmeans.fit(jax.random.key(seed), x, k, n_init=n_init))
    return res.centroids, time.perf_counter() - t0, None


def run_sklearn(x, k, n_init, seed, first):
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = KMeans(k, n_init=n_init, random_state=seed, algorithm="lloyd").fit(x)
    return km.cluster_centers_, time.perf_counter() - t0, None


def run_faiss(x, k, n_init, seed, first, niter=300):
    import faiss

    t0 = time.perf_counter()
    # All points, as the others use: by default faiss trains on a sample of 256 points per centroid.
    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, nredo=n_init, seed=seed + 1, verbose=False, max_points_per_centroid=len(x)
    )
    km.train(x)
    return km.centroids, time.perf_counter() - t0, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--n_clusters", type=int, default=10)
    ap.add_argument("--n_init", default="1,10", help="comma-separated restart counts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers", default="sklearn,faiss")
    ap.add_argument("--faiss_niter", type=int, default=300)
    ap.add_argument("--out", default="results/kmeans_vs_peers")
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
            times, inertias, accs, nmis, compile_s = [], [], [], [], None
            for seed in range(args.repeats):
                centroids, secs, comp = fn(x, args.n_clusters, n_init, seed, seed == 0)
                compile_s = comp if comp is not None else compile_s
                inertia, labels = inertia64(x, centroids)
                times.append(secs)
                inertias.append(inertia)
                if ds.y is not None:
                    accs.append(metrics.acc(ds.y, labels))
                    nmis.append(metrics.nmi(ds.y, labels))
                print(f"{name:12s} n_init={n_init:<3d} seed={seed} {secs:7.2f}s inertia={inertia:.7g}", flush=True)
            rows.append(
                {
                    "method": name,
                    "n_init": n_init,
                    "fit_seconds_median": statistics.median(times),
                    "compile_seconds": compile_s,
                    "inertia_best": min(inertias),
                    "inertia_median": statistics.median(inertias),
                    "acc_mean": float(np.mean(accs)) if accs else None,
                    "nmi_mean": float(np.mean(nmis)) if nmis else None,
                    "repeats": args.repeats,
                }
            )
    write(rows, args, ds, x)


def write(rows, args, ds, x):
    out = report.write_csv(rows, args.out)
    base = {r["n_init"]: r for r in rows if r["method"] == "scikit-learn"}
    lines = [
        (
            f"k-means on {ds.name} ({x.shape[0]}x{x.shape[1]}), k={args.n_clusters}; {report.cpu_name()}, "
            f"{os.cpu_count()} cores; median of {args.repeats} seeds; jax {jax.__version__} on {jax.default_backend()}."
        ),
        "",
        (
            "| method | n_init | fit s (median) | compile s | speed-up vs sklearn | inertia (best) | inertia / sklearn best "
            "| ACC | NMI |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = base.get(r["n_init"])
        speed = f"{ref['fit_seconds_median'] / r['fit_seconds_median']:.1f}x" if ref else ""
        ratio = f"{r['inertia_best'] / ref['inertia_best']:.5f}" if ref else ""
        comp = f"{r['compile_seconds']:.2f}" if r["compile_seconds"] is not None else "-"
        acc = f"{r['acc_mean']:.4f}" if r["acc_mean"] is not None else "-"
        nmi = f"{r['nmi_mean']:.4f}" if r["nmi_mean"] is not None else "-"
        lines.append(
            f"| {r['method']} | {r['n_init']} | {r['fit_seconds_median']:.2f} | {comp} | {speed} | "
            f"{r['inertia_best']:.7g} | {ratio} | {acc} | {nmi} |"
        )
    lines += ["", f"Command: `python -m bench.kmeans_vs_peers --n_init={args.n_init} --repeats={args.repeats}`"]
    report.write_markdown(lines, out)


if __name__ == "__main__":
    main()
