"""The dataset registry: `load(name, split, data_dir) -> Dataset`.

  mnist         splits train (60k), test (10k), all (70k: train then test). Local files first; else downloaded
                once from a mirror into the user cache, SHA-256-verified.
  digits        scikit-learn's bundled 8x8 digits (1797), offline; train = the first 1500, test = the other 297.
  idx:<dir>     a folder with the four MNIST-named IDX files (labels optional).
  npy:<path>    a .npy [N, ...] (labels from <stem>_labels.npy) or a .npz with "x" and optional "y"; with
                mmap=True a float32 C-order .npy stays memory-mapped (read-only).
  csv:<path>    a CSV table, see `tabular.load_csv`. Split: all.

Images are flattened and uint8 pixels scaled to [0, 1]; every dataset is checked (finite, non-empty, one label
per sample) before it is returned. The search order, the mirrors and the checksums: docs/data.md.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from research.checks import as_matrix, as_streamed_matrix, check_labels
from research.data import idx, tabular

log = logging.getLogger(__name__)


class Dataset(NamedTuple):
    """A loaded dataset.

    x: [N, D] float32; images flattened in C order, pixels in [0, 1].
    y: [N] int64 class labels, or None when the data has none.
    image_shape: (H, W) or (H, W, C) to reshape rows of x into images, else None.
    name: the name it was loaded by, e.g. "mnist" or "npy:/data/faces.npy".
    """

    x: np.ndarray
    y: np.ndarray | None
    image_shape: tuple | None
    name: str


SPLITS = ("train", "test", "all")
DIGITS_TRAIN = 1500

# split -> (images file, labels file); the standard names, stored with or without ".gz".
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of the DECOMPRESSED files: mirrors gzip them differently, the content is the same.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Tried in order; each serves "<base><file>.gz". Overridden by `mirrors=` or $JAXCLUSTER_MNIST_MIRROR.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRROR_ENV = "JAXCLUSTER_MNIST_MIRROR"
DATA_ENV = "JAXCLUSTER_DATA"


class DataNotFoundError(FileNotFoundError):
    """Data files are neither on disk nor downloadable; the message says where to put them."""


def available() -> list[str]:
    """The dataset names and forms that `load` accepts."""
    return ["mnist", "digits", "idx:<dir>", "npy:<path>", "csv:<path>"]


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
) -> Dataset:
    """Loads a dataset by name (see the module docstring and `available()`).

    Args:
      name: "mnist", "digits", "idx:<dir>", "npy:<path>" or "csv:<path>".
      split: "train", "test" or "all" where the dataset has them; "all" otherwise.
      data_dir: a folder searched first for the MNIST files (itself and its mnist/).
      label_column, drop_columns, csv_encoding: for csv only, see `tabular.load_csv` (its `encoding`).
      mirrors: MNIST mirror base URLs (a string or a sequence), instead of
        $JAXCLUSTER_MNIST_MIRROR (comma-separated) or `MNIST_MIRRORS`.
      verify: also check the SHA-256 of MNIST files found locally (downloads are
        always checked).
      mmap: npy:<path> only: return a float32 C-order .npy as a read-only
        np.memmap [N, D] instead of a copy in memory, for data larger than
        memory (mini-batch algorithms read it in pieces). Other .npy files and
        .npz load into memory as usual, with a warning; other sources ignore it.

    Raises ValueError for an unknown name or split and for invalid data, and
    DataNotFoundError (a FileNotFoundError) when MNIST cannot be found or fetched.
    """
    kind, _, arg = name.partition(":")
    if kind != "csv" and (label_column is not None or tuple(drop_columns) or csv_encoding != "utf-8"):
        raise ValueError(
            f"label_column, drop_columns and csv_encoding apply to csv:<path> datasets only, not {name!r}."
        )
    if name == "mnist":
        x, y, image_shape = _load_mnist(_check_split(name, split, SPLITS), data_dir, mirrors, verify)
    elif name == "digits":
        x, y, image_shape = _load_digits(_check_split(name, split, SPLITS))
    elif kind == "idx" and arg:
        split = _check_split(name, split, SPLITS)
        x, y, image_shape = _load_idx_dir(_existing(arg, name, folder=True), split)
    elif kind == "npy" and arg:
        _check_split(name, split, ("all",))
        x, y, image_shape = _load_npy(_existing(arg, name), mmap)
    elif kind == "csv" and arg:
        _check_split(name, split, ("all",))
        x, y, _ = tabular.load_csv(
            _existing(arg, name), label_column=label_column, drop_columns=drop_columns, encoding=csv_encoding
        )
        image_shape = None
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
        raise NotADirectoryError(f"dataset {name!r}: {path} is a file; idx:<dir> takes the folder of IDX files.")
    if not folder and path.is_dir():
        raise IsADirectoryError(f"dataset {name!r}: {path} is a folder; give the path of the file itself.")
    return path


def _check_split(name: str, split: str, valid: tuple[str, ...]) -> str:
    if split not in valid:
        raise ValueError(f"unknown split {split!r} for dataset {name!r}; valid splits: {', '.join(valid)}.")
    return split


def _validated(name: str, x, y, image_shape) -> Dataset:
    """The Dataset, after checking x is finite and non-empty and y has one label per row."""
    # A memory-mapped array is checked chunk by chunk and stays mapped.
    check = as_streamed_matrix if isinstance(x, np.memmap) else as_matrix
    x = check(x, name=f"dataset {name!r}")
    if y is not None:
        y = check_labels(y, len(x), name=f"labels of dataset {name!r}")
    return Dataset(x, y, None if image_shape is None else tuple(int(d) for d in image_shape), name)


# ---------------------------------------------------------------- arrays -> rows


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


def _read(path: Path, sha256: str | None = None) -> np.ndarray:
    """Reads an IDX file (through the cache), checking its SHA-256 when one is given."""
    st = path.stat()
    data = _decompressed(str(path), st.st_mtime_ns, st.st_size, st.st_ino)
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ValueError(f"{path}: checksum mismatch: expected sha256 {sha256}, got {actual}.")
    return idx.parse_idx(data, path)


def _find(dirs, stem: str) -> Path | None:
    """The first `stem.gz` or `stem` file in `dirs`, in order; None if there is none."""
    for d in dirs:
        for candidate in (d / f"{stem}.gz", d / stem):
            if candidate.is_file():
                return candidate
    return None


def _parts(split: str) -> list[str]:
    return ["train", "test"] if split == "all" else [split]


def _read_pair(image_path: Path, label_path: Path | None, sums=(None, None)):
    """(images [N, ...], labels [N] or None) from two IDX files, checked against each other."""
    images = _read(image_path, sums[0])
    labels = None if label_path is None else _read(label_path, sums[1])
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise ValueError(
            f"{label_path}: labels of shape {labels.shape} do not match the {len(images)} images in {image_path}."
        )
    return images, labels


def _stack(pairs, source):
    """Concatenates (images, labels) pairs (train then test) into (x, y, image_shape)."""
    if len({(a.shape[1:], a.dtype) for a, _ in pairs}) > 1:
        raise ValueError(f"{source}: the splits' images differ: {[(a.shape[1:], str(a.dtype)) for a, _ in pairs]}.")
    has_labels = [labels is not None for _, labels in pairs]
    if any(has_labels) and not all(has_labels):
        raise ValueError(f"{source}: some splits have a labels file and some do not; supply all or none.")
    # Concatenate the raw (uint8) arrays: 4x less to copy than the float32 rows.
    images = pairs[0][0] if len(pairs) == 1 else np.concatenate([a for a, _ in pairs])
    x, image_shape = _rows(images, source)
    y = np.concatenate([labels for _, labels in pairs]) if all(has_labels) else None
    return x, y, image_shape


def _load_idx_dir(folder: Path, split: str):
    """Images (and labels, when every split has them) from MNIST-named IDX files in `folder`."""
    if not folder.is_dir():
        raise FileNotFoundError(f"idx:{folder}: no such folder.")
    pairs = []
    for part in _parts(split):
        image_stem, label_stem = MNIST_FILES[part]
        image_path = _find([folder], image_stem)
        if image_path is None:
            raise FileNotFoundError(f"{folder}: no {image_stem} or {image_stem}.gz for split {part!r}.")
        pairs.append(_read_pair(image_path, _find([folder], label_stem)))
    return _stack(pairs, folder)


# ---------------------------------------------------------------- MNIST: find, download, cache


def mnist_cache_dir() -> Path:
    """Where downloads go: $XDG_CACHE_HOME/jaxcluster/mnist, by default ~/.cache/jaxcluster/mnist."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxcluster" / "mnist"


