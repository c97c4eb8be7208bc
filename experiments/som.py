r"""Self-organizing map on a dataset: fit, evaluate, group the units into clusters, draw the U-matrix.

  python -m experiments.som --dataset=digits
  python -m experiments.som --dataset=mnist --data_dir=../shared/datasets --grid_rows=16 --grid_cols=16 \
      --mode=online --n_steps=140000 --sigma=4

Writes config.json, results.json (quantization_error, topographic_error, acc/nmi/ari of the unit
clusters when the data has labels, fit_seconds, compile_seconds, ...), labels.npy (each sample's
cluster: k-means on the codebook, a sample takes its best-matching unit's cluster), winners.npy (each
sample's best-matching unit, flat index row * cols + col), ckpt/ (codebook and unit clusters, Orbax),
plots/umatrix.png and, for images, plots/clusters.png into --workdir.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from experiments import common
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
flags.DEFINE_integer("plot_points", 2000, "Samples drawn on the U-matrix.")


def main(argv):
    del argv
    grid = (FLAGS.grid_rows, FLAGS.grid_cols)
    wd = common.prepare_workdir("som")
    ds = common.load_dataset()
    k = common.n_clusters(ds, FLAGS.n_clusters)
    if grid[0] >= 1 and grid[1] >= 1 and k > grid[0] * grid[1]:  # fail before the fit, not after it
        raise ValueError(f"--n_clusters={k} exceeds the {grid[0] * grid[1]} units of the map; use a larger grid.")
    key_fit, key_cluster = jax.random.split(common.root_key())
    timed = som.fit_timed(
        key_fit,
        ds.x,
        grid,
        mode=FLAGS.mode,
        n_steps=FLAGS.n_steps,
        n_epochs=FLAGS.n_epochs,
        sigma=FLAGS.sigma,
        learning_rate=FLAGS.learning_rate,
        decay=FLAGS.decay,
        init=FLAGS.init,
    )
    res = timed.out
    t0 = time.perf_counter()
    groups = som.cluster_units(key_cluster, res.codebook_hwd, k, ds.x)
    cluster_seconds = time.perf_counter() - t0
    winners = np.asarray(res.winners_n)
    np.save(wd / "winners.npy", winners)
    title = f"SOM {grid[0]}x{grid[1]} ({FLAGS.mode}), {ds.name}"
    results = common.save_clustering(
        wd,
        ds,
        groups.labels_n,
        {"codebook": np.asarray(res.codebook_hwd), "unit_labels": np.asarray(groups.unit_labels_hw)},
        {"grid": list(grid), "dim": ds.x.shape[1], "n_clusters": k},
        f"{title}, K={k}",
    )
    plots.umatrix(
        som.distance_map(res.codebook_hwd),
        np.stack([winners // grid[1], winners % grid[1]], axis=1),
        wd / "plots" / "umatrix.png",
        y_n=ds.y,
        max_points=FLAGS.plot_points,
        seed=FLAGS.seed,
        title=title,
    )
    results |= {
        "grid": list(grid),
        "mode": FLAGS.mode,
        "n_steps": (FLAGS.n_steps or som.default_n_steps(grid)) if FLAGS.mode == "online" else None,
        "n_epochs": FLAGS.n_epochs if FLAGS.mode == "batch" else None,
        "n_clusters": k,
        "quantization_error": float(res.quantization_error),
        "topographic_error": float(res.topographic_error),
        "units_used": len(np.unique(winners)),
        "fit_seconds": timed.run_seconds,
        "compile_seconds": timed.compile_seconds,
        "cluster_seconds": cluster_seconds,
    }
    common.finish(
        wd,
        results,
        f"som {ds.name}/{FLAGS.split} {grid[0]}x{grid[1]} {FLAGS.mode}: QE={res.quantization_error:.4f} "
        f"TE={res.topographic_error:.4f} K={k} {common.score_text(results)} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    app.run(main)
