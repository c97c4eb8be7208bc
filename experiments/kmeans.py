r"""k-means on a dataset: fit, evaluate, save centroids, draw the cluster grid.

  python -m experiments.kmeans --dataset=digits
  python -m experiments.kmeans --dataset=mnist --data_dir=../shared/datasets --n_init=10
  python -m experiments.kmeans --dataset=npy:/data/big.npy --minibatch_size=1024   # memory-mapped, streamed

Writes config.json, results.json (acc, nmi, ari, inertia, fit_seconds,
compile_seconds, ...), labels.npy, ckpt/ (the centroids, Orbax) and
plots/clusters.png into --workdir.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from experiments import common
from research.cluster import kmeans, minibatch_kmeans

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
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


def main(argv):
    del argv
    wd = common.prepare_workdir("kmeans")
    ds = common.load_dataset(mmap=FLAGS.minibatch_size > 0)
    k = common.n_clusters(ds, FLAGS.n_clusters)
    if FLAGS.minibatch_size:
        timed = minibatch_kmeans.fit_timed(
            common.root_key(),
            ds.x,
            k,
            batch_size=FLAGS.minibatch_size,
            n_init=FLAGS.n_init,
            max_iter=FLAGS.max_iter,
            init=FLAGS.init,
        )
    else:
        timed = kmeans.fit_timed(
            common.root_key(),
            ds.x,
            k,
            n_init=FLAGS.n_init,
            max_iter=FLAGS.max_iter,
            tol=FLAGS.tol,
            init=FLAGS.init,
            prune=FLAGS.prune,
        )
    res = timed.out
    results = common.save_clustering(
        wd,
        ds,
        res.labels,
        {"centroids": np.asarray(res.centroids)},
        {"n_clusters": k, "dim": ds.x.shape[1]},
        f"k-means, {ds.name}, K={k}",
    )
    results |= {
        "n_clusters": k,
        "n_init": FLAGS.n_init,
        "minibatch_size": FLAGS.minibatch_size,
        **common.fit_fields(res, timed),
    }
    common.finish(
        wd,
        results,
        f"kmeans {ds.name}/{FLAGS.split} K={k}: {common.score_text(results)} inertia={res.inertia:.6g} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    app.run(main)
