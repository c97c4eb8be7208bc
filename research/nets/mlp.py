"""Dense autoencoders, e.g. DEC's d-500-500-2000-10 (Xie et al., 2016, section 4.1)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "tanh": jnp.tanh, "sigmoid": nn.sigmoid}


KERNEL_INITS = ("glorot", "dec", "lecun", "fan_in_uniform")


def kernel_init(name: str):
    """'glorot': Glorot uniform (Keras's default); 'dec': N(0, 0.01^2), as in the DEC paper; 'lecun': Flax's;
    'fan_in_uniform': U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the Keras DEC reimplementation's MNIST setting
    (VarianceScaling(1/3, fan_in, uniform)) and PyTorch's nn.Linear default."""
    if name == "dec":
        return nn.initializers.normal(stddev=0.01)
    if name == "glorot":
        return nn.initializers.glorot_uniform()
    if name == "lecun":
        return nn.initializers.lecun_normal()
    if name == "fan_in_uniform":
        return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
    raise ValueError(f"unknown kernel init {name!r}; use one of {KERNEL_INITS}.")


def dense_name(side: str, i: int) -> str:
    """Layer i of the encoder maps width[i-1] -> width[i]; decoder layer i maps width[i] -> width[i-1]."""
    return f"{side}_{i}"


class MLPAutoencoder(nn.Module):
    """x [n, d] -> z [n, widths[-1]] -> x_hat [n, d], with d = `out_dim`.

    ReLU (or `activation`) after every layer except the embedding layer and the reconstruction output, which
    are linear, as in DEC. Encoder layer i is named `enc_i`, decoder layer i `dec_i` (it inverts `enc_i`), so
    DEC's greedy layer-wise pretraining can train the pair (enc_i, dec_i) on its own and drop it in place.
    """

    widths: Sequence[int]
    out_dim: int
    activation: str = "relu"
    weight_init: str = "glorot"

    def setup(self):
        k = kernel_init(self.weight_init)
        self.act = ACTIVATIONS[self.activation]
        self.enc = [nn.Dense(w, kernel_init=k, name=dense_name("enc", i)) for i, w in enumerate(self.widths)]
        ins = (self.out_dim, *self.widths[:-1])
        self.dec = [nn.Dense(w, kernel_init=k, name=dense_name("dec", i)) for i, w in enumerate(ins)]

    def encode(self, x):
        h = x
        for i, layer in enumerate(self.enc):
            h = layer(h)
            if i < len(self.enc) - 1:
                h = self.act(h)
        return h

    def decode(self, z):
        h = z
        for i in reversed(range(len(self.dec))):
            h = self.dec[i](h)
            if i > 0:
                h = self.act(h)
        return h

    def __call__(self, x):
        z = self.encode(x)
        return z, self.decode(z)


class DenseAutoencoder(nn.Module):
    """x [n, d] -> z [n, encoder[-1]] -> x_hat [n, d]: a plain stack, every layer activated, the code too.

    Encoder layer i (`enc_i`) has encoder[i] units and `activation`; the decoder is one dense layer `out` from
    the code back to the d inputs (linear: an output activation such as the sigmoid is applied by the loss, see
    `research.deep.pretrain.objective`). E.g. encoder (784, 64) on MNIST is 784-784-64-784, and (200,) is
    784-200-784: the Keras tutorials' networks, which have no mirrored decoder and no linear code.
    """

    encoder: Sequence[int]
    out_dim: int
    activation: str = "relu"
    weight_init: str = "glorot"

    def setup(self):
        k = kernel_init(self.weight_init)
        self.act = ACTIVATIONS[self.activation]
        self.enc = [nn.Dense(w, kernel_init=k, name=dense_name("enc", i)) for i, w in enumerate(self.encoder)]
        self.out = nn.Dense(self.out_dim, kernel_init=k, name="out")

    def encode(self, x):
        h = x
        for layer in self.enc:
            h = self.act(layer(h))
        return h

    def decode(self, z):
        return self.out(z)

    def __call__(self, x):
        z = self.encode(x)
        return z, self.decode(z)


def dae_layer(params_i, x, key, *, rate: float, act, hidden_linear: bool, out_linear: bool, train: bool):
    """One denoising layer of greedy pretraining: dropout(x) -> enc_i -> dropout -> dec_i -> x_hat.

    `params_i` = {"enc": {kernel, bias}, "dec": {kernel, bias}}. Dropout (inverted, rate `rate`) on the input
    and on the hidden code, as in DEC's stacked denoising autoencoders; `train=False` turns it off.
    """
    k_in, k_hidden = jax.random.split(key)
    if train and rate > 0:
        x = _dropout(k_in, x, rate)
    h = x @ params_i["enc"]["kernel"] + params_i["enc"]["bias"]
    h = h if hidden_linear else act(h)
    if train and rate > 0:
        h = _dropout(k_hidden, h, rate)
    out = h @ params_i["dec"]["kernel"] + params_i["dec"]["bias"]
    return out if out_linear else act(out)


def _dropout(key, x, rate):
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)
