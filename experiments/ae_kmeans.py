r"""Autoencoder + k-means (DEC's "AE + k-means" row): encode with a pretrained encoder, cluster the codes.

  python -m experiments.ae_kmeans --dataset=digits --ae_epochs=50                  # pretrains first
  python -m experiments.ae_kmeans --dataset=mnist --pretrained=checkpoints/autoencoder/mnist-dec-seed0

Writes config.json, results.json (acc, nmi, ari, inertia, ...), labels.npy, embedding.npy, ckpt/ (the
centroids), plots/reconstructions.png and plots/clusters.png. Without --pretrained the autoencoder is trained
with the --ae_* flags into <workdir>/autoencoder/ and reused by later runs of this workdir.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import flags

from experiments import common, features, stages  # noqa: F401 (features defines --pretrained)
from research import plots
from research.cluster import kmeans
from research.deep import pretrain

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_integer("n_init", 20, "k-means restarts on the embedding (DEC uses 20).")
common.cli.at_least("n_init", 1)
# The pretraining flags are --ae_*; their unprefixed names of the last release still work for one more.
stages.define_autoencoder_flags("ae_", old_names=stages.FIELDS)


def main(argv):
    del argv
    run = common.run_config("ae_kmeans")
    ae_cfg = stages.autoencoder_config("ae_")
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    model, params, spec = stages.obtain_autoencoder(run, ds, ae_cfg, FLAGS.pretrained)
    z = pretrain.encode(model, params, ds.x)
    k = common.n_clusters(ds, FLAGS.n_clusters)
    timed = kmeans.fit_timed(jax.random.fold_in(run.key(), 1), z, k, n_init=FLAGS.n_init)
    res = timed.out
    np.save(wd / "embedding.npy", z)
    title = f"autoencoder ({spec['arch']}) + k-means, {ds.name}, K={k}"
    results = common.save_clustering(
        run, ds, res.labels, {"centroids": np.asarray(res.centroids)}, {"n_clusters": k}, title
    )
    if ds.image_shape is not None:
        x_hat = pretrain.reconstruct(model, params, ds.x[:1000], spec["loss"])
        plots.reconstructions(ds.x[:1000], x_hat, ds.image_shape, wd / "plots" / "reconstructions.png", seed=run.seed)
    results |= {
        "n_clusters": k,
        "n_init": FLAGS.n_init,
        "arch": spec["arch"],
        "pretrained": FLAGS.pretrained or str(wd / "autoencoder"),
        "embedding_dim": int(z.shape[1]),
        "inertia": float(res.inertia),
        "kmeans_seconds": timed.run_seconds,
    }
    common.finish(run, results, f"ae_kmeans {ds.name}/{run.split} K={k}: {common.score_text(results)} -> {wd}")


if __name__ == "__main__":
    common.run_main(main)
