r"""Autoencoder + k-means (DEC's "AE + k-means" row): encode with a pretrained encoder, cluster the codes.

  python -m experiments.ae_kmeans --dataset=digits --epochs=50                  # pretrains first
  python -m experiments.ae_kmeans --dataset=mnist --pretrained=checkpoints/autoencoder/mnist-dec-seed0

Writes config.json, results.json (acc, nmi, ari, inertia, ...), labels.npy, embedding.npy, ckpt/ (the
centroids), plots/reconstructions.png (originals above their reconstructions) and plots/clusters.png. Without
--pretrained the autoencoder is trained with the autoencoder flags into <workdir>/autoencoder/ and reused by
later runs of this workdir.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import app, flags

from experiments import autoencoder, common
from research import plots
from research.cluster import kmeans
from research.deep import pretrain

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
flags.DEFINE_integer("n_init", 20, "k-means restarts on the embedding (DEC uses 20).")


def main(argv):
    del argv
    wd = common.prepare_workdir("ae_kmeans")
    ds = common.load_dataset()
    # The autoencoder gets the root key itself, so it is the one experiments.autoencoder trains with this seed.
    model, params, spec = autoencoder.obtain(wd, ds, common.root_key())
    k_km = jax.random.fold_in(common.root_key(), 1)
    z = pretrain.encode(model, params, ds.x)
    k = common.n_clusters(ds, FLAGS.n_clusters)
    timed = kmeans.fit_timed(k_km, z, k, n_init=FLAGS.n_init)
    res = timed.out
    np.save(wd / "embedding.npy", z)
    title = f"autoencoder ({spec['arch']}) + k-means, {ds.name}, K={k}"
    results = common.save_clustering(
        wd, ds, res.labels, {"centroids": np.asarray(res.centroids)}, {"n_clusters": k}, title
    )
    if ds.image_shape is not None:
        x_hat = pretrain.reconstruct(model, params, ds.x[:1000], spec["loss"])
        plots.reconstructions(ds.x[:1000], x_hat, ds.image_shape, wd / "plots" / "reconstructions.png", seed=FLAGS.seed)
    results |= {
        "n_clusters": k,
        "n_init": FLAGS.n_init,
        "arch": spec["arch"],
        "pretrained": FLAGS.pretrained or str(wd / "autoencoder"),
        "embedding_dim": int(z.shape[1]),
        "inertia": float(res.inertia),
        "kmeans_seconds": timed.run_seconds,
    }
    common.finish(wd, results, f"ae_kmeans {ds.name}/{FLAGS.split} K={k}: {common.score_text(results)} -> {wd}")


if __name__ == "__main__":
    app.run(main)
