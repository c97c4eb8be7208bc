"""Flax (linen) autoencoders, used functionally: `params = model.init(key, x)`, `z, x_hat = model.apply(params, x)`.

Every autoencoder takes flattened rows x [n, d] (images in C order, as `research.data` gives them) and returns
`(z [n, latent], x_hat [n, d])`; `model.apply(params, x, method="encode")` gives z alone. `build(arch, ...)`
makes one from a preset name, which is what a run stores in its config.json so a later run can rebuild it.
"""

from research.nets.conv import ConvAutoencoder
from research.nets.mlp import DenseAutoencoder, MLPAutoencoder
from research.nets.presets import PRESETS, build

__all__ = ["PRESETS", "ConvAutoencoder", "DenseAutoencoder", "MLPAutoencoder", "build"]
