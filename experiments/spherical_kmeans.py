r"""Spherical k-means on a dataset: cluster the directions of the rows (cosine similarity).

  python -m experiments.spherical_kmeans --dataset=digits
  python -m experiments.spherical_kmeans --dataset=mnist --data_dir=../shared/datasets --n_init=10
  python -m experiments.spherical_kmeans --dataset=mnist --pretrained=<autoencoder workdir>   # on its codes

Writes config.json, results.json (acc, nmi, ari, inertia = summed cosine
distance, mean_cosine, fit_seconds, compile_seconds, ...), labels.npy, ckpt/
(the unit centroids, Orbax) and plots/clusters.png into --workdir.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from absl import flags

from experiments import common, features
from research.cluster import spherical_kmeans

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_integer("n_init", 10, "Restarts, fused into one pass over the data per iteration; the best is kept.")
flags.DEFINE_integer("max_iter", 300, "Iterations per restart at most.")
flags.DEFINE_float("tol", 1e-4, "Stop when the squared shift of the unit centroids, summed, is under tol.")
flags.DEFINE_enum("init", "k-means++", ["k-means++", "random"], "Seeding (k-means++ on the cosine distance).")
common.cli.at_least("n_init", 1)
common.cli.at_least("max_iter", 1)
common.cli.positive_finite("tol", allow_zero=True)
features.define_flags()


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names)."""

    n_clusters: int | None
    n_init: int
    max_iter: int
    tol: float
    init: str
    features: features.Config


def main(argv):
    del argv
    fit_and_evaluate(
        common.run_config("spherical_kmeans"), common.config_from_flags(Config, features=features.config_from_flags())
    )


def fit_and_evaluate(run: common.RunConfig, cfg: Config) -> None:
    """Spherical k-means on the cfg.features of run's dataset; writes the workdir's outputs."""
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    k = common.n_clusters(ds, cfg.n_clusters)
    # The fit keeps the root key, as before features could be chosen.
    (z,), params, info = features.extract(cfg.features, jax.random.fold_in(run.key(), 1), ds.x, dataset=ds.name)
    timed = spherical_kmeans.fit_timed(run.key(), z, k, **common.keyword_args(spherical_kmeans.fit, cfg))
    res = timed.out
    params |= {"centroids": np.asarray(res.centroids)}
    config = {"n_clusters": k, "dim": z.shape[1], "metric": "cosine"} | features.describe(cfg.features, z.shape[1])
    title = f"spherical k-means, {ds.name}, {features.name(cfg.features)}, K={k}"
    results = common.save_clustering(run, ds, res.labels, params, config, title)
    results |= info | {
        "n_clusters": k,
        "n_init": cfg.n_init,
        **common.fit_fields(res, timed),  # inertia: the sum of (1 - cosine similarity to the centroid)
        "mean_cosine": 1.0 - float(res.inertia) / results["n_samples"],
    }
    common.finish(
        run,
        results,
        f"spherical_kmeans {ds.name}/{run.split} K={k}: {common.score_text(results)} "
        f"mean_cosine={results['mean_cosine']:.6f} fit {timed.run_seconds:.2f}s "
        f"(compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    common.run_main(main)
