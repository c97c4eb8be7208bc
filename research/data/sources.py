"""The dataset entry point: `load(name, split, data_dir) -> Dataset`.

  mnist, fashion_mnist, kmnist   28x28 gray IDX files; splits train (60k), test (10k), all (train then test).
  usps                           16x16 gray digits (LIBSVM bz2): train 7291, test 2007, all.
  cifar10                        32x32 RGB (python pickles in a tar.gz): train 50k, test 10k, all.
  stl10                          96x96 RGB (binary in a tar.gz): train 5k, test 8k, all; unlabeled (100k) on request.
  20newsgroups                   TF-IDF of the 20 Newsgroups posts (2000 terms), through scikit-learn's fetcher.
  digits        scikit-learn's bundled 8x8 digits (1797), offline; train = the first 1500, test = the other 297.
  blobs         Gaussian blobs drawn with NumPy (`synthetic.blobs`; settings: load(..., blobs=Blobs(...))). Split: all.
  idx:<dir>     a folder with the four MNIST-named IDX files (labels optional).
  npy:<path>    a .npy [N, ...] (labels from <stem>_labels.npy) or a .npz with "x" and optional "y"; with
                mmap=True a float32 C-order .npy stays memory-mapped (read-only).
With mmap=True uint8 images (the MNIST-format IDX datasets, idx:<dir>, CIFAR-10, STL-10) stay uint8, scaled to
float32 rows only where they are read (`PixelRows`).
  csv:<path>    a CSV table, see `tabular.load_csv`. Split: all.
  images:<dir>  a folder of PNG/JPEG/... files (`images.load_dir`): resized to image_size x image_size, gray or
                RGB; labels from the class sub-folders' names. Split: all.

The downloadable datasets are found locally or fetched and checked by `fetch` from the table in `registry`.
Images are flattened (HWC for colour) and uint8 pixels scaled to [0, 1]; every dataset is checked (finite,
non-empty, one label per sample) before it is returned. Search order, mirrors, checksums: docs/data.md.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from research.checks import as_matrix, as_streamed_matrix, check_labels
from research.data import cifar, fetch, idx, images, registry, stl10, synthetic, tabular, text, usps

log = logging.getLogger(__name__)


class Dataset(NamedTuple):
    """A loaded dataset.

    x: [N, D] float32; images flattened in C order, pixels in [0, 1].
    y: [N] int64 class labels, or None when the data has none.
    image_shape: (H, W) or (H, W, C) to reshape rows of x into images, else None.
    name: the name it was loaded by, e.g. "mnist" or "npy:/data/faces.npy".
    table: a csv: table's fitted preprocessing (`tabular.transform_state`), which a saved run applies to new
      tables; None for other data.
    """

    x: np.ndarray
    y: np.ndarray | None
    image_shape: tuple | None
    name: str
    table: dict | None = None


SPLITS = ("train", "test", "all")
DIGITS_TRAIN = 1500


def available() -> list[str]:
    """The dataset names and forms that `load` accepts."""
    return [
        *registry.DATASETS,
        text.NEWSGROUPS,
        "digits",
        "blobs",
        "idx:<dir>",
        "npy:<path>",
        "csv:<path>",
        "images:<dir>",
    ]


def load(
    name: str,
    split: str = "all",
    data_dir=None,
    *,
    label_column: str | None = None,
    drop_columns=(),
    csv_encoding: str = "utf-8",
    mirrors=None,
    verify: bool = False,
    mmap: bool = False,
    blobs: synthetic.Blobs | None = None,
    image_size: int | None = None,
    color: str | None = None,
) -> Dataset:
    """Loads a dataset by name (see the module docstring and `available()`).

    Args:
      name: one of `available()`: a registered dataset, "digits", "idx:<dir>", "npy:<path>" or "csv:<path>".
      split: "train", "test" or "all" where the dataset has them ("unlabeled" for stl10); "all" otherwise.
      data_dir: a folder searched first for a dataset's files (itself and its <name>/).
      label_column, drop_columns, csv_encoding: for csv only, see `tabular.load_csv` (its `encoding`).
      mirrors: mirror base URLs (a string or a sequence) of a registered dataset, instead of
        $JAXCLUSTER_<NAME>_MIRROR (comma-separated) or the table's (`registry.DATASETS`).
      verify: also check the checksums of files found locally (downloads are always checked).
      mmap: npy:<path>: return a float32 C-order .npy as a read-only
        np.memmap [N, D] instead of a copy in memory, for data larger than
        memory (mini-batch algorithms read it in pieces); other .npy files and
        .npz load into memory as usual, with a warning. uint8 image datasets:
        x is a `PixelRows` of the uint8 images, its rows scaled where read
        (each process of a multi-process run scales only its own). Other
        sources ignore it.
      blobs: for "blobs" only, its settings (`synthetic.Blobs`; None: the defaults).
      image_size, color: for images:<dir> only: the side the images are resized to (None: images.DEFAULT_SIZE,
        32) and "gray" (None: gray) or "rgb".

    Raises ValueError for an unknown name or split and for invalid data, and
    DataNotFoundError (a FileNotFoundError) when a dataset's files cannot be found or fetched.
    """
    kind, _, arg = name.partition(":")
    if kind != "csv" and (label_column is not None or tuple(drop_columns) or csv_encoding != "utf-8"):
        raise ValueError(
            f"label_column, drop_columns and csv_encoding apply to csv:<path> datasets only, not {name!r}."
        )
    if blobs is not None and name != "blobs":
        raise ValueError(f"blobs settings apply to the blobs dataset only, not {name!r}.")
    if kind != "images" and (image_size is not None or color is not None):
        raise ValueError(f"image_size and color apply to images:<dir> datasets only, not {name!r}.")
    if name in registry.DATASETS:
        spec = registry.DATASETS[name]
        split = _check_split(name, split, (*spec.parts, "all"))
        x, y, image_shape = _load_registered(spec, split, data_dir, mirrors, verify, lazy=mmap)
    elif name == text.NEWSGROUPS:
        x, y = text.load_20newsgroups(_check_split(name, split, SPLITS), data_dir)
        image_shape = None
    elif name == "digits":
        x, y, image_shape = _load_digits(_check_split(name, split, SPLITS))
    elif name == "blobs":
        _check_split(name, split, ("all",))
        (x, y), image_shape = synthetic.blobs(blobs), None
    elif kind == "idx" and arg:
        split = _check_split(name, split, SPLITS)
        x, y, image_shape = _load_idx_dir(_existing(arg, name, folder=True), split, lazy=mmap)
    elif kind == "npy" and arg:
        _check_split(name, split, ("all",))
        x, y, image_shape = _load_npy(_existing(arg, name), mmap)
    elif kind == "images" and arg:
        _check_split(name, split, ("all",))
        size = images.DEFAULT_SIZE if image_size is None else image_size
        x, y, image_shape = images.load_dir(_existing(arg, name, folder=True), size, color or "gray")
    elif kind == "csv" and arg:
        _check_split(name, split, ("all",))
        table = tabular.read_table(_existing(arg, name), label_column, drop_columns, csv_encoding)
        transform = tabular.fit_transform(table)
        state = tabular.transform_state(transform, table, label_column)
        return _validated(name, tabular.transform_rows(transform, table), table.y, None)._replace(table=state)
    else:
        raise ValueError(f"unknown dataset {name!r}; valid names and forms: {', '.join(available())}.")
    return _validated(name, x, y, image_shape)


def _existing(arg: str, name: str, folder: bool = False) -> Path:
    """The path of a dataset spec; FileNotFoundError (or NotADirectoryError / IsADirectoryError) naming it and
    the dataset when it is not there or not the right kind."""
    path = Path(arg).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset {name!r}: no such {'folder' if folder else 'file'} {path}.")
    if folder and not path.is_dir():
        what = "the folder of IDX files" if name.startswith("idx:") else "a folder of images"
        raise NotADirectoryError(f"dataset {name!r}: {path} is a file; {name.partition(':')[0]}:<dir> takes {what}.")
    if not folder and path.is_dir():
        raise IsADirectoryError(f"dataset {name!r}: {path} is a folder; give the path of the file itself.")
    return path


def _check_split(name: str, split: str, valid: tuple[str, ...]) -> str:
    if split not in valid:
        raise ValueError(f"unknown split {split!r} for dataset {name!r}; valid splits: {', '.join(valid)}.")
    return split


def _validated(name: str, x, y, image_shape) -> Dataset:
    """The Dataset, after checking x is finite and non-empty and y has one label per row."""
    # A memory-mapped array is checked chunk by chunk and stays mapped; uint8 pixels (finite) by their shape.
    if isinstance(x, PixelRows):
        as_streamed_matrix(x.images, name=f"dataset {name!r}")
    else:
        x = (as_streamed_matrix if isinstance(x, np.memmap) else as_matrix)(x, name=f"dataset {name!r}")
    if y is not None:
        y = check_labels(y, len(x), name=f"labels of dataset {name!r}")
    return Dataset(x, y, None if image_shape is None else tuple(int(d) for d in image_shape), name)


# ---------------------------------------------------------------- arrays -> rows


class PixelRows:
    """uint8 images [N, ...] seen as the float32 rows [N, D] in [0, 1] that `load` gives, each row scaled where it
    is read (indexing, slicing, np.asarray for all of them): the same values as the eager rows, a quarter of the
    memory until read. What `load(..., mmap=True)` returns for IDX images."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, images: np.ndarray):
        self.images = images.reshape(images.shape[0], int(np.prod(images.shape[1:])))
        self.shape = self.images.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        return np.divide(self.images[index], np.float32(255), dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype, copy=False)


