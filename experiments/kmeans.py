r"""k-means on a dataset: fit, evaluate, save centroids, draw the cluster grid.

  python -m experiments.kmeans --dataset=digits
  python -m experiments.kmeans --dataset=mnist --data_dir=../shared/datasets --n_init=10
  python -m experiments.kmeans --dataset=npy:/data/big.npy --minibatch_size=1024   # memory-mapped, streamed
  python -m experiments.kmeans --dataset=mnist --pretrained=<autoencoder workdir>    # on its codes
  python -m experiments.kmeans --dataset=blobs --record_history    # the centroids' paths, plots/kmeans_history.png

Outputs (results.json, labels.npy, ckpt/ with the centroids, plots/clusters.png, kmeans_history.npy) and every flag:
docs/experiments.md#kmeans, docs/flags.md.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from absl import flags

from experiments import common, features
from research import distributed, plots, runlog
from research.cluster import kmeans, minibatch_kmeans

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_integer("n_init", 10, "Restarts, fused into one pass over the data per iteration; the best is kept.")
flags.DEFINE_integer("max_iter", 300, "Lloyd iterations per restart at most.")
flags.DEFINE_float("tol", 1e-4, "Stop when the squared centroid shift is under tol x mean feature variance.")
flags.DEFINE_enum("init", "k-means++", ["k-means++", "random"], "Seeding.")
flags.DEFINE_bool(
    "prune",
    True,
    "Skip points whose Hamerly bounds prove their label cannot change (on one device; rows split over several "
    "devices or processes take full passes, whose reductions stay on each device: the same labels).",
)
flags.DEFINE_integer(
    "minibatch_size",
    0,
    "0: full k-means. > 0: mini-batch k-means with batches of this many rows (n_init = seeding candidates, "
    "max_iter = epochs at most, early stop on the smoothed batch inertia; --tol and --prune are refused); a float32 "
    "--dataset=npy:<path> is then memory-mapped, not loaded.",
)
common.cli.at_least("n_init", 1)
common.cli.at_least("max_iter", 1)
common.cli.positive_finite("tol", allow_zero=True)
common.cli.at_least("minibatch_size", 0, "0: full k-means")
flags.DEFINE_bool(
    "record_history",
    False,
    "Keep the best restart's centroids at every Lloyd iteration: kmeans_history.npy [n_iter + 1, K, dim] (row 0 "
    "the seeding) and plots/kmeans_history.png, their paths over the data (on its first two principal axes "
    "when it has more than two features). Same result as without.",
)
common.cli.only_when(
    ["tol", "prune", "record_history"], "minibatch_size", lambda b: b == 0, "to full k-means (--minibatch_size=0)"
)
features.define_flags()


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
    record_history: bool
    features: features.Config


def main(argv):
    del argv
    fit_and_evaluate(
        common.run_config("kmeans"), common.config_from_flags(Config, features=features.config_from_flags())
    )


def fit_and_evaluate(run: common.RunConfig, cfg: Config) -> None:
    """k-means (mini-batch when cfg.minibatch_size > 0) on the cfg.features of run's dataset (a memory-mapped
    file's pixels are streamed); writes the workdir's outputs."""
    if cfg.minibatch_size and jax.process_count() > 1:
        raise ValueError(
            "--minibatch_size streams one file through one process; a run of several processes fits full "
            "k-means (--minibatch_size=0), each process holding its own rows."
        )
    wd = common.prepare_workdir(run)
    # A memory-mapped file's pixels stay mapped: streamed by mini-batch k-means, or each process reads its rows.
    mapped = (cfg.minibatch_size > 0 or jax.process_count() > 1) and cfg.features.kind == "pixels"
    ds = common.load_dataset(run, mmap=mapped)
    k = common.n_clusters(ds, cfg.n_clusters)
    # The fit keeps the root key, as before features could be chosen.
    key_fit, key_features = run.key(), jax.random.fold_in(run.key(), 1)
    (z,), params, info = features.extract(cfg.features, key_features, ds.x, dataset=ds.name)
    pruned = False
    if cfg.minibatch_size:
        timed = minibatch_kmeans.fit_timed(
            key_fit, z, k, batch_size=cfg.minibatch_size, n_init=cfg.n_init, max_iter=cfg.max_iter, init=cfg.init
        )
    else:
        z_g, n, mesh = common.shard_rows(run, z)
        # On rows split over devices the pruned step's sparse gathers would copy rows between them: full passes
        # (the same labels; kmeans.fit's docstring).
        pruned = cfg.prune and mesh is None
        kw = common.keyword_args(kmeans.fit, cfg) | {"n_samples": n, "prune": pruned}
        with distributed.using(mesh):
            if cfg.record_history:
                timed = kmeans.fit_with_history_timed(key_fit, z_g, k, **kw)
                (res, history), timed = timed.out, timed._replace(out=timed.out[0])
            else:
                timed = kmeans.fit_timed(key_fit, z_g, k, **kw)
        res = distributed.to_host(timed.out)
        timed = timed._replace(out=res._replace(labels=res.labels[:n]))
        if cfg.record_history:
            save_history(run, ds, z, timed.out, distributed.to_host(history))
    res = timed.out
    params |= {"centroids": np.asarray(res.centroids)}
    config = {"n_clusters": k, "dim": z.shape[1]} | features.describe(cfg.features, z.shape[1])
    title = f"k-means, {ds.name}, {features.name(cfg.features)}, K={k}"
    results = common.save_clustering(run, ds, res.labels, params, config, title)
    results |= info | {
        "n_clusters": k,
        "n_init": cfg.n_init,
        "minibatch_size": cfg.minibatch_size,
        "pruned": pruned,
        **common.fit_fields(res, timed),
    }
    common.finish(
        run,
        results,
        f"kmeans {ds.name}/{run.split} K={k}: {common.score_text(results)} inertia={res.inertia:.6g} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


def save_history(run: common.RunConfig, ds, z, res: kmeans.KMeansResult, history) -> None:
    """kmeans_history.npy (the iterations run: [n_iter + 1, k, d]) and plots/kmeans_history.png."""
    history = np.asarray(history)[: int(res.n_iter) + 1]
    runlog.save_array(run.workdir / "kmeans_history.npy", history)
    plots.centroid_paths(
        z,
        res.labels,
        history,
        run.workdir / "plots" / "kmeans_history.png",
        seed=run.seed,
        title=f"k-means on {ds.name}: the centroids' paths, K={history.shape[1]}",
    )


if __name__ == "__main__":
    common.run_main(main)
