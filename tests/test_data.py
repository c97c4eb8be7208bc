"""Tests for research.data: the IDX reader, the dataset registry, MNIST download, CSV."""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import tarfile
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from binaries import run

from research.data import (
    DataNotFoundError,
    Dataset,
    PixelRows,
    available,
    cifar,
    fetch,
    idx,
    load,
    registry,
    stl10,
    tabular,
    text,
)

# Read before the autouse fixture clears it: CI points it at the real MNIST (../shared/datasets).
REAL_DATA = os.environ.get("JAXCLUSTER_DATA")

# Written out here rather than taken from `sources`, so a typo there is caught.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real data, home, cache or network: every test sees only what it writes."""
    monkeypatch.delenv("JAXCLUSTER_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("no_proxy", "*")  # the local http.server must not go through a proxy
    for name, spec in registry.DATASETS.items():
        monkeypatch.delenv(fetch.mirror_env(name), raising=False)
        monkeypatch.setitem(registry.DATASETS, name, spec._replace(mirrors=((tmp_path / "no-mirror").as_uri() + "/",)))

    def offline(data_home, subset, download):  # scikit-learn's fetcher, with no network and no files
        raise OSError("<urlopen error no network in tests>" if download else "20Newsgroups dataset not found")

    monkeypatch.setattr(text, "_fetch", offline)


def use_checksums(monkeypatch, name: str, sums: dict) -> None:
    """Replaces dataset `name`'s checksums in the registry: {file name, or IDX stem: sha256 hex}."""
    spec = registry.DATASETS[name]
    files = []
    for f in spec.files:
        digest = sums.get(f.name, sums.get(f.name.removesuffix(".gz")))
        files.append(f if digest is None else f._replace(checksum=f"sha256:{digest}"))
    monkeypatch.setitem(registry.DATASETS, name, spec._replace(files=tuple(files)))


def cache_dir(tmp_path) -> Path:
    return tmp_path / "xdg" / "jaxcluster" / "mnist"


def write_mnist(folder: Path, n_train=50, n_test=20, gz=True, seed=0) -> dict:
    """Writes four small MNIST-format files; returns {stem: array} and their sums under "sha256"."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10)[::-1].astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for stem, array in arrays.items():
        path = folder / (f"{stem}.gz" if gz else stem)
        idx.write_idx(path, array)
        sums[stem] = hashlib.sha256(idx.read_idx_bytes(path)).hexdigest()
    return {**arrays, "sha256": sums}


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    for shape in [(7,), (3, 4, 5), (2, 3, 4, 2)]:
        array = (rng.normal(size=shape) * 100).astype(dtype)
        path = tmp_path / f"a{len(shape)}{suffix}"
        idx.write_idx(path, array)
        back = idx.read_idx(path)
        assert back.dtype == np.dtype(dtype) and back.dtype.isnative
        np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_idx_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    idx.write_idx(tmp_path / "a.gz", array)
    idx.write_idx(tmp_path / "b", array)
    os.replace(tmp_path / "a.gz", tmp_path / "gzipped-without-suffix")
    os.replace(tmp_path / "b", tmp_path / "raw-with-suffix.gz")
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "gzipped-without-suffix"), array)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "raw-with-suffix.gz"), array)


def _good_idx() -> bytes:
    return bytes([0, 0, 0x08, 2]) + np.asarray([3, 4], ">u4").tobytes() + bytes(range(12))


@pytest.mark.parametrize(
    "content, message",
    [
        (_good_idx()[:-2], "truncated: expected 12 bytes of data, found 10"),
        (_good_idx() + b"xyz", "trailing garbage: expected 12 bytes of data, found 15"),
        (b"\x01" + _good_idx()[1:], "bad magic number"),
        (bytes([0, 0, 0x07, 2]) + _good_idx()[4:], "unknown dtype code 0x07"),
        (bytes([0, 0, 0x08, 0]), "number of dimensions is 0"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "truncated"),
        (b"\x00", "truncated"),
        (gzip.compress(_good_idx(), mtime=0)[:-10], "corrupt gzip"),
        (b"\x1f\x8b" + b"garbage" * 10, "corrupt gzip"),
    ],
)
def test_idx_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        idx.read_idx(path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)


def test_idx_truncated_payload_inside_gzip(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_good_idx()[:-5]))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: truncated"):
        idx.read_idx(path)


def test_write_idx_rejects_dtypes_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype int64"):
        idx.write_idx(tmp_path / "x", np.zeros(3, np.int64))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- MNIST from local files


@pytest.mark.parametrize("layout", ["flat", "subdir", "raw"])
def test_mnist_from_data_dir(tmp_path, layout):
    folder = tmp_path / "data" / ("mnist" if layout == "subdir" else "")
    syn = write_mnist(folder, gz=layout != "raw")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}

    train = load("mnist", "train", data_dir=tmp_path / "data")
    test = load("mnist", "test", data_dir=str(tmp_path / "data"))
    full = load("mnist", data_dir=tmp_path / "data")

    assert isinstance(full, Dataset) and full.name == "mnist" and full.image_shape == (28, 28)
    assert train.x.shape == (50, 784) and test.x.shape == (20, 784) and full.x.shape == (70, 784)
    assert full.x.dtype == np.float32 and full.y.dtype == np.int64
    assert 0.0 <= full.x.min() and full.x.max() <= 1.0
    np.testing.assert_allclose(train.x, syn["train-images-idx3-ubyte"].reshape(50, -1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(full.x, np.concatenate([train.x, test.x]))
    np.testing.assert_array_equal(full.y, np.concatenate([train.y, test.y]))
    np.testing.assert_array_equal(np.bincount(train.y), [5] * 10)
    np.testing.assert_array_equal(np.bincount(test.y), [2] * 10)
    assert before == {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert not cache_dir(tmp_path).exists()


def test_mnist_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    write_mnist(tmp_path / "given", n_train=10, n_test=10)
    write_mnist(tmp_path / "env" / "mnist", n_train=20, n_test=10)
    write_mnist(cache_dir(tmp_path), n_train=30, n_test=10)
    monkeypatch.setenv("JAXCLUSTER_DATA", str(tmp_path / "env"))
    assert len(load("mnist", "train", data_dir=tmp_path / "given").x) == 10
    assert len(load("mnist", "train").x) == 20
    monkeypatch.delenv("JAXCLUSTER_DATA")
    assert len(load("mnist", "train").x) == 30


def test_mnist_verify_checks_local_files(tmp_path, monkeypatch):
    syn = write_mnist(tmp_path / "data")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: checksum mismatch: expected sha256 ba8910"):
        load("mnist", "train", data_dir=tmp_path / "data", verify=True)
    use_checksums(monkeypatch, "mnist", syn["sha256"])
    assert load("mnist", "all", data_dir=tmp_path / "data", verify=True).x.shape == (70, 784)


def test_mnist_rejects_files_that_are_not_mnist(tmp_path):
    write_mnist(tmp_path / "data")
    idx.write_idx(tmp_path / "data" / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(ValueError, match="do not match the 20 images"):
        load("mnist", "test", data_dir=tmp_path / "data")
    idx.write_idx(tmp_path / "data" / "t10k-images-idx3-ubyte.gz", np.zeros((19, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="not an MNIST-format dataset"):
        load("mnist", "test", data_dir=tmp_path / "data")
    idx.write_idx(tmp_path / "data" / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    idx.write_idx(tmp_path / "data" / "t10k-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match="dataset 'mnist' is empty"):
        load("mnist", "test", data_dir=tmp_path / "data")


def test_mnist_real_or_synthetic_all_split(tmp_path, monkeypatch):
    """The real 70k set when $JAXCLUSTER_DATA is set (CI), else the same checks on synthetic files."""
    if REAL_DATA:
        root, sums = Path(REAL_DATA), MNIST_SHA256
        train_counts, test_counts = MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS
        assert {f.name: f.checksum for f in registry.MNIST.files} == {
            f"{stem}.gz": f"sha256:{digest}" for stem, digest in MNIST_SHA256.items()
        }
    else:
        root = tmp_path / "data"
        syn = write_mnist(root / "mnist")
        sums = syn["sha256"]
        train_counts = np.bincount(syn["train-labels-idx1-ubyte"], minlength=10)
        test_counts = np.bincount(syn["t10k-labels-idx1-ubyte"], minlength=10)
        use_checksums(monkeypatch, "mnist", sums)
    monkeypatch.setenv("JAXCLUSTER_DATA", str(root))
    for stem, want in sums.items():
        path = fetch.find([root / "mnist"], f"{stem}.gz")
        assert path is not None, f"{stem} missing from {root / 'mnist'}"
        assert hashlib.sha256(idx.read_idx_bytes(path)).hexdigest() == want

    ds = load("mnist", "all", verify=True)

    n_train, n = int(np.sum(train_counts)), int(np.sum(train_counts) + np.sum(test_counts))
    assert ds.x.shape == (n, 784) and ds.x.dtype == np.float32 and ds.image_shape == (28, 28)
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y[:n_train], minlength=10), train_counts)
    np.testing.assert_array_equal(np.bincount(ds.y[n_train:], minlength=10), test_counts)
    assert not cache_dir(tmp_path).exists()


# ---------------------------------------------------------------- MNIST download


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_mirror(folder: Path):
    """Serves `folder` on 127.0.0.1 from a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("how", ["file-argument", "file-env", "http"])
def test_mnist_download_into_cache(tmp_path, monkeypatch, how):
    syn = write_mnist(tmp_path / "mirror")
    use_checksums(monkeypatch, "mnist", syn["sha256"])
    with contextlib.ExitStack() as stack:
        if how == "http":
            mirrors = ["http://127.0.0.1:9/unreachable/", stack.enter_context(http_mirror(tmp_path / "mirror"))]
        else:
            mirrors = (tmp_path / "mirror").as_uri()
        if how == "file-env":
            monkeypatch.setenv("JAXCLUSTER_MNIST_MIRROR", mirrors)
            mirrors = None
        ds = load("mnist", "all", mirrors=mirrors)

    assert sorted(p.name for p in cache_dir(tmp_path).iterdir()) == sorted(f"{s}.gz" for s in syn["sha256"])
    np.testing.assert_array_equal(ds.y[:50], syn["train-labels-idx1-ubyte"])
    # The cache now serves it, with no mirror at all.
    np.testing.assert_array_equal(load("mnist", "all", mirrors=[]).x, ds.x)


def test_mnist_download_checksum_mismatch_writes_nothing(tmp_path, monkeypatch):
    syn = write_mnist(tmp_path / "mirror")
    use_checksums(monkeypatch, "mnist", {**syn["sha256"], "train-images-idx3-ubyte": "0" * 64})
    with pytest.raises(ValueError, match="checksum mismatch") as info:
        load("mnist", "train", mirrors=(tmp_path / "mirror").as_uri())
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "0" * 64 in message
    assert syn["sha256"]["train-images-idx3-ubyte"] in message
    assert not cache_dir(tmp_path).exists() or not any(cache_dir(tmp_path).iterdir())


def test_mnist_download_skips_a_mirror_with_a_bad_copy(tmp_path, monkeypatch):
    syn = write_mnist(tmp_path / "good")
    write_mnist(tmp_path / "bad", seed=1)
    use_checksums(monkeypatch, "mnist", syn["sha256"])
    ds = load("mnist", "train", mirrors=[(tmp_path / "bad").as_uri(), (tmp_path / "good").as_uri()])
    np.testing.assert_allclose(ds.x, syn["train-images-idx3-ubyte"].reshape(50, -1) / 255, rtol=1e-6)
    # No leftovers: only the two verified files, no temporary ones.
    assert sorted(p.name for p in cache_dir(tmp_path).iterdir()) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]


