r"""Gaussian mixture on a dataset's pixels, PCA or autoencoder codes: fit, evaluate, save params, draw the clusters.

  python -m experiments.gmm --dataset=digits --pca_components=2
  python -m experiments.gmm --dataset=mnist --data_dir=../shared/datasets --pca_components=50 --n_init=3
  python -m experiments.gmm --dataset=mnist --data_dir=../shared/datasets --pretrained=checkpoints/autoencoder/...

Outputs (results.json, labels.npy, ckpt/, plots/; a density plot when the fitted features are 2-D) and every
flag: docs/experiments.md#gmm, docs/flags.md.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from absl import flags

from experiments import common, features
from research import distributed, plots
from research.cluster import gmm

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_alias("n_components", "n_clusters")  # the name of the last release, kept for one more
flags.DEFINE_enum("covariance_type", "full", list(gmm.COVARIANCE_TYPES), "Shape of each component's covariance.")
flags.DEFINE_integer("n_init", 1, "Restarts, run together; the highest lower bound is kept.")
flags.DEFINE_integer("max_iter", 100, "EM iterations per restart at most.")
flags.DEFINE_float("tol", 1e-3, "Stop when the mean log-likelihood changes by less than this.")
flags.DEFINE_float("reg_covar", 1e-6, "Added to every covariance's diagonal (> 0).")
flags.DEFINE_enum("init_params", "kmeans", list(gmm.INIT_PARAMS), "Initial responsibilities.")
common.cli.at_least("n_init", 1)
common.cli.at_least("max_iter", 1)
common.cli.positive_finite("tol", allow_zero=True)
common.cli.positive_finite("reg_covar")
features.define_flags()


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names): K, the features fitted, and gmm.fit's keywords."""

    n_clusters: int | None
    features: features.Config
    covariance_type: str
    n_init: int
    max_iter: int
    tol: float
    reg_covar: float
    init_params: str


def main(argv):
    del argv
    fit_and_evaluate(common.run_config("gmm"), common.config_from_flags(Config, features=features.config_from_flags()))


def fit_and_evaluate(run: common.RunConfig, cfg: Config) -> None:
    """Fits the mixture to the cfg.features of run's dataset; writes the workdir's outputs."""
    wd = common.prepare_workdir(run)
    # Several processes: each reads only its rows of a memory-mapped file or of uint8 images.
    ds = common.load_dataset(run, mmap=jax.process_count() > 1 and cfg.features.kind == "pixels")
    k = common.n_clusters(ds, cfg.n_clusters)
    key_pca, key_fit = jax.random.split(run.key())
    (z,), params, info = features.extract(cfg.features, key_pca, ds.x, dataset=ds.name)
    z_g, n, mesh = common.shard_rows(run, z)
    with distributed.using(mesh):
        timed = gmm.fit_timed(key_fit, z_g, k, n_samples=n, **common.keyword_args(gmm.fit, cfg))
        scores = gmm.score_samples(timed.out.params, z_g)
    res = distributed.to_host(timed.out)
    res = res._replace(labels=res.labels[:n])
    log_l = float(np.sum(distributed.to_host(scores)[:n], dtype=np.float64))
    params["gmm"] = {name: np.asarray(v) for name, v in res.params._asdict().items()}
    title = f"GMM ({cfg.covariance_type}), {ds.name}, {features.name(cfg.features)}, K={k}"
    config = {"n_components": k, "covariance_type": cfg.covariance_type, "dim": int(z.shape[1])}
    config |= features.describe(cfg.features, z.shape[1])
    results = common.save_clustering(run, ds, res.labels, params, config, title)
    if z.shape[1] == 2:
        plots.density_contours(
            z,
            lambda g: np.asarray(gmm.score_samples(res.params, g)),
            wd / "plots" / "density.png",
            labels_n=np.asarray(res.labels),
            centroids_k2=np.asarray(res.params.means_kd),
            title=title,
        )
    results |= {
        "n_components": k,
        "covariance_type": cfg.covariance_type,
        "n_init": cfg.n_init,
        "lower_bound": float(res.lower_bound),
        "lower_bound_per_init": np.asarray(res.lower_bound_per_init).tolist(),
        **gmm.criteria(res.params, log_l, n),  # from the log-likelihood of the rows, summed where they lie
        **common.fit_fields(res, timed),
        **info,
    }
    common.finish(
        run,
        results,
        f"gmm {ds.name}/{run.split} K={k} {cfg.covariance_type}: {common.score_text(results)} "
        f"lower_bound={res.lower_bound:.6g} bic={results['bic']:.6g} n_iter={int(res.n_iter)} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    common.run_main(main)
