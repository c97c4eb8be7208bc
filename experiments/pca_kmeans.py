r"""PCA then k-means on a dataset: fit, evaluate, save centroids and PCA, draw the cluster grid.

  python -m experiments.pca_kmeans --dataset=digits
  python -m experiments.pca_kmeans --dataset=mnist --data_dir=../shared/datasets --pca_components=30 --n_init=10

Writes config.json, results.json (acc, nmi, ari, inertia in PCA space, explained variance,
fit_seconds, compile_seconds, pca_seconds, ...), labels.npy, ckpt/ (the centroids in PCA space and
the PCA, Orbax) and plots/clusters.png (images only) into --workdir.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import app, flags

from experiments import common, features
from research.cluster import kmeans

FLAGS = flags.FLAGS
flags.DEFINE_integer("pca_components", 30, "Principal components k-means runs on.")
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
flags.DEFINE_integer("n_init", 10, "k-means restarts, fused into one pass over the data per iteration.")
flags.DEFINE_integer("max_iter", 300, "Lloyd iterations per restart at most.")
flags.DEFINE_float("tol", 1e-4, "Stop when the squared centroid shift is under tol x mean feature variance.")


def main(argv):
    del argv
    wd = common.prepare_workdir("pca_kmeans")
    ds = common.load_dataset()
    k = common.n_clusters(ds, FLAGS.n_clusters)
    key_pca, key_fit = jax.random.split(common.root_key())
    (z,), p, pca_info = features.pca_features(key_pca, ds.x, n_components=FLAGS.pca_components)
    timed = kmeans.fit_timed(key_fit, z, k, n_init=FLAGS.n_init, max_iter=FLAGS.max_iter, tol=FLAGS.tol)
    res = timed.out
    results = common.save_clustering(
        wd,
        ds,
        res.labels,
        {"centroids": np.asarray(res.centroids), "pca": {name: np.asarray(v) for name, v in p._asdict().items()}},
        {"n_clusters": k, "pca_components": FLAGS.pca_components, "dim": ds.x.shape[1]},
        f"PCA-{FLAGS.pca_components} + k-means, {ds.name}, K={k}",
    )
    results |= {
        "n_clusters": k,
        "n_init": FLAGS.n_init,
        "pca_components": FLAGS.pca_components,
        **pca_info,
        **common.fit_fields(res, timed),
    }
    common.finish(
        wd,
        results,
        f"pca_kmeans {ds.name}/{FLAGS.split} PCA-{FLAGS.pca_components} ({pca_info['pca_explained_variance']:.1%} "
        f"var) K={k}: {common.score_text(results)} inertia={res.inertia:.6g} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    app.run(main)