def _rows(array: np.ndarray, source) -> tuple[np.ndarray, tuple | None]:
    """[N, ...] -> ([N, D] float32, image shape); uint8 is scaled by 1/255, the rest cast.

    An image shape is kept for [N, H, W] and [N, H, W, C]; other ranks have none.
    """
    if array.ndim < 2:
        raise ValueError(f"{source}: expected an array [n_samples, ...] with 2 or more dims, got shape {array.shape}.")
    image_shape = tuple(array.shape[1:]) if array.ndim in (3, 4) else None
    # Not reshape(n, -1): that fails for n == 0, which must reach the "empty" check instead.
    flat = array.reshape(array.shape[0], int(np.prod(array.shape[1:])))
    if array.dtype == np.uint8:
        return np.divide(flat, np.float32(255), dtype=np.float32), image_shape
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{source}: expected a numeric array, got dtype {array.dtype}.")
    return flat.astype(np.float32), image_shape


# ---------------------------------------------------------------- digits


def _load_digits(split: str):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16).astype(np.float32)
    y = digits.target.astype(np.int64)
    part = {"all": slice(None), "train": slice(None, DIGITS_TRAIN), "test": slice(DIGITS_TRAIN, None)}[split]
    return x[part], y[part], (8, 8)


# ---------------------------------------------------------------- npy / npz


