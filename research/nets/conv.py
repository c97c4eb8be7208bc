"""Convolutional autoencoders: stride-2 convolutions down to a dense code, transposed convolutions back up."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn

from research.nets.mlp import ACTIVATIONS, kernel_init


class ConvAutoencoder(nn.Module):
    """x [n, H*W*C] -> z [n, latent] -> x_hat [n, H*W*C].

    Each encoder layer is a stride-2 'SAME' convolution (filters[i], kernel_sizes[i]), so any image size works:
    the decoder mirrors it with stride-2 transposed convolutions and crops each output to the size the encoder
    saw (28 -> 14 -> 7 -> 4 comes back as 4 -> 8 -> 7 -> 14 -> 28). The code and the reconstruction are linear.
    With `latent=0` there is no dense layer: the code is the last convolution's activated map, flattened
    (7 x 7 x 64 = 3136 values for 28x28 images and filters (32, 64)), and the decoder starts from it.
    """

    image_shape: Sequence[int]
    filters: Sequence[int] = (32, 64)
    kernel_sizes: Sequence[int] = (3, 3)
    latent: int = 64
    activation: str = "elu"
    weight_init: str = "glorot"

    def setup(self):
        if len(self.filters) != len(self.kernel_sizes):
            raise ValueError(f"filters {self.filters} and kernel_sizes {self.kernel_sizes} differ in length.")
        k = kernel_init(self.weight_init)
        self.act = ACTIVATIONS[self.activation]
        h, w, c = self._hwc()
        sizes = [(h, w)]
        for _ in self.filters:
            h, w = -(-h // 2), -(-w // 2)
            sizes.append((h, w))
        self.sizes = tuple(sizes)  # the spatial size before each encoder layer, and the last one
        self.down = [
            nn.Conv(f, (s, s), strides=(2, 2), padding="SAME", kernel_init=k, name=f"conv_{i}")
            for i, (f, s) in enumerate(zip(self.filters, self.kernel_sizes, strict=True))
        ]
        if self.latent < 0:
            raise ValueError(f"latent must be >= 0 (0: no dense code layer), got {self.latent}.")
        if self.latent:
            self.to_code = nn.Dense(self.latent, kernel_init=k, name="code")
            self.from_code = nn.Dense(h * w * self.filters[-1], kernel_init=k, name="uncode")
        outs = (c, *self.filters[:-1])
        self.up = [
            nn.ConvTranspose(o, (s, s), strides=(2, 2), padding="SAME", kernel_init=k, name=f"deconv_{i}")
            for i, (o, s) in enumerate(zip(outs, self.kernel_sizes, strict=True))
        ]

    def _hwc(self):
        if len(self.image_shape) == 2:
            return (*self.image_shape, 1)
        if len(self.image_shape) == 3:
            return tuple(self.image_shape)
        raise ValueError(f"image_shape must be (H, W) or (H, W, C), got {tuple(self.image_shape)}.")

    def encode(self, x):
        h = x.reshape(x.shape[0], *self._hwc())
        for conv in self.down:
            h = self.act(conv(h))
        h = h.reshape(h.shape[0], -1)
        return self.to_code(h) if self.latent else h

    def decode(self, z):
        hh, ww = self.sizes[-1]
        h = self.act(self.from_code(z)) if self.latent else z
        h = h.reshape(z.shape[0], hh, ww, self.filters[-1])
        for i in reversed(range(len(self.up))):
            th, tw = self.sizes[i]
            h = self.up[i](h)[:, :th, :tw, :]
            if i > 0:
                h = self.act(h)
        return h.reshape(z.shape[0], -1)

    def __call__(self, x):
        z = self.encode(x)
        return z, self.decode(z)
