"""Folders of image files (PNG, JPEG, ... through Pillow) as rows: the one loader of `images:<dir>` datasets and
of experiments.cluster_images.

    paths, n_other = find_images(folder)              # image files, in ORDER (sorted relative paths)
    x, read, unreadable = load_folder(paths, size=32, color="gray")   # x [n, size*size(*3)] float32 in [0, 1]
    y, classes = labels_from_folders(read, folder)    # class = top sub-folder's name, or (None, ()) if any
                                                      # image sits at the top level
    x, y, image_shape = load_dir(folder, size, color) # all of the above, as research.data.load's images:<dir>

Order: the images found under a folder are sorted by their path relative to it, compared folder by folder
(`a/b.png` before `a.png`: the parts ("a", "b.png") < ("a.png",)); hidden files and folders are skipped and
symlinked folders not followed. Features computed elsewhere (a .npy of a backbone's outputs) must follow this
order to line up with the images. Pixels: each mode scaled by its own range (`load_image`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
COLORS = ("gray", "rgb")
DEFAULT_SIZE = 32

log = logging.getLogger(__name__)


def image_shape(size: int, color: str) -> tuple:
    """(size, size) for gray, (size, size, 3) for rgb: how a row of `load_folder` is reshaped into an image."""
    return (size, size) if color == "gray" else (size, size, 3)


def find_images(image_dir, recursive: bool = True, skip_dirs=()) -> tuple[list[Path], int]:
    """Image files under image_dir in the module's ORDER, and how many other (non-image) files were passed over.

    skip_dirs: folders not to look in (e.g. an output folder inside image_dir)."""
    image_dir = Path(image_dir)
    skip = {Path(d).resolve() for d in skip_dirs}
    found, others = [], 0
    for root, dirs, files in os.walk(image_dir):  # followlinks=False: no loops through symlinked folders
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() not in skip)
        if not recursive:
            dirs[:] = []
        for name in files:
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / name)
            else:
                others += 1
    return sorted(found, key=lambda p: p.relative_to(image_dir).parts), others


# Modes Pillow converts to L and RGB itself, all 8 bits per channel.
_EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LA", "PA", "HSV")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def load_image(path, size: int, color: str) -> np.ndarray:
    """One image as float32 [size, size] (gray) or [size, size, 3] (rgb) in [0, 1]; raises on a bad file.

    Scaled by the range of the image's own mode: 8-bit modes (1, L, P, RGB, RGBA, LA, PA, CMYK, YCbCr, HSV) by
    255, 16-bit gray (I;16) by 65535, 32-bit integer gray (I) by 65535 when its values fit 16 bits (Pillow
    decodes some 16-bit files as I), float gray (F) as it is when within [0, 1]; any other I or F image by its
    own min and max, with a warning. Transparent pixels are laid on white. Other modes (LAB, La, ...) and NaN or
    infinite pixels raise ValueError.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()  # decode everything now: a truncated file fails here, not later
        im = ImageOps.exif_transpose(im)
        if im.mode in _EIGHT_BIT_MODES:
            return _eight_bit(im, size, color)
        if im.mode not in _SIXTEEN_BIT_MODES + ("I", "F"):
            raise ValueError(
                f"{path}: images of mode {im.mode} are not supported; convert it to 8-bit RGB or gray, "
                "16-bit gray or float gray first."
            )
        gray = _unit_range(np.asarray(im), im.mode, path)
    small = Image.fromarray(gray).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    gray = np.clip(np.asarray(small, np.float32), 0.0, 1.0)  # Lanczos overshoots at sharp edges
    return gray if color == "gray" else np.repeat(gray[..., None], 3, axis=-1)


