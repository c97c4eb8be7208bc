"""Pixel shifts: exact against NumPy slicing, any image shape, block layout, bad inputs. Random affine
transforms: exact on whole-pixel moves and quarter turns, keyed, jittable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import augment


def shifted_np(img, dy, dx):
    """Reference: NumPy slicing into zeros. img [n, H, W, ...]."""
    out = np.zeros_like(img)
    h, w = img.shape[1:3]
    src_y = slice(max(-dy, 0), h - max(dy, 0))
    dst_y = slice(max(dy, 0), h - max(-dy, 0))
    src_x = slice(max(-dx, 0), w - max(dx, 0))
    dst_x = slice(max(dx, 0), w - max(-dx, 0))
    out[:, dst_y, dst_x] = img[:, src_y, src_x]
    return out


@pytest.mark.parametrize("shape", [(5, 7), (4, 6, 3), (2, 3)])
@pytest.mark.parametrize("dy, dx", [(1, 0), (-1, 0), (0, 1), (0, -1), (2, -3), (0, 0)])
def test_shift_is_exact(shape, dy, dx):
    rng = np.random.default_rng(0)
    img = rng.random((3, *shape)).astype(np.float32) + 1.0  # no zeros: a misplaced fill would show
    got = np.asarray(augment.shift(img.reshape(3, -1), shape, dy, dx)).reshape(img.shape)
    np.testing.assert_array_equal(got, shifted_np(img, dy, dx))


def test_one_pixel_directions():
    img = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3)
    up = np.asarray(augment.shift(img.reshape(1, -1), (3, 3), -1, 0)).reshape(3, 3)
    np.testing.assert_array_equal(up, [[4, 5, 6], [7, 8, 9], [0, 0, 0]])
    right = np.asarray(augment.shift(img.reshape(1, -1), (3, 3), 0, 1)).reshape(3, 3)
    np.testing.assert_array_equal(right, [[0, 1, 2], [0, 4, 5], [0, 7, 8]])
    whole = np.asarray(augment.shift(img.reshape(1, -1), (3, 3), 3, 0))
    np.testing.assert_array_equal(whole, 0)


@pytest.mark.parametrize("shape", [(6, 5), (4, 4, 3)])
def test_copies_layout_and_labels(shape):
    rng = np.random.default_rng(1)
    n = 4
    img = rng.random((n, *shape)).astype(np.float32)
    x = img.reshape(n, -1)
    y = np.array([3, 1, 4, 1])
    x5, y5 = augment.shift_augment(x, y, shape)
    assert x5.shape == (5 * n, x.shape[1]) and y5.shape == (5 * n,)
    np.testing.assert_array_equal(y5, np.tile(y, 5))
    np.testing.assert_array_equal(np.asarray(x5[:n]), x)
    for j, (dy, dx) in enumerate(augment.DIRECTIONS.values(), start=1):
        block = np.asarray(x5[j * n : (j + 1) * n]).reshape(img.shape)
        np.testing.assert_array_equal(block, shifted_np(img, dy, dx))
    four = augment.shift_copies(x, shape, include_original=False)
    np.testing.assert_array_equal(np.asarray(four), np.asarray(x5[n:]))
    two = np.asarray(augment.shift_copies(x, shape, pixels=2))
    np.testing.assert_array_equal(two[n : 2 * n].reshape(img.shape), shifted_np(img, -2, 0))
    assert augment.shift_augment(x, None, shape)[1] is None


def test_jit_equals_no_jit():
    x = np.random.default_rng(2).random((3, 20)).astype(np.float32)
    jitted = np.asarray(augment.shift_copies(x, (4, 5)))
    with jax.disable_jit():
        eager = np.asarray(augment.shift_copies(x, (4, 5)))
    np.testing.assert_array_equal(jitted, eager)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: augment.shift(x, (4, 4), 1, 0), "holds 16 values"),
        (lambda x: augment.shift(x, (2, 3, 2, 1), 1, 0), r"\(H, W\) or \(H, W, C\)"),
        (lambda x: augment.shift(x, (3, 4), 0.5, 0), "whole number"),
        (lambda x: augment.shift(x, (3, 4), 4, 0), "entirely out"),
        (lambda x: augment.shift_copies(x, (3, 4), pixels=5), "larger than the image"),
        (lambda x: augment.shift_augment(x, [0, 1, 2], (3, 4)), "3 labels but there are 2"),
        (lambda x: augment.shift(x.reshape(-1), (3, 4), 1, 0), "2-D"),
    ],
)
def test_bad_inputs(call, match):
    x = np.ones((2, 12), np.float32)
    with pytest.raises(ValueError, match=match):
        call(x)


@pytest.mark.parametrize("shape", [(7, 9), (6, 5, 3)])
def test_affine_whole_pixel_move_is_the_shift(shape):
    img = np.random.default_rng(3).random(shape).astype(np.float32) + 1.0
    got = np.asarray(augment.affine(jnp.asarray(img), 0.0, jnp.array([1.0, -2.0])))
    np.testing.assert_array_equal(got, shifted_np(img[None], 1, -2)[0])


def test_affine_quarter_turn_is_rot90():
    img = np.random.default_rng(4).random((6, 6, 2)).astype(np.float32)
    got = np.asarray(augment.affine(jnp.asarray(img), 90.0, jnp.zeros(2)))
    np.testing.assert_allclose(got, np.rot90(img, 1, axes=(0, 1)), atol=1e-6)
    # Half a pixel to the right: each pixel is the mean of its left neighbour and itself.
    half = np.asarray(augment.affine(jnp.asarray(img[..., 0]), 0.0, jnp.array([0.0, 0.5])))
    np.testing.assert_allclose(half[:, 1:], (img[:, :-1, 0] + img[:, 1:, 0]) / 2, atol=1e-6)


def test_random_affine_is_keyed_and_within_its_ranges():
    x = np.zeros((64, 28, 28), np.float32)
    x[:, 9:19, 13:15] = 1.0  # an upright bar in the middle
    x = jnp.asarray(x.reshape(64, -1))
    aug = augment.random_affine((28, 28), max_shift=0.1, max_rotation=10.0)
    a, b, c = (np.asarray(jax.jit(aug)(jax.random.key(k), x)) for k in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({r.tobytes() for r in a}) == 64  # every image gets its own draw
    np.testing.assert_allclose(a.sum(1), 20.0, rtol=0.02)  # moved and turned, nothing cut off or added
    # The bar's centre moves by at most 10% of the side (2.8 pixels) in each direction.
    ys, xs = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    img = a.reshape(64, 28, 28)
    cy = (img * ys).sum((1, 2)) / img.sum((1, 2))
    cx = (img * xs).sum((1, 2)) / img.sum((1, 2))
    assert np.abs(cy - 13.5).max() <= 2.81 and np.abs(cx - 13.5).max() <= 2.81
    assert np.abs(cy - 13.5).max() > 1.0 and np.abs(cx - 13.5).max() > 1.0
    # The bar turns by at most 10 degrees either way, and draws reach near both ends: its tilt from upright is
    # the angle of the principal axis of the image's second moments (within 0.1 degree of the drawn angle).
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    syy, sxx, sxy = ((img * u * v).sum((1, 2)) / img.sum((1, 2)) for u, v in ((dy, dy), (dx, dx), (dx, dy)))
    tilt = np.degrees(0.5 * np.arctan2(2 * sxy, syy - sxx))
    assert np.abs(tilt).max() <= 10.1 and tilt.max() > 7 and tilt.min() < -7
    still = augment.random_affine((28, 28), max_shift=0.0, max_rotation=0.0)
    np.testing.assert_array_equal(np.asarray(still(jax.random.key(2), x)), np.asarray(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (28,)}, r"\(H, W\) or \(H, W, C\)"),
        ({"image_shape": (28, 28), "max_shift": 1.5}, "fraction of the image side"),
        ({"image_shape": (28, 28), "max_rotation": -5}, "degrees"),
    ],
)
def test_random_affine_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augment.random_affine(**kwargs)