def test_mnist_offline_error_lists_the_three_ways(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load("mnist", data_dir=tmp_path / "empty")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "--data_dir" in message and "$JAXCLUSTER_DATA/mnist" in message
    assert str(cache_dir(tmp_path)) in message
    assert (tmp_path / "no-mirror").as_uri() + "/train-images-idx3-ubyte.gz" in message
    assert not cache_dir(tmp_path).exists()


# ---------------------------------------------------------------- digits, idx:, npy:


def test_digits():
    ds = load("digits")
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32 and ds.image_shape == (8, 8)
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert ds.y.shape == (1797,) and set(ds.y) == set(range(10))
    train, test = load("digits", "train"), load("digits", "test")
    assert len(train.x) == 1500 and len(test.x) == 297
    np.testing.assert_array_equal(np.concatenate([train.x, test.x]), ds.x)


def test_idx_folder_float_images_without_labels(tmp_path):
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(6, 5, 3)).astype(np.float32), rng.normal(size=(4, 5, 3)).astype(np.float32)
    idx.write_idx(tmp_path / "train-images-idx3-ubyte", train)
    idx.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test)
    ds = load(f"idx:{tmp_path}")
    assert ds.x.shape == (10, 15) and ds.y is None and ds.image_shape == (5, 3)
    np.testing.assert_array_equal(ds.x, np.concatenate([train, test]).reshape(10, 15))  # floats as they are
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(6, dtype=np.uint8))
    assert load(f"idx:{tmp_path}", "train").y.tolist() == list(range(6))
    with pytest.raises(ValueError, match="some splits have a labels file"):
        load(f"idx:{tmp_path}")