# The first bytes of a .npy file and of a .npz (a zip archive).
NPY_MAGIC, NPZ_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def _np_load(path: Path, **kwargs):
    """np.load with a clear error for a file that is not a whole NumPy array (truncated, empty, another format)."""
    expected = NPZ_MAGIC if path.suffix == ".npz" else NPY_MAGIC
    with open(path, "rb") as f:
        head = f.read(len(expected))
    if head != expected:
        kind = ".npz archive" if expected == NPZ_MAGIC else ".npy file"
        raise ValueError(
            f"{path} is not a {kind}: it does not start with NumPy's magic bytes{' (it is empty)' if not head else ''}. "
            "Write it with np.save (x [n, ...]) or np.savez (x=..., y=...); text tables go through csv:<path>."
        )
    try:
        return np.load(path, **kwargs)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as e:
        raise ValueError(
            f"{path} is not a readable NumPy file ({type(e).__name__}: {e}). It may be truncated or in another "
            "format; write it with np.save (x [n, ...]) or np.savez (x=..., y=...)."
        ) from None


def _load_npy(path: Path, mmap: bool = False):
    """x (and y) from a .npz with keys x [, y], or a .npy plus an optional <stem>_labels.npy."""
    if mmap and path.suffix == ".npz":
        log.warning("%s: a .npz cannot be memory-mapped; loading it into memory.", path)
    if path.suffix == ".npz":
        with _np_load(path) as archive:
            if "x" not in archive.files:
                raise ValueError(
                    f"{path}: a .npz dataset needs an array 'x' (and optional 'y'); found {archive.files}."
                )
            x = archive["x"]
            y = archive["y"] if "y" in archive.files else None
    else:
        # mmap: the float32 copy below is then the only one in memory.
        x = _np_load(path, mmap_mode="r")
        labels = path.with_name(f"{path.stem}_labels.npy")
        y = _np_load(labels) if labels.is_file() else None
        if mmap and x.ndim >= 2 and x.dtype == np.float32 and x.flags.c_contiguous:
            # A C-order reshape is a view: the rows stay on disk until read.
            image_shape = tuple(x.shape[1:]) if x.ndim in (3, 4) else None
            return x.reshape(x.shape[0], int(np.prod(x.shape[1:]))), y, image_shape
        if mmap:
            log.warning(
                "%s: only a float32 C-order .npy can stay memory-mapped (this one is %s%s); loading a float32 "
                "copy into memory. Convert it once to map it: np.save(path, np.load(path).astype(np.float32)).",
                path,
                x.dtype,
                ", Fortran order" if not x.flags.c_contiguous else "",
            )
    x, image_shape = _rows(x, path)
    # A plain array: astype of a memmap keeps the memmap type for what is an in-memory copy.
    return np.asarray(x), y, image_shape


