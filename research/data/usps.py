"""USPS handwritten digits in LIBSVM's bzip2'd sparse text format (usps.bz2: 7291 train, usps.t.bz2: 2007 test).

Each line is "<label> <index>:<value> ..." with labels 1..10 (LIBSVM numbers the ten classes from 1; we
return label - 1, as torchvision does), indices 1..256 over a 16x16 image in row-major
order and values in [-1, 1]; an index left out is 0. Pixels come back as (value + 1) / 2 in [0, 1],
[N, 16, 16] float32. Reference: Hull, "A database for handwritten text recognition research", IEEE TPAMI
16(5), 1994; files from https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps.
"""

from __future__ import annotations

import bz2
import io
from pathlib import Path

import numpy as np

SIDE = 16


def read_parts(paths: dict, parts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(images [N, 16, 16] float32 in [0, 1], labels [N] int64 0..9)] for each of `parts`."""
    names = {"train": "usps.bz2", "test": "usps.t.bz2"}
    return [read_file(paths[names[part]]) for part in parts]


def read_file(path) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from one USPS file, bzip2'd (detected from its content) or plain."""
    data = Path(path).read_bytes()
    if data.startswith(b"BZh"):
        try:
            data = bz2.decompress(data)
        except (OSError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: corrupt bzip2 stream ({e}); delete the file and load again.") from None
    return parse(data, path)


def parse(data: bytes, source) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 16, 16] float32, labels [N] int64) from the decompressed text."""
    from sklearn.datasets import load_svmlight_file

    try:
        x, y = load_svmlight_file(io.BytesIO(data), n_features=SIDE * SIDE, zero_based=False, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{source}: not a USPS file in LIBSVM format ({e}).") from None
    x = x.toarray()
    if len(y) == 0 or np.any(y != np.round(y)) or y.min() < 1 or y.max() > 10:
        raise ValueError(f"{source}: USPS labels must be integers 1..10, one per line; got {len(y)} lines.")
    if x.min() < -1 or x.max() > 1:
        raise ValueError(f"{source}: USPS pixel values must lie in [-1, 1], got {x.min()}..{x.max()}.")
    images = ((x + 1) / 2).astype(np.float32).reshape(-1, SIDE, SIDE)
    return images, y.astype(np.int64) - 1