def test_idx_folder_uint8_is_scaled(tmp_path):
    write_mnist(tmp_path)
    ds = load(f"idx:{tmp_path}", "test")
    assert ds.x.shape == (20, 784) and ds.x.max() <= 1.0 and ds.y.shape == (20,)


def test_uint8_images_stay_uint8_until_their_rows_are_read(tmp_path):
    write_mnist(tmp_path)
    eager, lazy = load(f"idx:{tmp_path}"), load(f"idx:{tmp_path}", mmap=True)
    assert isinstance(lazy.x, PixelRows) and lazy.x.images.dtype == np.uint8
    assert lazy.x.shape == eager.x.shape == (70, 784) and lazy.image_shape == eager.image_shape == (28, 28)
    for rows in (slice(3, 9), [1, 5, 60], 7):  # the eager rows, bit for bit, wherever they are read
        np.testing.assert_array_equal(lazy.x[rows], eager.x[rows])
    np.testing.assert_array_equal(np.asarray(lazy.x), eager.x)
    np.testing.assert_array_equal(lazy.y, eager.y)


def test_npy_with_and_without_labels(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 4, 3, 2), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", images)
    ds = load(f"npy:{tmp_path / 'faces.npy'}")
    assert ds.x.shape == (6, 24) and ds.y is None and ds.image_shape == (4, 3, 2)
    np.testing.assert_allclose(ds.x, images.reshape(6, -1) / 255, rtol=1e-6)

    np.save(tmp_path / "faces_labels.npy", np.array([0, 1, 2, 0, 1, 2]))
    assert load(f"npy:{tmp_path / 'faces.npy'}").y.tolist() == [0, 1, 2, 0, 1, 2]

    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "table.npy", table)
    ds = load(f"npy:{tmp_path / 'table.npy'}")
    assert ds.image_shape is None and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x, table)


