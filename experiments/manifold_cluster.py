r"""Manifold clustering (the N2D recipe): features -> UMAP-style neighbour embedding -> Gaussian mixture.

  python -m experiments.manifold_cluster --dataset=digits                      # raw pixels, offline
  python -m experiments.manifold_cluster --dataset=mnist --data_dir=../shared/datasets
  python -m experiments.manifold_cluster --dataset=mnist --pretrained=checkpoints/autoencoder/mnist-dec-sgd-seed0

The features are the raw rows or a pretrained encoder's codes (--pretrained); their kNN graph is exact up to
--knn_dims features, else approximate. The --embed_dim embedding is clustered by a GMM (--gmm_n_init restarts).
The kNN search, outputs and every flag: docs/experiments.md#manifold_cluster, docs/flags.md.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from absl import flags, logging

from experiments import common, features, stages
from research import plots, runlog, timing
from research.cluster import gmm
from research.deep import pretrain
from research.embed import neighbors, pca, tsne

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_integer("embed_dim", 10, "Dimensions of the neighbour embedding the mixture is fitted to.")
flags.DEFINE_integer("n_neighbors", 20, "UMAP's n_neighbors (the point itself included, as umap-learn counts).")
flags.DEFINE_float("min_dist", 0.0, "UMAP's min_dist: 0 packs clusters tightest, which suits clustering.")
flags.DEFINE_integer("n_epochs", None, "Embedding epochs. Default: 500 up to 10k points, else 200.")
flags.DEFINE_integer("substeps", 10, "Groups of edges applied one after another in each epoch.")
flags.DEFINE_integer("knn_dims", 100, "Principal components searched for neighbour candidates (>= features: exact).")
flags.DEFINE_integer("knn_candidates", 60, "Candidates per point found in the projection, reranked exactly.")
flags.DEFINE_integer("knn_bins", 8192, "Column bins of the candidate search (neighbors.binned_knn); 0: exact search.")
flags.DEFINE_enum(
    "metric",
    None,
    ["euclidean", "cosine"],
    "Neighbours by Euclidean distance, or by cosine similarity (rows scaled to unit length first). "
    "Default: cosine for raw features, euclidean for --pretrained codes.",
)
flags.DEFINE_integer(
    "gmm_n_init",
    30,
    "GMM restarts; the highest lower bound is kept. 30: on MNIST the best bound found stops rising there (the same "
    "as 50's in 20 runs), where 10 left some runs in a worse optimum (docs/design/manifold_clustering.md).",
)
flags.DEFINE_enum("covariance_type", "full", list(gmm.COVARIANCE_TYPES), "The mixture's covariance shape.")
common.cli.at_least("embed_dim", 1)
common.cli.at_least("n_neighbors", 2, "the point itself and at least one neighbour")
common.cli.positive_finite("min_dist", allow_zero=True)
common.cli.at_least("n_epochs", 1)
common.cli.at_least("substeps", 1)
common.cli.at_least("knn_dims", 1)
common.cli.at_least("knn_candidates", 1)
common.cli.at_least("knn_bins", 0, "0: exact search")
common.cli.at_least("gmm_n_init", 1)
stages.define_tensorboard_flag()


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names; metric resolved to euclidean or cosine)."""

    pretrained: str | None
    n_clusters: int | None
    embed_dim: int
    n_neighbors: int
    min_dist: float
    n_epochs: int | None
    substeps: int
    knn_dims: int
    knn_candidates: int
    knn_bins: int
    metric: str
    gmm_n_init: int
    covariance_type: str


def main(argv):
    del argv
    cfg = common.config_from_flags(Config, metric=FLAGS.metric or ("euclidean" if FLAGS.pretrained else "cosine"))
    fit_and_evaluate(common.run_config("manifold_cluster", "ae" if cfg.pretrained else ""), cfg, FLAGS.tensorboard)