def mnist_search_dirs(data_dir=None) -> list[Path]:
    """The folders searched for MNIST files, in order (the cache dir last)."""
    dirs = [Path(data_dir).expanduser(), Path(data_dir).expanduser() / "mnist"] if data_dir else []
    if os.environ.get(DATA_ENV):
        dirs.append(Path(os.environ[DATA_ENV]).expanduser() / "mnist")
    return dirs + [mnist_cache_dir()]


def _mirrors(mirrors) -> list[str]:
    """Mirror base URLs: the argument, else $JAXCLUSTER_MNIST_MIRROR (comma-separated), else MNIST_MIRRORS."""
    if mirrors is None:
        mirrors = os.environ.get(MIRROR_ENV) or MNIST_MIRRORS
    if isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    return [m.strip() for m in mirrors if m.strip()]


def _load_mnist(split: str, data_dir, mirrors, verify: bool):
    """MNIST from the first folder holding each file, downloading what no folder has."""
    dirs = mnist_search_dirs(data_dir)
    pairs = []
    for part in _parts(split):
        stems = MNIST_FILES[part]
        paths = [_find(dirs, stem) or _download(stem, _mirrors(mirrors), dirs) for stem in stems]
        sums = [MNIST_SHA256[stem] if verify else None for stem in stems]
        images, labels = _read_pair(*paths, sums)
        bad_labels = labels.dtype != np.uint8 or (labels.size and labels.max() > 9)
        if images.dtype != np.uint8 or images.shape[1:] != (28, 28) or bad_labels:
            raise ValueError(
                f"{paths[0]}, {paths[1]}: not MNIST: expected uint8 images [N, 28, 28] and uint8 labels 0..9, "
                f"got {images.dtype} images of shape {images.shape} and {labels.dtype} labels."
            )
        pairs.append((images, labels))
    return _stack(pairs, "mnist")