def test_npz(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 7, 7)).astype(np.float32)
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(5))
    np.savez(tmp_path / "b.npz", x=x)
    np.savez(tmp_path / "c.npz", images=x)
    a, b = load(f"npy:{tmp_path / 'a.npz'}"), load(f"npy:{tmp_path / 'b.npz'}")
    assert a.x.shape == (5, 49) and a.image_shape == (7, 7) and a.y.tolist() == [0, 1, 2, 3, 4]
    assert b.y is None
    with pytest.raises(ValueError, match=r"needs an array 'x'.*\['images'\]"):
        load(f"npy:{tmp_path / 'c.npz'}")


def test_npy_errors(tmp_path):
    np.save(tmp_path / "whole.npy", np.ones((50, 3), np.float32))
    raw = (tmp_path / "whole.npy").read_bytes()
    cases = [
        ("cut.npy", raw[:150], "is not a readable NumPy file"),
        ("empty.npy", b"", r"is not a \.npy file: .*magic bytes \(it is empty\)"),
        ("text.npy", b"1,2,3\n4,5,6\n", r"is not a \.npy file: .*magic bytes.*csv:<path>"),  # not 'pickled data'
        ("text.npz", b"not an archive", r"is not a \.npz archive"),
    ]
    for name, content, match in cases:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"{name} {match}"):
            load(f"npy:{tmp_path / name}")
    x = np.ones((5, 3), np.float32)
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    np.save(tmp_path / "bad.npy", x)
    name = f"npy:{tmp_path / 'bad.npy'}"
    with pytest.raises(ValueError, match=r"dataset 'npy:.*bad.npy' has 2 NaN or infinite values"):
        load(name)

    np.save(tmp_path / "ok.npy", np.ones((5, 3)))
    np.save(tmp_path / "ok_labels.npy", np.arange(4))
    with pytest.raises(ValueError, match="has 4 labels but there are 5 samples"):
        load(f"npy:{tmp_path / 'ok.npy'}")

    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="is empty"):
        load(f"npy:{tmp_path / 'empty.npy'}")
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(ValueError, match="2 or more dims"):
        load(f"npy:{tmp_path / 'flat.npy'}")


# ---------------------------------------------------------------- csv:

CSV = """id,age,color,income,species
1,20,red,100,b
2,,blue,NA,a
3,40,red,300,c
4,30,,nan,a
5,50,green,500,b
"""


def test_csv_numeric_categorical_missing(tmp_path):
    (tmp_path / "t.csv").write_text(CSV)
    x, y, names = tabular.load_csv(tmp_path / "t.csv", label_column="species", drop_columns=["id"])
    assert names == ["age", "income", "color=blue", "color=green", "color=red"]
    assert x.dtype == np.float32 and x.shape == (5, 5) and y.tolist() == [1, 0, 2, 0, 1]
    # age: missing -> median 35, then standardized; income: missing -> median 300.
    age = np.array([20, 35, 40, 30, 50.0])
    np.testing.assert_allclose(x[:, 0], (age - age.mean()) / age.std(), rtol=1e-5)
    np.testing.assert_allclose(x[:, 0].mean(), 0, atol=1e-6)
    # color: missing -> most frequent ("red").
    np.testing.assert_array_equal(x[:, 2:], [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0]])

    ds = load(f"csv:{tmp_path / 't.csv'}", label_column="species", drop_columns=("id",))
    assert ds.x.shape == (5, 5) and ds.y.tolist() == [1, 0, 2, 0, 1] and ds.image_shape is None
    assert load(f"csv:{tmp_path / 't.csv'}").x.shape == (5, 1 + 1 + 3 + 1 + 3)


