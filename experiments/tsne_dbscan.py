r"""t-SNE to 2-D, then density clustering of the picture: HDBSCAN, or DBSCAN (the seeds' pipeline).

  python -m experiments.tsne_dbscan --dataset=digits                            # offline
  python -m experiments.tsne_dbscan --dataset=mnist --data_dir=../shared/datasets
  python -m experiments.tsne_dbscan --dataset=mnist --data_dir=../shared/datasets \
      --pretrained=<autoencoder workdir> --max_samples=5000     # the codes of 5000 random digits

--features / --pretrained choose what is embedded (pixels, PCA or autoencoder codes); the figures show the
digits' images whatever the features. --max_samples embeds a random subset (drawn from --seed).

The kNN graph (3 x perplexity neighbours) is exact up to --knn_dims features, else approximate. The picture
is clustered by HDBSCAN by default (--eps=auto: the clusters that persist longest over all radii, of at least
--min_cluster_size points; research/cluster/hdbscan.py), or by DBSCAN at radius --eps (e.g. the notes'
--eps=2.4 --min_samples=100), or with --eps=0 at the --eps_quantile quantile of the distances to the
--min_samples-th neighbour in the embedding. Outputs (results.json, labels.npy, embedding.npy, ckpt/, plots/
with the embedding, thumbnails and a perplexity sweep) and every flag: docs/experiments.md#tsne_dbscan, docs/flags.md.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from absl import flags, logging

from experiments import common, features
from research import metrics, plots, timing
from research.cluster import density
from research.embed import neighbors, tsne

FLAGS = flags.FLAGS
flags.DEFINE_float("perplexity", 30.0, "t-SNE perplexity (effective number of neighbours).")
flags.DEFINE_integer("n_iter", 750, "Gradient steps.")
flags.DEFINE_float("early_exaggeration", 12.0, "Attraction factor during the first --exaggeration_iter steps.")
flags.DEFINE_integer("exaggeration_iter", 250, "Steps of early exaggeration.")
flags.DEFINE_float(
    "learning_rate", None, "Step size of both phases. Default: n / 12 during early exaggeration, n / 4 after."
)
flags.DEFINE_integer("negative_samples", 16, "Points drawn per point and step for the far-field repulsion.")
flags.DEFINE_enum("repulsion", "grid", list(tsne.REPULSIONS), "grid: particle-mesh (FFT); exact: all pairs.")
flags.DEFINE_integer("grid", 256, "Mesh cells per side of the grid repulsion (finer: closer to exact, slower).")
flags.DEFINE_integer("knn_dims", 50, "Principal components searched for neighbour candidates (>= features: exact).")
flags.DEFINE_integer("knn_bins", 8192, "Column bins of the candidate search (neighbors.binned_knn); 0: exact search.")
flags.DEFINE_string(
    "eps",
    "auto",
    "auto: HDBSCAN, the clusters that persist longest over all radii; a number > 0: DBSCAN at this radius in "
    "the embedding; 0: DBSCAN at the radius chosen from --eps_quantile.",
)
flags.DEFINE_float("eps_quantile", 0.9, "With --eps=0: this quantile of the distances to the min_samples-th neighbour.")
flags.DEFINE_integer(
    "min_samples", 10, "Points within the radius (itself included) that make a core point (DBSCAN and HDBSCAN)."
)
flags.DEFINE_integer(
    "min_cluster_size",
    None,
    "With --eps=auto: the fewest points of a cluster; smaller groups are noise. Default: 1% of the points (>= 2).",
)
flags.DEFINE_list("sweep_perplexities", ["5", "30", "100"], "Perplexities of the sweep figure (empty: none).")
flags.DEFINE_integer("sweep_samples", 3000, "Points drawn for the sweep figure.")
flags.DEFINE_integer(
    "max_samples",
    None,
    "Embed a random subset of this many samples (drawn from --seed; their labels and images go with them). "
    "Default: all of them.",
)
features.define_flags()
common.cli.positive_finite("perplexity")
common.cli.at_least("n_iter", 1)
common.cli.positive_finite("early_exaggeration")
common.cli.at_least("exaggeration_iter", 0)
common.cli.positive_finite("learning_rate")
common.cli.at_least("negative_samples", 1)
common.cli.at_least("grid", 1)
common.cli.at_least("knn_dims", 1)
common.cli.at_least("knn_bins", 0, "0: exact search")
common.cli.check(
    "eps", lambda e: density.parse_eps(e) is not False, "must be auto or a number >= 0 (0: from --eps_quantile)"
)
common.cli.at_least("min_cluster_size", 2, "a cluster of one point is noise")
common.cli.check("eps_quantile", lambda q: 0 <= q <= 1, "must be in [0, 1]")
common.cli.at_least("min_samples", 1, "the point itself counts")
common.cli.list_of(
    "sweep_perplexities",
    float,
    lambda p: 0 < p < float("inf"),
    "> 0",
)
common.cli.at_least("sweep_samples", 1)
common.cli.at_least("max_samples", 2)
common.cli.only_when(
    ["eps_quantile"], "eps", lambda eps: density.parse_eps(eps) == 0, "with --eps=0 (eps chosen from the distances)"
)
common.cli.only_when(
    ["min_cluster_size"], "eps", lambda eps: density.parse_eps(eps) is None, "with --eps=auto (HDBSCAN)"
)
common.cli.only_when(["grid"], "repulsion", lambda r: r in ("grid", "auto"), "with --repulsion=grid")
common.cli.only_when(["negative_samples"], "repulsion", lambda r: r == "sampled", "with --repulsion=sampled")
common.cli.only_when(["sweep_samples"], "sweep_perplexities", any, "with some --sweep_perplexities")


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names): tsne.tsne's keywords, the kNN search, the density
    clustering's (eps None: HDBSCAN) and the perplexity sweep's."""

    perplexity: float
    n_iter: int
    early_exaggeration: float
    exaggeration_iter: int
    learning_rate: float | None
    negative_samples: int
    repulsion: str
    grid: int
    knn_dims: int
    knn_bins: int
    eps: float | None  # None: HDBSCAN; 0: DBSCAN at the eps_quantile radius
    eps_quantile: float
    min_samples: int
    min_cluster_size: int | None
    sweep_perplexities: tuple[float, ...]
    sweep_samples: int
    max_samples: int | None
    features: features.Config