def _download(stem: str, mirrors: list[str], searched: list[Path]) -> Path:
    """Fetches `stem`.gz from the first mirror whose copy has the right SHA-256, into the cache."""
    failures, mismatches = [], []
    for base in mirrors:
        url = f"{base.rstrip('/')}/{stem}.gz"
        log.info("Downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
            data = idx.maybe_gunzip(payload, url)
        except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors; ValueError: bad URL or gzip.
            failures.append(f"{url} ({e})")
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != MNIST_SHA256[stem]:
            mismatches.append(
                f"{url}: checksum mismatch for {stem}: expected sha256 {MNIST_SHA256[stem]}, got {actual}"
            )
            continue
        path = mnist_cache_dir() / (f"{stem}.gz" if payload != data else stem)
        _write_atomic(path, payload)
        return path
    if mismatches:
        raise ValueError("; ".join(mismatches) + ". Nothing was written to the cache.")
    raise DataNotFoundError(_not_found_message(stem, searched, failures))


def _write_atomic(path: Path, payload: bytes) -> None:
    """Writes via a temporary file in the same folder and a rename: never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _not_found_message(stem: str, searched: list[Path], failures: list[str]) -> str:
    tried = "\n".join(f"    {f}" for f in failures) or "    (no mirrors configured)"
    return (
        f"MNIST file {stem} (or {stem}.gz) was not found and could not be downloaded.\n"
        "Supply the four MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in one of three ways:\n"
        "  1. --data_dir=DIR (load(..., data_dir=DIR)): a folder holding them, in DIR or DIR/mnist;\n"
        f"  2. ${DATA_ENV}/mnist: set {DATA_ENV} to a folder whose mnist/ holds them"
        f" (now {os.environ.get(DATA_ENV, 'unset')});\n"
        f"  3. the cache dir {mnist_cache_dir()} (where downloads are saved).\n"
        f"Looked in: {', '.join(str(d) for d in searched)}.\n"
        f"Tried these URLs (set {MIRROR_ENV} or pass mirrors= to use another mirror):\n{tried}"
    )