def test_csv_numeric_labels_sort_numerically(tmp_path):
    (tmp_path / "t.csv").write_text("a,label\n1,10\n2,2\n3,2\n4,1\n")
    _, y, _ = tabular.load_csv(tmp_path / "t.csv", label_column="label")
    assert y.tolist() == [2, 1, 1, 0]


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (CSV, {"drop_columns": ["nope"]}, r"no column named 'nope'; the header is \['id', 'age'"),
        (CSV, {"label_column": "nope"}, "no column named 'nope'"),
        ("a,b\n1,\n2,NA\n", {}, "column 'b' has no values"),
        ("a,b\n1,x\n2,\n", {"label_column": "b"}, "label column 'b' is missing in 1 rows"),
        ("a,b\n1,inf\n2,3\n", {}, r"infinite values in columns \['b'\]"),
        ("", {}, "empty"),
        ("a,b\n", {}, "empty"),
        ("a,b\n1,2\n3\n", {}, "data row 2 has 1 fields"),
        ("a,a\n1,2\n", {}, "duplicate column names"),
        ("a,b\n1,2\n", {"drop_columns": ["a", "b"]}, "no feature columns"),
    ],
)
def test_csv_errors(tmp_path, content, kwargs, message):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        load(f"csv:{tmp_path / 't.csv'}", **kwargs)


# ---------------------------------------------------------------- names and splits


def test_unknown_name_split_and_options():
    names = ["mnist", "fashion_mnist", "kmnist", "usps", "cifar10", "stl10", "20newsgroups", "digits"]
    assert available() == [*names, "blobs", "idx:<dir>", "npy:<path>", "csv:<path>", "images:<dir>"]
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*mnist, fashion_mnist, .* npy:<path>, csv:<path>"):
        load("cifar")
    with pytest.raises(
        ValueError, match="unknown split 'unlabeled' for dataset 'cifar10'; valid splits: train, test, all"
    ):
        load("cifar10", "unlabeled")
    with pytest.raises(ValueError, match="unknown dataset 'npy:'"):
        load("npy:")
    with pytest.raises(ValueError, match="unknown split 'val' for dataset 'digits'; valid splits: train, test, all"):
        load("digits", "val")
    with pytest.raises(ValueError, match="valid splits: all"):
        load("npy:x.npy", "train")
    with pytest.raises(ValueError, match="csv:<path> datasets only"):
        load("digits", label_column="y")


def test_a_missing_or_misplaced_path_names_the_dataset_and_the_path(tmp_path):
    (tmp_path / "file.npy").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"dataset 'npy:.*nowhere\.npy': no such file .*nowhere\.npy"):
        load(f"npy:{tmp_path / 'nowhere.npy'}")
    with pytest.raises(NotADirectoryError, match=r"file\.npy is a file; idx:<dir> takes the folder"):
        load(f"idx:{tmp_path / 'file.npy'}")
    with pytest.raises(IsADirectoryError, match="is a folder; give the path of the file itself"):
        load(f"csv:{tmp_path}")


