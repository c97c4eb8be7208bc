r"""DBSCAN side by side: ours (auto: tile pairs; grid cell lists on 2-D; blocked) vs scikit-learn, on MNIST embeddings.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.dbscan_vs_sklearn

Two inputs, both made here by our code with seed 0: the 2-D t-SNE picture of MNIST-70k (as
experiments.tsne_dbscan makes it) and its 10-D UMAP-style embedding (as experiments.manifold_cluster).
eps: the 0.9 quantile of the distance to the 10th neighbour (itself counted), min_samples 10. Each method runs
--repeats times on the same input (median seconds; ours: compilation apart). "same cores / noise" compares the
core points and the noise points with scikit-learn's; pairs whose distance rounds to either side of eps in
float32 and float64 can move a point across. Writes results/dbscan_vs_sklearn.{md,csv}.
"""

from __future__ import annotations

import jax
import numpy as np

from bench import common, embed_vs_peers
from research import data, metrics
from research.cluster import dbscan
from research.embed import neighbors


def embeddings(x, seed: int, tsne_iter: int = 750) -> dict:
    """The 2-D t-SNE and the 10-D UMAP-style embedding of x, made as bench.embed_vs_peers makes ours."""
    tsne_2d = embed_vs_peers.ours_tsne(x, seed, tsne_iter)
    return {"t-SNE 2-D": tsne_2d, "UMAP-style 10-D": embed_vs_peers.ours_umap(x, seed)}


def run(method: str, z, eps: float, min_samples: int, repeats: int):
    """(labels, core mask, seconds of each repeat, compile seconds or None) of one method on z."""
    if method == "scikit-learn":
        from sklearn.cluster import DBSCAN

        outs, seconds, _ = zip(*[common.clock(DBSCAN(eps=eps, min_samples=min_samples).fit, z) for _ in range(repeats)])
        return outs[0].labels_, np.isin(np.arange(len(z)), outs[0].core_sample_indices_), seconds, None

    def fit(z):
        return jax.block_until_ready(dbscan.fit(z, eps, min_samples, method=method, block_size=256))

    out, first_s, compile_s = common.twice(fit, z)
    seconds = [first_s] + [common.clock(fit, z)[1] for _ in range(repeats - 1)]
    return np.asarray(out.labels), np.asarray(out.core_mask), seconds, compile_s


def main():
    ap = common.parser(__doc__, "results/dbscan_vs_sklearn", repeats=5)
    ap.add_argument(
        "--methods", default="auto,cells,blocked,scikit-learn", help="of auto, tiles, cells, blocked, scikit-learn"
    )
    ap.add_argument("--min_samples", type=int, default=10)
    ap.add_argument("--n_samples", type=int, default=0, help="a random subset of this size (0: all)")
    ap.add_argument("--tsne_iter", type=int, default=750, help="t-SNE steps of the 2-D input (quick runs: fewer)")
    args = ap.parse_args()
    ds = data.load(args.dataset, "all", args.data_dir)
    methods = sorted(args.methods.split(","), key=lambda m: m != "scikit-learn")  # the reference first
    x, y = np.asarray(ds.x, np.float32), ds.y
    if args.n_samples:
        pick = np.sort(np.random.default_rng(0).permutation(len(x))[: args.n_samples])
        x, y = x[pick], y[pick]
    rows = []
    for input_name, z in embeddings(x, 0, args.tsne_iter).items():
        eps = float(np.quantile(np.asarray(neighbors.knn(z, args.min_samples - 1).distances[:, -1]), 0.9))
        ref = None
        for method in methods:
            if method == "cells" and z.shape[1] > 3:  # a grid over two coordinates: too many candidates
                continue
            labels, core, seconds, compile_s = run(method, z, eps, args.min_samples, args.repeats)
            if method != "scikit-learn":
                method = f"ours, {method}" + (f" ({dbscan.method_for(z, eps)})" if method == "auto" else "")
            row = {
                "input": input_name,
                "method": method,
                "eps": round(eps, 4),
                "seconds": round(float(np.median(seconds)), 3),
                "compile_s": None if compile_s is None else round(compile_s, 1),
                "n_clusters": int(labels.max()) + 1,
                "noise": round(float(np.mean(labels < 0)), 4),
                "acc": round(metrics.acc(y, labels), 4),
                "nmi": round(metrics.nmi(y, labels), 4),
            }
            if ref is None and method == "scikit-learn":
                ref = (labels, core, row["seconds"])
            elif ref is not None:
                row["speedup"] = common.ratio(ref[2], row["seconds"])
                row["core_differ"] = int(np.sum(core != ref[1]))
                row["noise_differ"] = int(np.sum((labels < 0) != (ref[0] < 0)))
            rows.append(row)
            print(row, flush=True)
    caption = (
        f"DBSCAN on embeddings of {len(x)} {common.data_name(ds.name)} images (min_samples {args.min_samples}, "
        f"eps as above), median of {args.repeats} runs; ours: compile time apart. ACC / NMI of DBSCAN's partition "
        "with noise as one more cluster."
    )
    common.write_table(rows, COLUMNS, args.out, "bench.dbscan_vs_sklearn", caption=caption)


COLUMNS = [
    ("input", "input"),
    ("method", "method"),
    ("eps", "eps"),
    ("seconds", "seconds", ".3f"),
    ("compile (s)", "compile_s", ".1f"),
    ("vs scikit-learn", "speedup"),
    (
        "cores / noise points unlike scikit-learn's",
        lambda r: f"{r['core_differ']} / {r['noise_differ']}" if "core_differ" in r else "-",
    ),
    ("clusters", "n_clusters"),
    ("noise", "noise", ".4f"),
    ("ACC", "acc", ".4f"),
    ("NMI", "nmi", ".4f"),
]


if __name__ == "__main__":
    main()