def main(argv):
    del argv
    sweep = tuple(float(p) for p in FLAGS.sweep_perplexities if p)
    cfg = common.config_from_flags(
        Config, eps=density.parse_eps(FLAGS.eps), sweep_perplexities=sweep, features=features.config_from_flags()
    )
    fit_and_evaluate(common.run_config("tsne_dbscan"), cfg)


def embed(key, x, cfg: Config, perplexity: float):
    """The 2-D t-SNE of x at this perplexity, with cfg's other settings."""
    n = x.shape[0]
    k = min(n - 1, int(3 * perplexity))
    nn = neighbors.projected_knn(key, x, k, dims=cfg.knn_dims, candidates=2 * k, bins=cfg.knn_bins)
    exaggeration_iter = min(cfg.exaggeration_iter, cfg.n_iter)
    kwargs = {"dim": 2, "perplexity": perplexity, "exaggeration_iter": exaggeration_iter, "knn": nn}
    return tsne.tsne(key, x, **(common.keyword_args(tsne.tsne, cfg) | kwargs)).embedding


def cluster(z_n2, cfg: Config):
    """The density clustering of the picture with cfg's settings (`density.cluster`)."""
    return density.cluster(
        z_n2,
        eps=cfg.eps,
        min_samples=cfg.min_samples,
        eps_quantile=cfg.eps_quantile,
        min_cluster_size=cfg.min_cluster_size,
    )


def subsample(ds, n: int | None, seed: int):
    """(ds restricted to n random rows in their original order, with their labels; the rows' indices), or ds
    and None when n is None or not below the number of rows."""
    if n is None or n >= len(ds.x):
        return ds, None
    rows = np.sort(np.random.default_rng(seed).permutation(len(ds.x))[:n])
    return ds._replace(x=ds.x[rows], y=None if ds.y is None else ds.y[rows]), rows