# ---------------------------------------------------------------- the registry's other datasets


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tar(path: Path, members: dict) -> Path:
    """A .tar.gz at `path` holding {member name: bytes}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["fashion_mnist", "kmnist"])
def test_idx_datasets_share_mnists_files_and_checks(tmp_path, monkeypatch, name):
    syn = write_mnist(tmp_path / "data" / name)
    ds = load(name, "all", data_dir=tmp_path / "data")
    assert ds.name == name and ds.x.shape == (70, 784) and ds.image_shape == (28, 28)
    np.testing.assert_array_equal(ds.y[:50], syn["train-labels-idx1-ubyte"])

    # Their published sums are of the .gz as served: a good .gz verifies, a changed one is refused by path.
    folder = tmp_path / "data" / name
    use_checksums(monkeypatch, name, {p.name: sha256_of(p) for p in folder.iterdir()})
    assert load(name, "test", data_dir=tmp_path / "data", verify=True).x.shape == (20, 784)
    idx.write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.ones(20, np.uint8))
    with pytest.raises(ValueError, match=rf"{name}/t10k-labels-idx1-ubyte.gz: checksum mismatch: expected sha256"):
        load(name, "test", data_dir=tmp_path / "data", verify=True)
    # A decompressed copy reads, but cannot be checked against the .gz's sum.
    (folder / "t10k-labels-idx1-ubyte").write_bytes(
        gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    )
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert load(name, "test", data_dir=tmp_path / "data").y.sum() == 20
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: cannot be verified: the published sha256 is of"):
        load(name, "test", data_dir=tmp_path / "data", verify=True)


def test_fashion_mnist_downloads_into_its_own_cache_and_offline_names_its_files(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mirror")
    mirror = tmp_path / "mirror"
    use_checksums(monkeypatch, "fashion_mnist", {p.name: sha256_of(p) for p in mirror.iterdir()})
    with pytest.raises(DataNotFoundError) as info:
        load("fashion_mnist", "test")
    message = str(info.value)
    assert "fashion_mnist file t10k-images-idx3-ubyte.gz was not found" in message
    assert "$JAXCLUSTER_DATA/fashion_mnist" in message and "JAXCLUSTER_FASHION_MNIST_MIRROR" in message
    assert str(tmp_path / "xdg" / "jaxcluster" / "fashion_mnist") in message
    assert not (tmp_path / "xdg").exists()

    monkeypatch.setenv("JAXCLUSTER_FASHION_MNIST_MIRROR", mirror.as_uri())
    assert load("fashion_mnist", "test").x.shape == (20, 784)
    cached = tmp_path / "xdg" / "jaxcluster" / "fashion_mnist"
    assert sorted(p.name for p in cached.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert all((cached / n).read_bytes() == (mirror / n).read_bytes() for n in ["t10k-images-idx3-ubyte.gz"])


def cifar_batch(images_hwc: np.ndarray, labels) -> bytes:
    """One batch as the published files hold it: bytes keys, data [N, 3072] in R, G, B planes."""
    data = images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)
    return pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": [int(v) for v in labels]}, protocol=2)


def write_cifar10(folder: Path, n=4, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    members, images, labels = {}, {}, {}
    for i, member in enumerate([*cifar.MEMBERS["train"], *cifar.MEMBERS["test"]]):
        images[member] = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels[member] = (np.arange(n) + i) % 10
        members[member] = cifar_batch(images[member], labels[member])
    # An image whose channels and rows are told apart: red on the top row only, blue everywhere.
    images[member][0] = 0
    images[member][0, 0, :, 0] = 255
    images[member][0, :, :, 2] = 255
    members[member] = cifar_batch(images[member], labels[member])
    path = write_tar(folder / "cifar-10-python.tar.gz", {"cifar-10-batches-py/batches.meta": b"", **members})
    return {"path": path, "images": images, "labels": labels}


def test_cifar10_pickled_batches_come_back_hwc(tmp_path, monkeypatch):
    syn = write_cifar10(tmp_path / "data" / "cifar10")
    train = load("cifar10", "train", data_dir=tmp_path / "data")
    test = load("cifar10", "test", data_dir=tmp_path / "data")
    assert train.x.shape == (20, 3072) and test.x.shape == (4, 3072) and test.image_shape == (32, 32, 3)
    assert train.x.dtype == np.float32 and 0 <= train.x.min() and train.x.max() <= 1
    test_member = cifar.MEMBERS["test"][0]
    np.testing.assert_array_equal(test.y, syn["labels"][test_member])
    np.testing.assert_allclose(test.x.reshape(-1, 32, 32, 3), syn["images"][test_member] / 255, rtol=1e-6)
    upright = test.x[0].reshape(32, 32, 3)
    assert upright[0, :, 0].min() == 1 and upright[1:, :, 0].max() == 0 and upright[..., 2].min() == 1
    assert len(load("cifar10", "all", data_dir=tmp_path / "data").x) == 24

    use_checksums(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": "0" * 64})
    with pytest.raises(ValueError, match=r"cifar10/cifar-10-python.tar.gz: checksum mismatch: expected sha256 0+,"):
        load("cifar10", "test", data_dir=tmp_path / "data", verify=True)
    use_checksums(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": sha256_of(syn["path"])})
    assert len(load("cifar10", "test", data_dir=tmp_path / "data", verify=True).x) == 4


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "members, message",
    [
        ({cifar.MEMBERS["test"][0]: pickle.dumps({b"data": _Evil()}, protocol=2)}, r"refusing .*system"),
        ({cifar.MEMBERS["test"][0]: pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]})}, "N, 3072"),
        ({"cifar-10-batches-py/data_batch_1": b""}, r"lacks cifar-10-batches-py/test_batch"),
        (None, "not a readable CIFAR-10 archive"),
    ],
)
def test_cifar10_refuses_code_bad_batches_and_broken_archives(tmp_path, members, message):
    path = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    if members is None:
        write_cifar10(tmp_path / "cifar10")
        path.write_bytes(path.read_bytes()[:300])
    else:
        write_tar(path, members)
    with pytest.raises(ValueError, match=message) as info:
        load("cifar10", "test", data_dir=tmp_path)
    assert str(path) in str(info.value)


def stl10_bytes(images_hwc: np.ndarray) -> bytes:
    """*_X.bin as published: each image's planes stored column-major, [C, W, H]."""
    return images_hwc.transpose(0, 3, 2, 1).tobytes()


