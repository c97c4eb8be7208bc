r"""PCA then k-means on a dataset: fit, evaluate, save centroids and PCA, draw the cluster grid.

  python -m experiments.pca_kmeans --dataset=digits
  python -m experiments.pca_kmeans --dataset=mnist --data_dir=../shared/datasets --pca_components=30 --n_init=10

Outputs (results.json, labels.npy, ckpt/ with the centroids in PCA space and the PCA, plots/) and every flag:
docs/experiments.md#pca_kmeans, docs/flags.md.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from absl import flags

from experiments import common, features
from research.cluster import kmeans

FLAGS = flags.FLAGS
flags.DEFINE_integer("pca_components", 30, "Principal components k-means runs on.")
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_integer("n_init", 10, "k-means restarts, fused into one pass over the data per iteration.")
flags.DEFINE_integer("max_iter", 300, "Lloyd iterations per restart at most.")
flags.DEFINE_float("tol", 1e-4, "Stop when the squared centroid shift is under tol x mean feature variance.")
common.cli.at_least("pca_components", 1, "no PCA: experiments.kmeans")
common.cli.at_least("n_init", 1)
common.cli.at_least("max_iter", 1)
common.cli.positive_finite("tol", allow_zero=True)
common.cli.check(
    "pretrained",
    lambda v: not v,
    "pca_kmeans clusters principal components of the rows; for autoencoder codes run experiments.kmeans --pretrained",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names): the PCA, K, and kmeans.fit's keywords."""

    pca_components: int
    n_clusters: int | None
    n_init: int
    max_iter: int
    tol: float


def main(argv):
    del argv
    cfg = common.config_from_flags(Config)
    fit_and_evaluate(common.run_config("pca_kmeans"), cfg)


def fit_and_evaluate(run: common.RunConfig, cfg: Config) -> None:
    """k-means on the first cfg.pca_components principal components of run's dataset; writes the outputs."""
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    key_pca, key_fit = jax.random.split(run.key())
    pca = features.Config("pca", cfg.pca_components)
    (z,), params, pca_info = features.extract(pca, key_pca, ds.x, dataset=ds.name)
    k = common.n_clusters(ds, cfg.n_clusters)
    timed = kmeans.fit_timed(key_fit, z, k, **common.keyword_args(kmeans.fit, cfg))
    res = timed.out
    results = common.save_clustering(
        run,
        ds,
        res.labels,
        {"centroids": np.asarray(res.centroids), **params},
        {"n_clusters": k, "dim": ds.x.shape[1]} | features.describe(pca, z.shape[1]),
        f"PCA-{cfg.pca_components} + k-means, {ds.name}, K={k}",
    )
    results |= {
        "n_clusters": k,
        "n_init": cfg.n_init,
        **pca_info,
        **common.fit_fields(res, timed),
    }
    common.finish(
        run,
        results,
        f"pca_kmeans {ds.name}/{run.split} PCA-{cfg.pca_components} ({pca_info['pca_explained_variance']:.1%} "
        f"var) K={k}: {common.score_text(results)} inertia={res.inertia:.6g} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    common.run_main(main)