def fit_and_evaluate(run: common.RunConfig, cfg: Config) -> None:
    """Embeds the cfg.features of run's dataset (or of cfg.max_samples random rows of it), clusters the picture,
    draws the figures with the rows' images; writes the workdir's outputs."""
    wd = common.prepare_workdir(run)
    ds, rows = subsample(common.load_dataset(run), cfg.max_samples, run.seed)
    k_embed, k_sweep = jax.random.split(run.key())  # as before features could be chosen
    if cfg.perplexity >= ds.x.shape[0] / 3:
        raise ValueError(
            f"--perplexity={cfg.perplexity} is too large for {ds.x.shape[0]} points; use < n / 3 "
            "(or a larger --max_samples)."
        )
    (x,), fparams, info = features.extract(cfg.features, jax.random.fold_in(run.key(), 1), ds.x, dataset=ds.name)
    z, embed_s = timing.wall(embed, k_embed, x, cfg, cfg.perplexity)
    z = np.asarray(z)
    logging.info("t-SNE (kNN graph included): %.1f s", embed_s)
    (labels, cparams, chosen, what), cluster_s = timing.wall(cluster, z, cfg)
    np.save(wd / "embedding.npy", z)
    title = f"t-SNE (perplexity {cfg.perplexity:g}) + {what}, {ds.name}, {features.name(cfg.features)}"
    params = fparams | cparams | ({} if rows is None else {"rows": rows})
    config = chosen | {"min_samples": cfg.min_samples} | features.describe(cfg.features, x.shape[1])
    results = common.save_clustering(run, ds, labels, params, config, title)
    clustered = labels >= 0
    if ds.y is not None and clustered.any():
        results |= {f"{m}_clustered": v for m, v in metrics.evaluate(ds.y[clustered], labels[clustered]).items()}
        # The matched points over all points: every noise point counts as an error.
        results["acc_noise_wrong"] = results["acc_clustered"] * float(np.mean(clustered))
    n_clusters = len(np.unique(labels[clustered]))
    panels = [(labels, f"{chosen['method'].upper()} clusters", "cluster")]
    if ds.y is not None:
        panels.insert(0, (ds.y, "true labels", "class"))
    plots.embedding_panels(z, panels, wd / "plots" / "embedding.png", title=title)
    if ds.image_shape is not None:
        plots.embedding_thumbnails(
            z, ds.x, ds.image_shape, wd / "plots" / "thumbnails.png", labels_n=ds.y, seed=run.seed, title=title
        )
    if cfg.sweep_perplexities:
        pick = np.sort(np.random.default_rng(run.seed).permutation(len(x))[: cfg.sweep_samples])
        usable = [p for p in cfg.sweep_perplexities if 3 * p < len(pick)]
        plots.embedding_sweep(
            [np.asarray(embed(k_sweep, x[pick], cfg, p)) for p in usable],
            [f"perplexity {p:g}" for p in usable],
            ds.y[pick] if ds.y is not None else np.zeros(len(pick), int),
            wd / "plots" / "perplexity.png",
            title=f"t-SNE of {len(pick)} points of {ds.name} at several perplexities",
        )
    results |= info | {
        "max_samples": cfg.max_samples,
        "perplexity": cfg.perplexity,
        **chosen,
        "min_samples": cfg.min_samples,
        "n_clusters": n_clusters,
        "noise_fraction": float(np.mean(~clustered)),
        "embed_seconds": round(embed_s, 2),
        "cluster_seconds": round(cluster_s, 2),
    }
    common.finish(
        run,
        results,
        f"tsne_dbscan {ds.name}/{run.split}: {chosen['method']} {n_clusters} clusters, noise "
        f"{np.mean(~clustered):.1%}, {common.score_text(results)} t-SNE {embed_s:.1f}s {chosen['method']} "
        f"{cluster_s:.1f}s -> {wd}",
    )


if __name__ == "__main__":
    common.run_main(main)