def test_stl10_column_major_images_come_back_upright(tmp_path):
    rng = np.random.default_rng(0)
    images = {part: rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8) for part, n in [("train", 3), ("test", 2)]}
    images["unlabeled"] = rng.integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    # Asymmetric: an "L" in red (left column, bottom row), green in the top-right corner only.
    images["train"][0] = 0
    images["train"][0, :, 0, 0] = images["train"][0, -1, :, 0] = 255
    images["train"][0, :10, -10:, 1] = 255
    labels = {"train": np.array([1, 10, 5], np.uint8), "test": np.array([2, 3], np.uint8)}
    members = {stl10.MEMBERS[part][0]: stl10_bytes(a) for part, a in images.items()}
    members |= {stl10.MEMBERS[part][1]: y.tobytes() for part, y in labels.items()}
    write_tar(tmp_path / "stl10" / "stl10_binary.tar.gz", members)

    train = load("stl10", "train", data_dir=tmp_path)
    assert train.image_shape == (96, 96, 3) and train.x.shape == (3, 96 * 96 * 3)
    np.testing.assert_array_equal(train.y, [0, 9, 4])
    np.testing.assert_allclose(train.x.reshape(-1, 96, 96, 3), images["train"] / 255, rtol=1e-6)
    img = train.x[0].reshape(96, 96, 3)
    assert img[:, 0, 0].min() == 1 and img[-1, :, 0].min() == 1 and img[:-1, 1:, 0].max() == 0
    assert img[:10, -10:, 1].min() == 1 and img[10:, :, 1].max() == 0 and img[:, :-10, 1].max() == 0
    full = load("stl10", "all", data_dir=tmp_path)
    np.testing.assert_array_equal(full.y, [0, 9, 4, 1, 2])  # train then test, never the unlabeled images
    unlabeled = load("stl10", "unlabeled", data_dir=tmp_path)
    assert unlabeled.y is None and unlabeled.x.shape == (4, 27648)

    members[stl10.MEMBERS["test"][1]] = b"\x01\x02\x03"
    write_tar(tmp_path / "stl10" / "stl10_binary.tar.gz", members)
    with pytest.raises(ValueError, match=r"stl10_binary.tar.gz:stl10_binary/test_y.bin: expected 2 labels"):
        load("stl10", "test", data_dir=tmp_path)


def test_usps_bzip2_libsvm(tmp_path):
    rng = np.random.default_rng(0)
    values = {"usps.bz2": rng.uniform(-1, 1, (3, 256)).round(6), "usps.t.bz2": rng.uniform(-1, 1, (2, 256)).round(6)}
    values["usps.bz2"][0, :16] = 1  # the top row white
    values["usps.bz2"][0, 16] = 0  # left out of the file below: a zero
    labels = {"usps.bz2": [1, 10, 4], "usps.t.bz2": [7, 2]}
    for name, v in values.items():
        lines = [
            f"{y} " + " ".join(f"{j + 1}:{x:.6f}" for j, x in enumerate(row) if x != 0)
            for y, row in zip(labels[name], v)
        ]
        (tmp_path / "usps").mkdir(exist_ok=True)
        (tmp_path / "usps" / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))

    ds = load("usps", "all", data_dir=tmp_path)
    assert ds.x.shape == (5, 256) and ds.image_shape == (16, 16) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [0, 9, 3, 6, 1])
    np.testing.assert_allclose(ds.x, (np.concatenate(list(values.values())) + 1) / 2, atol=1e-6)
    assert ds.x[0, 16] == 0.5 and ds.x[0].reshape(16, 16)[0].min() == 1

    (tmp_path / "usps" / "usps.t.bz2").write_bytes(bz2.compress(b"11 1:0.5\n"))
    with pytest.raises(ValueError, match=r"usps.t.bz2: USPS labels must be integers 1..10"):
        load("usps", "test", data_dir=tmp_path)
    (tmp_path / "usps" / "usps.t.bz2").write_bytes(b"BZh9 not really")
    with pytest.raises(ValueError, match=r"usps.t.bz2: corrupt bzip2 stream"):
        load("usps", "test", data_dir=tmp_path)


def test_tfidf_keeps_the_most_frequent_terms_as_unit_rows():
    docs = ["the cat sat on the mat", "the dog sat", "cats and dogs and cats", "a mat a mat a mat"]
    x = text.tfidf(docs, max_features=3)
    assert x.shape == (4, 3) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1)[x.any(axis=1)], 1, rtol=1e-6)
    assert text.tfidf(docs).shape == (4, 6)  # every term but the stop words the, on, and, a
    with pytest.raises(ValueError, match="no terms in the 1 documents"):
        text.tfidf(["the and a"])


