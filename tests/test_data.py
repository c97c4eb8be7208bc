"""Tests for research.data: the IDX reader, the dataset registry, MNIST download, CSV."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from research.data import DataNotFoundError, Dataset, available, idx, load, sources, tabular

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
    for var in ("JAXCLUSTER_DATA", "JAXCLUSTER_MNIST_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("no_proxy", "*")  # the local http.server must not go through a proxy
    monkeypatch.setattr(sources, "MNIST_MIRRORS", ((tmp_path / "no-mirror").as_uri() + "/",))


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
    monkeypatch.setattr(sources, "MNIST_SHA256", syn["sha256"])
    assert load("mnist", "all", data_dir=tmp_path / "data", verify=True).x.shape == (70, 784)


def test_mnist_rejects_files_that_are_not_mnist(tmp_path):
    write_mnist(tmp_path / "data")
    idx.write_idx(tmp_path / "data" / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(ValueError, match="do not match the 20 images"):
        load("mnist", "test", data_dir=tmp_path / "data")
    idx.write_idx(tmp_path / "data" / "t10k-images-idx3-ubyte.gz", np.zeros((19, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="not MNIST"):
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
        assert sources.MNIST_SHA256 == MNIST_SHA256
    else:
        root = tmp_path / "data"
        syn = write_mnist(root / "mnist")
        sums = syn["sha256"]
        train_counts = np.bincount(syn["train-labels-idx1-ubyte"], minlength=10)
        test_counts = np.bincount(syn["t10k-labels-idx1-ubyte"], minlength=10)
        monkeypatch.setattr(sources, "MNIST_SHA256", sums)
    monkeypatch.setenv("JAXCLUSTER_DATA", str(root))
    for stem, want in sums.items():
        path = sources._find([root / "mnist"], stem)
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
    monkeypatch.setattr(sources, "MNIST_SHA256", syn["sha256"])
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
    monkeypatch.setattr(sources, "MNIST_SHA256", {**syn["sha256"], "train-images-idx3-ubyte": "0" * 64})
    with pytest.raises(ValueError, match="checksum mismatch") as info:
        load("mnist", "train", mirrors=(tmp_path / "mirror").as_uri())
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "0" * 64 in message
    assert syn["sha256"]["train-images-idx3-ubyte"] in message
    assert not cache_dir(tmp_path).exists() or not any(cache_dir(tmp_path).iterdir())


def test_mnist_download_skips_a_mirror_with_a_bad_copy(tmp_path, monkeypatch):
    syn = write_mnist(tmp_path / "good")
    write_mnist(tmp_path / "bad", seed=1)
    monkeypatch.setattr(sources, "MNIST_SHA256", syn["sha256"])
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
    assert available() == ["mnist", "digits", "idx:<dir>", "npy:<path>", "csv:<path>"]
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*mnist, digits, idx:<dir>, npy:<path>, csv:<path>"):
        load("cifar")
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
