r"""Self-organizing map on a dataset: fit, evaluate, group the units into clusters, draw the U-matrix.

  python -m experiments.som --dataset=digits
  python -m experiments.som --dataset=mnist --data_dir=../shared/datasets --grid_rows=16 --grid_cols=16 \
      --mode=online --n_steps=140000 --sigma=4
  python -m experiments.som --dataset=mnist --pretrained=<autoencoder workdir> --mode=batch   # a map of its codes

A sample's cluster is that of its best-matching unit, the units clustered by k-means on the codebook. Outputs
(results.json, labels.npy, winners.npy, ckpt/, plots/umatrix.png) and every flag: docs/experiments.md#som,
docs/flags.md.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from absl import flags

from experiments import common, features
from research import plots
from research.cluster import som

FLAGS = flags.FLAGS
flags.DEFINE_integer("grid_rows", 16, "Rows of the rectangular map.")
flags.DEFINE_integer("grid_cols", 16, "Columns of the rectangular map.")
flags.DEFINE_enum("mode", "online", ["online", "batch"], "online: MiniSom's one-sample update; batch: batch SOM.")
flags.DEFINE_integer("n_steps", None, "Online steps (one sample each). Default: 500 x units.")
flags.DEFINE_integer("n_epochs", 20, "Batch epochs (passes over the data).")
flags.DEFINE_float("sigma", None, "Starting neighbourhood width in grid cells. Default: max(rows, cols) / 4.")
flags.DEFINE_float("learning_rate", 0.5, "Starting learning rate (online mode).")
flags.DEFINE_enum("decay", "asymptotic", ["asymptotic", "exponential"], "Schedule of sigma and the learning rate.")
flags.DEFINE_enum("init", "pca", ["pca", "sample", "random"], "Codebook initialisation.")
flags.DEFINE_integer(
    "n_clusters", None, "Unit clusters. Default: the number of classes when labels are known, else 10."
)
common.validate_n_clusters_flag()
flags.DEFINE_integer("plot_points", 2000, "Samples drawn on the U-matrix.")
common.cli.at_least("grid_rows", 1, "a map needs at least one unit")
common.cli.at_least("grid_cols", 1, "a map needs at least one unit")
common.cli.at_least("n_steps", 1)
common.cli.at_least("n_epochs", 1)
common.cli.positive_finite("sigma")
common.cli.positive_finite("learning_rate")
common.cli.at_least("plot_points", 0)
common.cli.only_when(["n_epochs"], "mode", lambda m: m == "batch", "with --mode=batch")
common.cli.only_when(["n_steps", "learning_rate"], "mode", lambda m: m == "online", "with --mode=online")
features.define_flags()


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names; grid: --grid_rows x --grid_cols): som.fit's keywords, the
    number of unit clusters and the U-matrix's points."""

    grid: tuple[int, int]
    mode: str
    n_steps: int | None
    n_epochs: int
    sigma: float | None
    learning_rate: float
    decay: str
    init: str
    n_clusters: int | None
    plot_points: int
    features: features.Config


def main(argv):
    del argv
    grid = (FLAGS.grid_rows, FLAGS.grid_cols)
    cfg = common.config_from_flags(Config, grid=grid, features=features.config_from_flags())
    fit_and_evaluate(common.run_config("som"), cfg)


def fit_and_evaluate(run: common.RunConfig, cfg: Config) -> None:
    """Fits the map to the cfg.features of run's dataset, clusters its units; writes the workdir's outputs."""
    grid = cfg.grid
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    k = common.n_clusters(ds, cfg.n_clusters)
    if grid[0] >= 1 and grid[1] >= 1 and k > grid[0] * grid[1]:  # fail before the fit, not after it
        raise ValueError(f"--n_clusters={k} exceeds the {grid[0] * grid[1]} units of the map; use a larger grid.")
    key_fit, key_cluster = jax.random.split(run.key())  # as before features could be chosen
    (z,), params, info = features.extract(cfg.features, jax.random.fold_in(run.key(), 1), ds.x, dataset=ds.name)
    timed = som.fit_timed(key_fit, z, grid, **common.keyword_args(som.fit, cfg))
    res = timed.out
    t0 = time.perf_counter()
    groups = som.cluster_units(key_cluster, res.codebook_hwd, k, z)
    cluster_seconds = time.perf_counter() - t0
    winners = np.asarray(res.winners_n)
    np.save(wd / "winners.npy", winners)
    title = f"SOM {grid[0]}x{grid[1]} ({cfg.mode}), {ds.name}, {features.name(cfg.features)}"
    results = common.save_clustering(
        run,
        ds,
        groups.labels_n,
        params | {"codebook": np.asarray(res.codebook_hwd), "unit_labels": np.asarray(groups.unit_labels_hw)},
        {"grid": list(grid), "dim": z.shape[1], "n_clusters": k} | features.describe(cfg.features, z.shape[1]),
        f"{title}, K={k}",
    )
    plots.umatrix(
        som.distance_map(res.codebook_hwd),
        np.stack([winners // grid[1], winners % grid[1]], axis=1),
        wd / "plots" / "umatrix.png",
        y_n=ds.y,
        max_points=cfg.plot_points,
        seed=run.seed,
        title=title,
    )
    results |= info | {
        "grid": list(grid),
        "mode": cfg.mode,
        "n_steps": (cfg.n_steps or som.default_n_steps(grid)) if cfg.mode == "online" else None,
        "n_epochs": cfg.n_epochs if cfg.mode == "batch" else None,
        "n_clusters": k,
        "quantization_error": float(res.quantization_error),
        "topographic_error": float(res.topographic_error),
        "units_used": len(np.unique(winners)),
        "fit_seconds": timed.run_seconds,
        "compile_seconds": timed.compile_seconds,
        "cluster_seconds": cluster_seconds,
    }
    common.finish(
        run,
        results,
        f"som {ds.name}/{run.split} {grid[0]}x{grid[1]} {cfg.mode}: QE={res.quantization_error:.4f} "
        f"TE={res.topographic_error:.4f} K={k} {common.score_text(results)} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    common.run_main(main)
