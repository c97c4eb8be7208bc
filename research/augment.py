"""Pixel-shift augmentation for flattened images, jitted.

Rows of x are images of shape (H, W) or (H, W, C) flattened in C order (as
`research.data` returns them). A shift moves the content by whole pixels and fills
the uncovered border with zeros, exactly as NumPy slicing into a zero array would
(scipy.ndimage.shift(order=0, cval=0) for integer shifts).

The classic MNIST trick shifts every training image one pixel up, down, left and
right: `shift_augment` returns the originals followed by those four copies (5x the
rows, labels repeated).
"""

from __future__ import annotations

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