def test_20newsgroups_reads_sklearns_file_offline_and_says_where_to_put_it(tmp_path, monkeypatch):
    with pytest.raises(DataNotFoundError, match=r"20news-bydate_py3.pkz was not found") as info:
        load("20newsgroups", "test", data_dir=tmp_path / "data")
    assert "$JAXCLUSTER_DATA/20newsgroups" in str(info.value) and str(tmp_path / "data") in str(info.value)

    (tmp_path / "data" / "20newsgroups").mkdir(parents=True)
    (tmp_path / "data" / "20newsgroups" / "20news-bydate_py3.pkz").write_bytes(b"")
    calls = []

    def fake_fetch(data_home, subset, download):
        calls.append((data_home, subset, download))
        return types.SimpleNamespace(data=["hockey puck goal", "space shuttle orbit", "goal hockey"], target=[3, 1, 3])

    monkeypatch.setattr(text, "_fetch", fake_fetch)
    ds = load("20newsgroups", "test", data_dir=tmp_path / "data")
    assert calls == [(tmp_path / "data" / "20newsgroups", "test", False)]
    assert ds.x.shape == (3, 6) and ds.image_shape is None
    np.testing.assert_array_equal(ds.y, [3, 1, 3])


def test_kmeans_binary_on_cifar10_files(tmp_path):
    write_cifar10(tmp_path / "data" / "cifar10", n=6)
    args = ["--dataset=cifar10", "--split=test", f"--data_dir={tmp_path / 'data'}", "--n_clusters=3", "--n_init=1"]
    run(["experiments.kmeans", *args, f"--workdir={tmp_path / 'run'}"], cwd=tmp_path)
    assert (tmp_path / "run" / "plots" / "clusters.png").stat().st_size > 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["dataset"] == "cifar10" and results["n_samples"] == 6


# ---------------------------------------------------------------------------------------------- images:<dir>


def write_image_folder(root: Path, n: int = 6, top_level: bool = False) -> None:
    """n dark squares in dark/ and n bright rings in rings/ (PNG, gray; one RGB JPEG each), a truncated PNG in
    rings/ and a text file; with top_level, one more image at the folder's top level."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    ring = (np.abs(np.hypot(yy - 7.5, xx - 7.5) - 5) < 1.5) * 220
    for name, base in (("dark", np.full((16, 16), 20)), ("rings", ring)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(base + rng.integers(0, 30, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
        Image.fromarray(pixels).convert("RGB").save(root / name / "colour.jpg", quality=95)
    png = (root / "rings" / "0.png").read_bytes()
    (root / "rings" / "broken.png").write_bytes(png[: len(png) // 2])
    (root / "rings" / "notes.txt").write_text("not an image")
    if top_level:
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "loose.png")


def test_images_folder_labels_from_subfolders_skips_unreadable_files(tmp_path, caplog):
    write_image_folder(tmp_path / "photos")
    with caplog.at_level("WARNING"):
        ds = load(f"images:{tmp_path / 'photos'}", image_size=8)
    assert ds.x.shape == (14, 64) and ds.x.dtype == np.float32 and ds.image_shape == (8, 8)
    np.testing.assert_array_equal(ds.y, [0] * 7 + [1] * 7)  # dark/ then rings/, sorted by name
    assert ds.x[ds.y == 1].mean() > ds.x[ds.y == 0].mean() + 0.2  # the rows are the images of their folders
    assert "1 unreadable files skipped" in caplog.text and "broken.png" in caplog.text

    rgb = load(f"images:{tmp_path / 'photos'}", image_size=10, color="rgb")
    assert rgb.x.shape == (14, 300) and rgb.image_shape == (10, 10, 3)
    assert load(f"images:{tmp_path / 'photos'}").image_shape == (32, 32)  # the stated default size


def test_images_folder_with_a_top_level_image_has_no_labels(tmp_path):
    write_image_folder(tmp_path / "photos", n=2, top_level=True)
    ds = load(f"images:{tmp_path / 'photos'}", image_size=8)
    assert ds.y is None and len(ds.x) == 7


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "message"),
    [
        ("digits", {"image_size": 8}, ValueError, "image_size and color apply to images:<dir> datasets only"),
        ("images:{root}", {"split": "train"}, ValueError, "unknown split 'train'"),
        ("images:{root}/dark/0.png", {}, NotADirectoryError, "images:<dir> takes a folder of images"),
        ("images:{root}/nothing", {}, FileNotFoundError, "no such folder"),
        ("images:{root}/empty", {}, ValueError, "no image files"),
        ("images:{root}", {"color": "cmyk"}, ValueError, "color must be one of gray, rgb"),
    ],
)
def test_images_folder_errors(tmp_path, name, kwargs, error, message):
    write_image_folder(tmp_path, n=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(error, match=message):
        load(name.format(root=tmp_path), **kwargs)


def test_kmeans_binary_on_an_images_folder(tmp_path):
    write_image_folder(tmp_path / "photos")
    args = [f"--dataset=images:{tmp_path / 'photos'}", "--image_size=8", "--color=rgb", "--n_init=2"]
    run(["experiments.kmeans", *args, f"--workdir={tmp_path / 'run'}"], cwd=tmp_path)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["n_samples"] == 14 and results["acc"] == 1.0  # K = the two folders
    assert (tmp_path / "run" / "plots" / "clusters.png").stat().st_size > 0