# ---------------------------------------------------------------- IDX folders (and MNIST)


@functools.lru_cache(maxsize=8)
def _decompressed(path: str, mtime_ns: int, size: int, inode: int) -> bytes:
    """The file's decompressed bytes; keyed on its stat so a changed file is re-read.

    Caching the bytes is cheap (uint8 arrays are views into them) and makes a
    second load of MNIST in the same process skip the gunzip.
    """
    del mtime_ns, size, inode
    return idx.read_idx_bytes(path)


def _read(path: Path) -> np.ndarray:
    """Reads an IDX file through the cache of decompressed bytes."""
    st = path.stat()
    return idx.parse_idx(_decompressed(str(path), st.st_mtime_ns, st.st_size, st.st_ino), path)


def _read_pair(image_path: Path, label_path: Path | None):
    """(images [N, ...], labels [N] or None) from two IDX files, checked against each other."""
    images = _read(image_path)
    labels = None if label_path is None else _read(label_path)
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise ValueError(
            f"{label_path}: labels of shape {labels.shape} do not match the {len(images)} images in {image_path}."
        )
    return images, labels


def _stack(pairs, source, lazy: bool = False):
    """Concatenates (images, labels) pairs (train then test) into (x, y, image_shape); `lazy`: uint8 images as
    `PixelRows`."""
    if len({(a.shape[1:], a.dtype) for a, _ in pairs}) > 1:
        raise ValueError(f"{source}: the splits' images differ: {[(a.shape[1:], str(a.dtype)) for a, _ in pairs]}.")
    has_labels = [labels is not None for _, labels in pairs]
    if any(has_labels) and not all(has_labels):
        raise ValueError(f"{source}: some splits have a labels file and some do not; supply all or none.")
    # Concatenate the raw (uint8) arrays: 4x less to copy than the float32 rows.
    images = pairs[0][0] if len(pairs) == 1 else np.concatenate([a for a, _ in pairs])
    if lazy and images.dtype == np.uint8 and images.ndim in (3, 4):
        x, image_shape = PixelRows(images), tuple(images.shape[1:])
    else:
        x, image_shape = _rows(images, source)
    y = np.concatenate([labels for _, labels in pairs]) if all(has_labels) else None
    return x, y, image_shape


def _load_idx_dir(folder: Path, split: str, lazy: bool = False):
    """Images (and labels, when every split has them) from MNIST-named IDX files in `folder`."""
    if not folder.is_dir():
        raise FileNotFoundError(f"idx:{folder}: no such folder.")
    pairs = []
    for part in ["train", "test"] if split == "all" else [split]:
        image_name, label_name = registry.MNIST.parts[part]
        image_path = fetch.find([folder], image_name)
        if image_path is None:
            raise FileNotFoundError(
                f"{folder}: no {image_name} or {image_name.removesuffix('.gz')} for split {part!r}; idx:<dir> "
                "needs MNIST's file names."
            )
        pairs.append(_read_pair(image_path, fetch.find([folder], label_name)))
    return _stack(pairs, folder, lazy)


# ---------------------------------------------------------------- registered datasets


def _load_registered(spec: registry.Spec, split: str, data_dir, mirrors, verify: bool, lazy: bool = False):
    """A table dataset's split: each file found or downloaded (`fetch.locate`), then read by its format."""
    parts = ["train", "test"] if split == "all" else [split]
    names = dict.fromkeys(name for part in parts for name in spec.parts[part])
    paths = {name: fetch.locate(spec, name, data_dir, mirrors, verify) for name in names}
    return _stack(READERS[spec.reader](paths, parts), spec.name, lazy)


def _read_idx_parts(paths: dict, parts: list[str]):
    """[(images [N, 28, 28] uint8, labels [N])] per part from MNIST-format files (MNIST, Fashion-MNIST, KMNIST)."""
    pairs = []
    for part in parts:
        image_path, label_path = (paths[name] for name in registry.MNIST.parts[part])
        images, labels = _read_pair(image_path, label_path)
        bad_labels = labels.dtype != np.uint8 or (labels.size and labels.max() > 9)
        if images.dtype != np.uint8 or images.shape[1:] != (28, 28) or bad_labels:
            raise ValueError(
                f"{image_path}, {label_path}: not an MNIST-format dataset: expected uint8 images [N, 28, 28] and "
                f"uint8 labels 0..9, got {images.dtype} images of shape {images.shape} and {labels.dtype} labels; "
                "replace them with the published files."
            )
        pairs.append((images, labels))
    return pairs


READERS = {"idx": _read_idx_parts, "usps": usps.read_parts, "cifar10": cifar.read_parts, "stl10": stl10.read_parts}
