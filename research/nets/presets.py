"""Named architectures, so a run's config.json ("arch", "activation", "init") is enough to rebuild its model."""

from __future__ import annotations

import math

from research.nets.conv import ConvAutoencoder
from research.nets.mlp import ACTIVATIONS, MLPAutoencoder

# name -> (kind, settings). Sources: DEC (Xie et al., 2016, section 4.1): d-500-500-2000-10; the seeds' dense
# 784-64 and 32/64-filter convolutional autoencoders; DCEC (Guo et al., 2017): 32-64-128 filters, 10-d code.
PRESETS = {
    "dec": ("mlp", {"widths": (500, 500, 2000, 10)}),
    "dense64": ("mlp", {"widths": (64,)}),
    "cae": ("conv", {"filters": (32, 64), "kernel_sizes": (3, 3), "latent": 64}),
    "dcec": ("conv", {"filters": (32, 64, 128), "kernel_sizes": (5, 5, 3), "latent": 10}),
}


def build(arch: str, input_dim: int, *, image_shape=None, activation: str = "relu", init: str = "glorot"):
    """The preset autoencoder `arch` for inputs of `input_dim` features (conv presets need `image_shape`).

    `arch` is a preset name, or "mlp:<w1>-<w2>-...-<latent>" for any dense widths (e.g. "mlp:500-500-2000-10").
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}.")
    if arch.startswith("mlp:"):
        try:
            widths = tuple(int(w) for w in arch[4:].split("-"))
        except ValueError:
            widths = ()
        if not widths or min(widths) < 1:
            raise ValueError(f"arch {arch!r}: expected mlp:<w1>-<w2>-...-<latent> with positive integer widths.")
        kind, settings = "mlp", {"widths": widths}
    elif arch in PRESETS:
        kind, settings = PRESETS[arch]
    else:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(PRESETS)} or mlp:<w1>-...-<latent>.")
    if kind == "mlp":
        return MLPAutoencoder(out_dim=int(input_dim), activation=activation, weight_init=init, **settings)
    if image_shape is None:
        raise ValueError(f"arch {arch!r} is convolutional and needs images; this dataset has no image shape.")
    if math.prod(image_shape) != input_dim:
        raise ValueError(f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} pixels, not {input_dim}.")
    return ConvAutoencoder(image_shape=tuple(image_shape), activation=activation, weight_init=init, **settings)