def _eight_bit(im, size: int, color: str) -> np.ndarray:
    """An 8-bit Pillow image as float32 [size, size(, 3)] in [0, 1], transparency laid on white."""
    from PIL import Image

    if im.mode in ("RGBA", "RGBa", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    im = im.convert("L" if color == "gray" else "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(im, np.float32) / 255.0


def _unit_range(a: np.ndarray, mode: str, path) -> np.ndarray:
    """A one-channel 16-bit, 32-bit integer or float image as float32 in [0, 1] (the rule of load_image)."""
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{path}: the {mode} image has NaN or infinite pixels; only finite images can be read.")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and lo >= 0 and hi <= 65535):
        return (a / 65535).astype(np.float32)
    if mode == "F" and lo >= 0 and hi <= 1:
        return a.astype(np.float32)
    log.warning(
        "%s: %s pixels span [%g, %g], outside its mode's range; scaled by their own min and max",
        printable(path),
        mode,
        lo,
        hi,
    )
    return ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)).astype(np.float32)


def load_folder(paths, size: int, color: str):
    """(x [n, d] float32, the paths read, [{"path", "error"}] for the files that could not be, each logged)."""
    rows, ok, bad = [], [], []
    for p in paths:
        try:
            rows.append(load_image(p, size, color).reshape(-1))
            ok.append(p)
        except Exception as e:  # noqa: BLE001 - any decoder failure on a user's file means "skip it", not "crash"
            bad.append({"path": str(p), "error": f"{type(e).__name__}: {e}"})
            log.warning("skipping unreadable image %s (%s: %s)", printable(p), type(e).__name__, printable(e))
    d = size * size * (1 if color == "gray" else 3)
    return (np.stack(rows) if rows else np.zeros((0, d), np.float32)), ok, bad


def labels_from_folders(paths, image_dir) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """(y [n] int64, class names) when every path lies inside a sub-folder of image_dir and there are two or
    more of them: the class is the top sub-folder's name, numbered in sorted order (deeper folders belong to
    their top one). Else (None, ()): an image at the top level, or a single sub-folder, means no labels."""
    tops = [Path(p).relative_to(image_dir).parts for p in paths]
    if not tops or any(len(parts) < 2 for parts in tops):
        return None, ()
    classes = tuple(sorted({parts[0] for parts in tops}))
    if len(classes) < 2:
        return None, ()
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[parts[0]] for parts in tops], np.int64), classes


def load_dir(image_dir, size: int = DEFAULT_SIZE, color: str = "gray"):
    """Every image under image_dir as (x [n, d] float32, y [n] or None, image_shape); unreadable files are
    logged, listed in one warning and skipped. Labels: `labels_from_folders` of the images read."""
    image_dir = Path(image_dir)
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"images:{image_dir}: image size must be a whole number >= 1, got {size!r}.")
    if color not in COLORS:
        raise ValueError(f"images:{image_dir}: color must be one of {', '.join(COLORS)}, got {color!r}.")
    paths, n_other = find_images(image_dir)
    if not paths:
        raise ValueError(
            f"images:{image_dir}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder or its sub-folders."
        )
    x, read, unreadable = load_folder(paths, int(size), color)
    if unreadable:
        listed = "; ".join(printable(u["path"]) for u in unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        log.warning("images:%s: %d unreadable files skipped: %s", printable(image_dir), len(unreadable), listed)
    if not read:
        raise ValueError(f"images:{image_dir}: none of its {len(paths)} image files could be read (see the log).")
    y, classes = labels_from_folders(read, image_dir)
    log.info(
        "images:%s: %d images read (%d unreadable, %d other files ignored), %s",
        printable(image_dir),
        len(read),
        len(unreadable),
        n_other,
        f"labels from {len(classes)} sub-folders {list(classes)[:10]}" if y is not None else "no labels",
    )
    return x, y, image_shape(int(size), color)


def printable(s) -> str:
    """str(s) with each byte of a non-UTF-8 file name shown as \\xNN (for logs, messages, titles and stdout)."""
    try:
        return os.fsencode(str(s)).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return str(s).encode("utf-8", "backslashreplace").decode("utf-8")
