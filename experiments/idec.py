r"""IDEC (Improved Deep Embedded Clustering, Guo et al., 2017): DEC with the decoder's reconstruction loss kept,
loss = reconstruction + gamma * KL(P || Q), so the embedding keeps its local structure.

  python -m experiments.idec                                             # digits: pretrains, then IDEC
  python -m experiments.idec --flagfile=experiments/configs/idec_mnist.flags --seed=0 \
      --pretrained=checkpoints/autoencoder/mnist-dec-sgd-seed0

The flags and outputs are experiments.dec's; only the defaults differ, IDEC's for MNIST (its Keras code,
IDEC.py): --gamma=0.1 and Adam with learning rate 0.001 (--dec_optimizer, --dec_learning_rate).
"""

from __future__ import annotations

import functools

from absl import app, flags

from experiments import dec

flags.FLAGS.set_default("gamma", 0.1)
flags.FLAGS.set_default("dec_optimizer", "adam")
flags.FLAGS.set_default("dec_learning_rate", 0.001)


if __name__ == "__main__":
    app.run(functools.partial(dec.main, experiment="idec"))
