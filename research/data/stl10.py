"""STL-10, binary version: stl10_binary.tar.gz holds 96x96 RGB images as raw uint8 files.

stl10_binary/{train,test,unlabeled}_X.bin: per image 3 planes (red, green, blue) of 96x96 bytes stored
column-major (Matlab order), so the bytes of one image are [C, W, H]; {train,test}_y.bin: one byte per image,
labels 1..10. Images come back upright and HWC, [N, 96, 96, 3] uint8, labels 0..9. train 5000, test 8000,
unlabeled 100000 (no labels; read only when asked for). Reference: Coates, Lee and Ng, "An Analysis of
Single-Layer Networks in Unsupervised Feature Learning", AISTATS 2011; https://cs.stanford.edu/~acoates/stl10/.
"""

from __future__ import annotations

import numpy as np

from research.data import archive

FOLDER = "stl10_binary"
SIDE = 96
MEMBERS = {
    "train": (f"{FOLDER}/train_X.bin", f"{FOLDER}/train_y.bin"),
    "test": (f"{FOLDER}/test_X.bin", f"{FOLDER}/test_y.bin"),
    "unlabeled": (f"{FOLDER}/unlabeled_X.bin", None),
}


def read_parts(paths: dict, parts: list[str]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """[(images [N, 96, 96, 3] uint8, labels [N] int64 or None)] for each of `parts`."""
    (path,) = set(paths.values())
    names = [m for part in parts for m in MEMBERS[part] if m is not None]
    members = archive.read_members(path, names, "STL-10")
    out = []
    for part in parts:
        x_name, y_name = MEMBERS[part]
        images = parse_images(members.pop(x_name), f"{path}:{x_name}")
        labels = None if y_name is None else parse_labels(members.pop(y_name), len(images), f"{path}:{y_name}")
        out.append((images, labels))
    return out


def parse_images(data: bytes, source) -> np.ndarray:
    """[N, 96, 96, 3] uint8 from the bytes of an *_X.bin file."""
    per_image = 3 * SIDE * SIDE
    if len(data) % per_image:
        raise ValueError(
            f"{source}: {len(data)} bytes is not a whole number of {per_image}-byte STL-10 images (truncated?); "
            "replace the archive with the published one."
        )
    # [N, C, W, H] as stored -> [N, H, W, C].
    return np.frombuffer(data, np.uint8).reshape(-1, 3, SIDE, SIDE).transpose(0, 3, 2, 1)


def parse_labels(data: bytes, n: int, source) -> np.ndarray:
    """[n] int64 labels 0..9 from the bytes of a *_y.bin file (stored 1..10)."""
    y = np.frombuffer(data, np.uint8)
    if len(y) != n or (n and (y.min() < 1 or y.max() > 10)):
        raise ValueError(
            f"{source}: expected {n} labels in 1..10 (one per image), got {len(y)}"
            f"{f' in {y.min()}..{y.max()}' if len(y) else ''}; replace the archive with the published one."
        )
    return y.astype(np.int64) - 1
