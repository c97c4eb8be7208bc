"""CIFAR-10, python version: cifar-10-python.tar.gz holds pickled batches of 10000 32x32 RGB images.

Each batch (cifar-10-batches-py/data_batch_1..5, test_batch) is a pickled dict with "data", uint8
[10000, 3072] (the red plane, then green, then blue, each 32x32 row-major), and "labels", 10000 ints 0..9.
Images come back HWC, [N, 32, 32, 3] uint8. The pickles are read with an unpickler that builds only dicts,
lists and NumPy arrays, so a tampered file cannot run code. Reference: Krizhevsky, "Learning Multiple Layers
of Features from Tiny Images", 2009; https://www.cs.toronto.edu/~kriz/cifar.html.
"""

from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

from research.data import archive

FOLDER = "cifar-10-batches-py"
MEMBERS = {"train": [f"{FOLDER}/data_batch_{i}" for i in range(1, 6)], "test": [f"{FOLDER}/test_batch"]}

try:  # NumPy 2 moved multiarray under numpy._core; pickles name either.
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core import multiarray as _multiarray

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # How protocol 2 spells bytes when Python 3 writes it (a text-to-bytes codec call, nothing more).
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: a CIFAR-10 batch holds only arrays")
        return _ALLOWED[module, name]


def read_parts(paths: dict, parts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(images [N, 32, 32, 3] uint8, labels [N])] for each of `parts` ("train", "test")."""
    (path,) = set(paths.values())
    members = archive.read_members(path, [m for part in parts for m in MEMBERS[part]], "CIFAR-10")
    out = []
    for part in parts:
        batches = [parse_batch(members[m], f"{path}:{m}") for m in MEMBERS[part]]
        out.append(tuple(np.concatenate(arrays) for arrays in zip(*batches)))
    return out


def parse_batch(data: bytes, source) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 32, 32, 3] uint8, labels [N] int64) from one pickled batch; ValueError naming `source`."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        x = np.asarray(_get(batch, "data"))
        y = np.asarray(_get(batch, "labels"))
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{source}: not a CIFAR-10 batch ({e}); replace the archive with the published one.") from None
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.shape != (len(x),):
        raise ValueError(
            f"{source}: not a CIFAR-10 batch: expected uint8 data [N, 3072] and N labels, got {x.dtype} data of "
            f"shape {x.shape} and labels of shape {y.shape}."
        )
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 9)):
        raise ValueError(f"{source}: CIFAR-10 labels must be integers 0..9.")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int64)


def _get(batch: dict, key: str):
    """batch[key], whether the pickle's keys are str (Python 3) or bytes (the published Python 2 files)."""
    return batch[key.encode()] if key.encode() in batch else batch[key]
