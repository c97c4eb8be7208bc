r"""t-SNE to 2-D, then DBSCAN on the picture (the seeds' pipeline).

  python -m experiments.tsne_dbscan --dataset=digits                            # offline
  python -m experiments.tsne_dbscan --dataset=mnist --data_dir=../shared/datasets

The kNN graph (3 x perplexity neighbours) is exact up to --knn_dims features, else found among candidates in
that many principal components (the nearest of --knn_bins column bins) and reranked exactly. DBSCAN's radius
is --eps, or, when --eps=0, the --eps_quantile quantile of each point's distance to its --min_samples-th
nearest neighbour in the embedding (the scale of a t-SNE picture depends on n, so a fixed radius does not
carry across datasets).

Writes config.json, results.json (acc, nmi, ari with noise counted as one more cluster, the same over the
points DBSCAN clustered, the noise fraction, the number of clusters, eps, seconds), labels.npy,
embedding.npy, ckpt/ (the core-point mask), and plots/:
  embedding.png     the embedding coloured by true label and by cluster, side by side
  thumbnails.png    the embedding with 200 images drawn at their points (image datasets)
  perplexity.png    t-SNE at each of --sweep_perplexities, on a sample of --sweep_samples points
  clusters.png      sample images of each cluster (image datasets)
"""

from __future__ import annotations

import jax
import numpy as np
from absl import app, flags, logging

from experiments import common
from research import metrics, plots, timing
from research.cluster import dbscan
from research.embed import neighbors, tsne

FLAGS = flags.FLAGS
flags.DEFINE_float("perplexity", 30.0, "t-SNE perplexity (effective number of neighbours).")
flags.DEFINE_integer("n_iter", 750, "Gradient steps.")
flags.DEFINE_float("early_exaggeration", 12.0, "Attraction factor during the first --exaggeration_iter steps.")
flags.DEFINE_integer("exaggeration_iter", 250, "Steps of early exaggeration.")
flags.DEFINE_float("learning_rate", None, "Step size. Default: n / 12.")
flags.DEFINE_integer("negative_samples", 16, "Points drawn per point and step for the far-field repulsion.")
flags.DEFINE_enum("repulsion", "grid", list(tsne.REPULSIONS), "grid: particle-mesh (FFT); exact: all pairs.")
flags.DEFINE_integer("grid", 256, "Mesh cells per side of the grid repulsion (finer: closer to exact, slower).")
flags.DEFINE_integer("knn_dims", 50, "Principal components searched for neighbour candidates (>= features: exact).")
flags.DEFINE_integer("knn_bins", 8192, "Column bins of the candidate search (neighbors.binned_knn); 0: exact search.")
flags.DEFINE_float("eps", 0.0, "DBSCAN radius in the embedding; 0: chosen from --eps_quantile.")
flags.DEFINE_float("eps_quantile", 0.9, "With --eps=0: this quantile of the distances to the min_samples-th neighbour.")
flags.DEFINE_integer("min_samples", 10, "DBSCAN: points within eps (itself included) that make a core point.")
flags.DEFINE_list("sweep_perplexities", ["5", "30", "100"], "Perplexities of the sweep figure (empty: none).")
flags.DEFINE_integer("sweep_samples", 3000, "Points drawn for the sweep figure.")


def embed(key, x, perplexity, n_iter):
    """The 2-D t-SNE of x with this binary's flags."""
    n = x.shape[0]
    k = min(n - 1, int(3 * perplexity))
    nn = neighbors.projected_knn(key, x, k, dims=FLAGS.knn_dims, candidates=2 * k, bins=FLAGS.knn_bins)
    return tsne.tsne(
        key,
        x,
        dim=2,
        perplexity=perplexity,
        n_iter=n_iter,
        early_exaggeration=FLAGS.early_exaggeration,
        exaggeration_iter=min(FLAGS.exaggeration_iter, n_iter),
        learning_rate=FLAGS.learning_rate,
        negative_samples=FLAGS.negative_samples,
        repulsion=FLAGS.repulsion,
        grid=FLAGS.grid,
        knn=nn,
    ).embedding


