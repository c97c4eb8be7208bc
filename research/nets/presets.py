"""Named architectures, so a run's config.json ("arch", "activation", "init") is enough to rebuild its model."""

from __future__ import annotations

import math

from research.nets.conv import ConvAutoencoder
from research.nets.mlp import ACTIVATIONS, DenseAutoencoder, MLPAutoencoder

# name -> (kind, settings). Sources: DEC (Xie et al., 2016, section 4.1): d-500-500-2000-10; the seeds' dense
# 784-64 and 32/64-filter convolutional autoencoders; DCEC (Guo et al., 2017): 32-64-128 filters, 10-d code.
# "mlp" nets mirror the encoder and keep the code linear (DEC); "dense" nets activate every layer, the code too,
# and go back to the input in one layer (the notes' Keras networks: dense784-64 is 784-784-64-784 on MNIST,
# dense200 784-200-784); cae32-64k2 is the notes' convolutional one: 2x2 stride-2 convolutions with 32 and 64
# filters, no dense layer (the code is the 7x7x64 map on MNIST), 2x2 stride-2 transposed convolutions back up.
PRESETS = {
    "dec": ("mlp", {"widths": (500, 500, 2000, 10)}),
    "dense64": ("mlp", {"widths": (64,)}),
    "dense784-64": ("dense", {"encoder": (784, 64)}),
    "dense200": ("dense", {"encoder": (200,)}),
    "cae": ("conv", {"filters": (32, 64), "kernel_sizes": (3, 3), "latent": 64}),
    "cae32-64k2": ("conv", {"filters": (32, 64), "kernel_sizes": (2, 2), "latent": 0}),
    "dcec": ("conv", {"filters": (32, 64, 128), "kernel_sizes": (5, 5, 3), "latent": 10}),
}


def build(arch: str, input_dim: int, *, image_shape=None, activation: str = "relu", init: str = "glorot"):
    """The preset autoencoder `arch` for inputs of `input_dim` features (conv presets need `image_shape`).

    `arch` is a preset name, or "mlp:<w1>-<w2>-...-<latent>" for any dense widths with a mirrored decoder and a
    linear code (e.g. "mlp:500-500-2000-10"), or "dense:<w1>-...-<code>" for a plain stack whose every layer is
    activated and whose decoder is one layer (e.g. "dense:784-64").
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}.")
    kind, _, spelled = arch.partition(":")
    if spelled and kind in ("mlp", "dense"):
        try:
            widths = tuple(int(w) for w in spelled.split("-"))
        except ValueError:
            widths = ()
        if not widths or min(widths) < 1:
            raise ValueError(f"arch {arch!r}: expected {kind}:<w1>-<w2>-...-<latent> with positive integer widths.")
        settings = {"widths": widths} if kind == "mlp" else {"encoder": widths}
    elif arch in PRESETS:
        kind, settings = PRESETS[arch]
    else:
        raise ValueError(
            f"unknown arch {arch!r}; choose from {sorted(PRESETS)}, mlp:<w1>-...-<latent> or dense:<w1>-...-<code>."
        )
    if kind == "mlp":
        return MLPAutoencoder(out_dim=int(input_dim), activation=activation, weight_init=init, **settings)
    if kind == "dense":
        return DenseAutoencoder(out_dim=int(input_dim), activation=activation, weight_init=init, **settings)
    if image_shape is None:
        raise ValueError(f"arch {arch!r} is convolutional and needs images; this dataset has no image shape.")
    if math.prod(image_shape) != input_dim:
        raise ValueError(f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} pixels, not {input_dim}.")
    return ConvAutoencoder(image_shape=tuple(image_shape), activation=activation, weight_init=init, **settings)
