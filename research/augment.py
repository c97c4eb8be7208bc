"""Augmentation of flattened images, jitted: one-pixel shifts and random affine moves.

    x5, y5 = augment.shift_augment(x_nd, y_n, (28, 28))    # the originals, then 4 one-pixel shifts (5x the rows)
    aug = augment.random_affine((28, 28), max_shift=0.1, max_rotation=10.0)
    x_bd = aug(key, x_bd)                                   # a fresh rotation and move per image, inside a jitted step

Rows are images of `image_shape` (H, W) or (H, W, C) flattened in C order, as `research.data` returns them.
Shifts move the content by whole pixels and fill with zeros (scipy.ndimage.shift(order=0, cval=0) for integer
shifts). `RandomAffine` turns and moves each image by bilinear interpolation with zero fill: DEC-DA's
pretraining augmentation (Guo et al., ACML 2018: shifts up to 10% of the side, rotations up to 10 degrees).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from research import checks

# (dy, dx) in the order of the copies after the originals; dy < 0 moves the content up.
DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def _check_shape(x_nd, image_shape):
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) not in (2, 3) or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (H, W) or (H, W, C) with positive sizes, got {image_shape}.")
    if int(np.prod(image_shape)) != x_nd.shape[1]:
        raise ValueError(
            f"image_shape {image_shape} holds {int(np.prod(image_shape))} values but x rows have {x_nd.shape[1]}."
        )
    return image_shape


def _shift_images(img, dy: int, dx: int):
    """img [n, H, W, ...] moved by (dy, dx) pixels, zero fill; static shifts, |dy| <= H, |dx| <= W."""
    h, w = img.shape[1:3]
    pads = [(0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))] + [(0, 0)] * (img.ndim - 3)
    padded = jnp.pad(img, pads)
    # Content at row r lands at r + dy: take rows [max(-dy,0), max(-dy,0) + H) of the padded array.
    y0, x0 = max(-dy, 0), max(-dx, 0)
    return padded[:, y0 : y0 + h, x0 : x0 + w]


@functools.partial(jax.jit, static_argnames=("image_shape", "shifts"))
def _shifted(x_nd, *, image_shape, shifts):
    img = x_nd.reshape((x_nd.shape[0],) + image_shape)
    return jnp.concatenate([_shift_images(img, dy, dx).reshape(x_nd.shape) for dy, dx in shifts])


def _check_offset(v, size, name):
    if isinstance(v, bool) or int(v) != v:
        raise ValueError(f"{name} must be a whole number of pixels, got {v!r}.")
    v = int(v)
    if abs(v) > size:
        raise ValueError(f"{name}={v} shifts the image entirely out of its {size} pixels.")
    return v


def shift(x_nd, image_shape, dy: int, dx: int) -> jax.Array:
    """Shifts every image by dy rows (down if > 0) and dx columns (right if > 0), zero fill.

    x_nd: [n, H*W(*C)] flattened images; returns the same shape, float32.
    """
    x_nd = checks.as_matrix(x_nd)
    image_shape = _check_shape(x_nd, image_shape)
    dy = _check_offset(dy, image_shape[0], "dy")
    dx = _check_offset(dx, image_shape[1], "dx")
    return _shifted(jnp.asarray(x_nd, jnp.float32), image_shape=image_shape, shifts=((dy, dx),))


def shift_copies(x_nd, image_shape, *, pixels: int = 1, include_original: bool = True) -> jax.Array:
    """[5n, d]: the originals, then all rows shifted up, down, left, right by `pixels` (blocks of n).

    Without the originals, [4n, d]. The block layout is what `probe.cross_validate(augment=...)` expects.
    """
    x_nd = checks.as_matrix(x_nd)
    image_shape = _check_shape(x_nd, image_shape)
    pixels = checks.check_positive_int(pixels, "pixels")
    if pixels > min(image_shape[:2]):
        raise ValueError(f"pixels={pixels} is larger than the image ({image_shape[0]}x{image_shape[1]}).")
    shifts = tuple((dy * pixels, dx * pixels) for dy, dx in DIRECTIONS.values())
    if include_original:
        shifts = ((0, 0),) + shifts
    return _shifted(jnp.asarray(x_nd, jnp.float32), image_shape=image_shape, shifts=shifts)


def shift_augment(x_nd, y_n, image_shape, *, pixels: int = 1):
    """(x [5n, d], y [5n]): the originals and their four one-pixel shifts, labels repeated.

    y_n may be None (returns None for the labels).
    """
    x_out = shift_copies(x_nd, image_shape, pixels=pixels)
    if y_n is None:
        return x_out, None
    y_n = checks.check_labels(y_n, x_out.shape[0] // 5)
    return x_out, np.tile(y_n, 5)


@dataclasses.dataclass(frozen=True)
class RandomAffine:
    """Random rotation and translation of each flattened image, drawn from a key.

        aug = RandomAffine((28, 28), max_shift=0.1, max_rotation=10.0)
        x_aug = aug(key, x_bd)          # [B, 784] -> [B, 784], jittable

    Each image turns by an angle drawn uniformly from [-max_rotation, max_rotation] degrees about its centre
    and moves by offsets drawn uniformly from [-max_shift, max_shift] times its height and width (fractions
    of pixels included), read back by bilinear interpolation with zeros outside (MNIST's background).
    Frozen and hashable, so a jitted loss can close over it and `jax.jit(aug)` works.
    """

    image_shape: tuple
    max_shift: float = 0.1
    max_rotation: float = 10.0

    def __call__(self, key, x_bd):
        img = x_bd.reshape((x_bd.shape[0],) + tuple(self.image_shape))
        out = jax.vmap(self._one)(jax.random.split(key, x_bd.shape[0]), img)
        return out.reshape(x_bd.shape)

    def _one(self, key, img):
        k_rot, k_shift = jax.random.split(key)
        angle = jax.random.uniform(k_rot, (), minval=-self.max_rotation, maxval=self.max_rotation)
        t = jax.random.uniform(k_shift, (2,), minval=-self.max_shift, maxval=self.max_shift)
        return affine(img, angle, t * jnp.array(img.shape[:2], jnp.float32))


def affine(img, angle, t_yx):
    """img [H, W] or [H, W, C] turned by `angle` degrees about its centre (counter-clockwise as displayed,
    row 0 at the top), then moved by t_yx = (rows down, columns right); bilinear, zero fill."""
    h, w = img.shape[:2]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    # Output pixel p shows the input at R(-angle) (p - c - t) + c.
    dy, dx = yy - cy - t_yx[0], xx - cx - t_yx[1]
    rad = jnp.deg2rad(angle)
    cos, sin = jnp.cos(rad), jnp.sin(rad)
    coords = [cos * dy + sin * dx + cy, -sin * dy + cos * dx + cx]

    def sample(channel):
        return jax.scipy.ndimage.map_coordinates(channel, coords, order=1, mode="constant", cval=0.0)

    if img.ndim == 2:
        return sample(img)
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(img)


def random_affine(image_shape, *, max_shift: float = 0.1, max_rotation: float = 10.0) -> RandomAffine:
    """A checked `RandomAffine`: image_shape (H, W) or (H, W, C), max_shift in [0, 1), max_rotation in [0, 180]."""
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) not in (2, 3) or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (H, W) or (H, W, C) with positive sizes, got {image_shape}.")
    if not 0 <= max_shift < 1:
        raise ValueError(f"max_shift is a fraction of the image side in [0, 1), got {max_shift}.")
    if not 0 <= max_rotation <= 180:
        raise ValueError(f"max_rotation is in degrees, within [0, 180], got {max_rotation}.")
    return RandomAffine(image_shape, float(max_shift), float(max_rotation))
