r"""Manifold clustering (the N2D recipe): features -> UMAP-style neighbour embedding -> Gaussian mixture.

  python -m experiments.manifold_cluster --dataset=digits                      # raw pixels, offline
  python -m experiments.manifold_cluster --dataset=mnist --data_dir=../shared/datasets
  python -m experiments.manifold_cluster --dataset=mnist --pretrained=checkpoints/autoencoder/mnist-dec-sgd-seed0

The features are the raw rows or a pretrained encoder's codes (--pretrained); their kNN graph is exact up to
--knn_dims features, else approximate. The --embed_dim embedding is clustered by a GMM (--gmm_n_init restarts).
The kNN search, outputs and every flag: docs/experiments.md#manifold_cluster, docs/flags.md.
"""

from __future__ import annotations

from absl import flags

from experiments import common, features, stages  # noqa: F401 (features defines --pretrained)

FLAGS = flags.FLAGS
stages.define_manifold_flags()  # the stage, shared with experiments.pipeline, lives in experiments/stages.py
stages.define_tensorboard_flag()


def main(argv):
    del argv
    cfg = stages.manifold_config(FLAGS.pretrained)
    run = common.run_config("manifold_cluster", "ae" if cfg.pretrained else "")
    stages.cluster_manifold(run, cfg, FLAGS.tensorboard)


if __name__ == "__main__":
    common.run_main(main)