def fit_and_evaluate(run: common.RunConfig, cfg: Config, tensorboard: bool = False) -> None:
    """Embeds run's dataset (or its codes), fits the mixture to the embedding; writes the workdir's outputs.
    With `tensorboard`, the scores also go to metrics.jsonl and <workdir>/tensorboard/ as one row."""
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    k = common.n_clusters(ds, cfg.n_clusters)
    k_knn, k_embed, k_gmm, k_pic = jax.random.split(run.key(), 4)
    x = np.asarray(ds.x, np.float32)
    if cfg.pretrained:
        model, params, _ = features.load_encoder(cfg.pretrained, input_dim=x.shape[1], dataset=ds.name)
        x = np.asarray(pretrain.encode(model, params, x), np.float32)
    if cfg.metric == "cosine":
        x = np.asarray(neighbors.unit_rows(x))
    n_neighbors = min(cfg.n_neighbors, x.shape[0])
    nn, knn_s = timing.wall(
        neighbors.projected_knn,
        k_knn,
        x,
        n_neighbors - 1,
        dims=cfg.knn_dims,
        candidates=cfg.knn_candidates,
        bins=cfg.knn_bins,
    )
    logging.info("kNN graph (%d neighbours, %d features): %.1f s", n_neighbors - 1, x.shape[1], knn_s)
    emb, embed_s = timing.wall(
        tsne.umap,
        k_embed,
        x,
        dim=cfg.embed_dim,
        n_neighbors=n_neighbors,
        min_dist=cfg.min_dist,
        n_epochs=cfg.n_epochs,
        substeps=cfg.substeps,
        knn=nn,
    )
    z = np.asarray(emb.embedding)
    logging.info("embedding to %d-D: %.1f s", cfg.embed_dim, embed_s)
    timed = gmm.fit_timed(k_gmm, z, k, covariance_type=cfg.covariance_type, n_init=cfg.gmm_n_init)
    res = timed.out
    np.save(wd / "embedding.npy", z)
    source = "autoencoder codes" if cfg.pretrained else "raw features"
    title = f"{source} -> {cfg.embed_dim}-D neighbour embedding -> GMM, {ds.name}, K={k}"
    params = {"gmm": {name: np.asarray(v) for name, v in res.params._asdict().items()}}
    config = {"n_components": k, "covariance_type": cfg.covariance_type, "dim": cfg.embed_dim}
    results = common.save_clustering(run, ds, res.labels, params, config, title)
    if z.shape[1] == 2:
        pic, names = z, ("1", "2")
    else:
        pic, names = np.asarray(pca.fit_transform(k_pic, z, 2)[1]), ("PC 1", "PC 2")
    sample = np.random.default_rng(run.seed).permutation(len(z))[:5000]
    plots.embedding_2d(
        pic[sample], np.asarray(res.labels)[sample], wd / "plots" / "embedding.png", title=title, axis_names=names
    )
    results |= {
        "features": "pretrained" if cfg.pretrained else "raw",
        "pretrained": cfg.pretrained,
        "n_features": int(x.shape[1]),
        "n_clusters": k,
        "embed_dim": cfg.embed_dim,
        "n_neighbors": n_neighbors,
        "metric": cfg.metric,
        "n_epochs": emb.n_iter,
        "lower_bound": float(res.lower_bound),
        "lower_bound_per_init": np.asarray(res.lower_bound_per_init).tolist(),
        "knn_seconds": round(knn_s, 2),
        "embed_seconds": round(embed_s, 2),
        "gmm_seconds": timed.run_seconds,
        "gmm_compile_seconds": timed.compile_seconds,
    }
    if tensorboard:
        _log_scores(wd, results)
    common.finish(
        run,
        results,
        f"manifold_cluster {ds.name}/{run.split} ({source}) K={k}: {common.score_text(results)} "
        f"kNN {knn_s:.1f}s embedding {embed_s:.1f}s GMM {timed.run_seconds:.1f}s -> {wd}",
    )


def _log_scores(wd, results: dict) -> None:
    """One row (stage "manifold", at the embedding's epoch count) of the scores and timings: this binary has no
    training loop, so TensorBoard gets its end point, to compare runs by. A rerun replaces the row."""
    log = runlog.MetricsLog(wd, tensorboard=True)
    log.rewind(-1, stage="manifold")
    names = ("acc", "nmi", "ari", "purity", "lower_bound", "knn_seconds", "embed_seconds", "gmm_seconds")
    log.log(results["n_epochs"], stage="manifold", **{k: results[k] for k in names if k in results})


if __name__ == "__main__":
    common.run_main(main)