def choose_eps(z_n2, min_samples: int, quantile: float) -> float:
    """The `quantile` of each point's distance to its min_samples-th nearest neighbour (itself counted first,
    as DBSCAN counts it): at the default 0.9, nine points in ten are core points."""
    kth = neighbors.knn(z_n2, max(1, min_samples - 1)).distances[:, -1]
    return float(np.quantile(np.asarray(kth), quantile))


def main(argv):
    del argv
    wd = common.prepare_workdir("tsne_dbscan")
    ds = common.load_dataset()
    x = np.asarray(ds.x, np.float32)
    k_embed, k_sweep = jax.random.split(common.root_key())
    if FLAGS.perplexity >= x.shape[0] / 3:
        raise SystemExit(f"--perplexity={FLAGS.perplexity} is too large for {x.shape[0]} points; use < n / 3.")
    z, embed_s = timing.wall(embed, k_embed, x, FLAGS.perplexity, FLAGS.n_iter)
    z = np.asarray(z)
    logging.info("t-SNE (kNN graph included): %.1f s", embed_s)
    eps = FLAGS.eps or choose_eps(z, FLAGS.min_samples, FLAGS.eps_quantile)
    res, dbscan_s = timing.wall(dbscan.fit, z, eps, FLAGS.min_samples, block_size=256)
    labels = np.asarray(res.labels)
    np.save(wd / "embedding.npy", z)
    title = (
        f"t-SNE (perplexity {FLAGS.perplexity:g}) + DBSCAN (eps {eps:.3g}, min_samples {FLAGS.min_samples}), {ds.name}"
    )
    results = common.save_clustering(
        wd, ds, labels, {"core_mask": np.asarray(res.core_mask)}, {"eps": eps, "min_samples": FLAGS.min_samples}, title
    )
    clustered = labels >= 0
    if ds.y is not None and clustered.any():
        results |= {f"{m}_clustered": v for m, v in metrics.evaluate(ds.y[clustered], labels[clustered]).items()}
    panels = [(labels, "DBSCAN clusters", "cluster")]
    if ds.y is not None:
        panels.insert(0, (ds.y, "true labels", "class"))
    plots.embedding_panels(z, panels, wd / "plots" / "embedding.png", title=title)
    if ds.image_shape is not None:
        plots.embedding_thumbnails(
            z, x, ds.image_shape, wd / "plots" / "thumbnails.png", labels_n=ds.y, seed=FLAGS.seed, title=title
        )
    perplexities = [float(p) for p in FLAGS.sweep_perplexities if p]
    if perplexities:
        pick = np.sort(np.random.default_rng(FLAGS.seed).permutation(len(x))[: FLAGS.sweep_samples])
        usable = [p for p in perplexities if 3 * p < len(pick)]
        sweep = [np.asarray(embed(k_sweep, x[pick], p, FLAGS.n_iter)) for p in usable]
        plots.embedding_sweep(
            sweep,
            [f"perplexity {p:g}" for p in usable],
            ds.y[pick] if ds.y is not None else np.zeros(len(pick), int),
            wd / "plots" / "perplexity.png",
            title=f"t-SNE of {len(pick)} points of {ds.name} at several perplexities",
        )
    results |= {
        "perplexity": FLAGS.perplexity,
        "eps": eps,
        "min_samples": FLAGS.min_samples,
        "n_clusters": int(res.n_clusters),
        "noise_fraction": float(np.mean(~clustered)),
        "embed_seconds": round(embed_s, 2),
        "dbscan_seconds": round(dbscan_s, 2),
    }
    common.finish(
        wd,
        results,
        f"tsne_dbscan {ds.name}/{FLAGS.split}: {int(res.n_clusters)} clusters, noise {np.mean(~clustered):.1%}, "
        f"{common.score_text(results)} t-SNE {embed_s:.1f}s DBSCAN {dbscan_s:.1f}s -> {wd}",
    )


if __name__ == "__main__":
    app.run(main)
