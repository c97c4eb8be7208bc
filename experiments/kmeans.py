r"""k-means on a dataset: fit, evaluate, save centroids, draw the cluster grid.

  python -m experiments.kmeans --dataset=digits
  python -m experiments.kmeans --dataset=mnist --data_dir=../shared/datasets --n_init=10
  python -m experiments.kmeans --dataset=npy:/data/big.npy --minibatch_size=1024   # memory-mapped, streamed

Outputs (results.json, labels.npy, ckpt/ with the centroids, plots/clusters.png) and every flag:
docs/experiments.md#kmeans, docs/flags.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import flags

from experiments import common
from research.cluster import kmeans, minibatch_kmeans

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_integer("n_init", 10, "Restarts, fused into one pass over the data per iteration; the best is kept.")
flags.DEFINE_integer("max_iter", 300, "Lloyd iterations per restart at most.")
flags.DEFINE_float("tol", 1e-4, "Stop when the squared centroid shift is under tol x mean feature variance.")
flags.DEFINE_enum("init", "k-means++", ["k-means++", "random"], "Seeding.")
flags.DEFINE_bool("prune", True, "Skip points whose Hamerly bounds prove their label cannot change.")
flags.DEFINE_integer(
    "minibatch_size",
    0,
    "0: full k-means. > 0: mini-batch k-means with batches of this many rows (n_init = seeding candidates, "
    "max_iter = epochs at most, early stop on the smoothed batch inertia; tol and prune unused); a float32 "
    "--dataset=npy:<path> is then memory-mapped, not loaded.",
)
common.cli.at_least("n_init", 1)
common.cli.at_least("max_iter", 1)
common.cli.positive_finite("tol", allow_zero=True)
common.cli.at_least("minibatch_size", 0, "0: full k-means")


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names)."""

    n_clusters: int | None
    n_init: int
    max_iter: int
    tol: float
    init: str
    prune: bool
    minibatch_size: int


def main(argv):
    del argv
    fit_and_evaluate(common.run_config("kmeans"), common.config_from_flags(Config))


def fit_and_evaluate(run: common.RunConfig, cfg: Config) -> None:
    """k-means (mini-batch when cfg.minibatch_size > 0) on run's dataset; writes the workdir's outputs."""
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run, mmap=cfg.minibatch_size > 0)
    k = common.n_clusters(ds, cfg.n_clusters)
    if cfg.minibatch_size:
        timed = minibatch_kmeans.fit_timed(
            run.key(), ds.x, k, batch_size=cfg.minibatch_size, n_init=cfg.n_init, max_iter=cfg.max_iter, init=cfg.init
        )
    else:
        timed = kmeans.fit_timed(run.key(), ds.x, k, **common.keyword_args(kmeans.fit, cfg))
    res = timed.out
    params, config = {"centroids": np.asarray(res.centroids)}, {"n_clusters": k, "dim": ds.x.shape[1]}
    results = common.save_clustering(run, ds, res.labels, params, config, f"k-means, {ds.name}, K={k}")
    results |= {
        "n_clusters": k,
        "n_init": cfg.n_init,
        "minibatch_size": cfg.minibatch_size,
        **common.fit_fields(res, timed),
    }
    common.finish(
        run,
        results,
        f"kmeans {ds.name}/{run.split} K={k}: {common.score_text(results)} inertia={res.inertia:.6g} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    common.run_main(main)
