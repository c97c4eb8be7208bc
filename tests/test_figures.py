"""The figures people expect: the preview grid of an image dataset, the blobs source, k-means' centroid paths."""

import json

import jax
import numpy as np
import pytest
from binaries import run
from matplotlib import image

from experiments import common
from research import data, plots
from research.cluster import kmeans
from research.data import synthetic

# ---------------------------------------------------------------- the preview grid


def test_image_preview_draws_gray_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    gray = plots.image_preview(rng.random((30, 6 * 5), dtype=np.float32), (6, 5), tmp_path / "gray.png")
    rgb_x = np.zeros((150, 4 * 4 * 3), np.float32)
    rgb_x.reshape(-1, 4, 4, 3)[..., 0] = 1.0  # every image pure red
    rgb = plots.image_preview(rgb_x, (4, 4, 3), tmp_path / "rgb.png", seed=3, title="red")
    pixels = image.imread(rgb)[..., :3]
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    assert red.mean() > 0.2  # drawn in colour, not as gray
    pixels = image.imread(gray)[..., :3]
    assert np.allclose(pixels[..., 0], pixels[..., 1]) and pixels.std() > 0.1
    for shape in (None, (4, 4, 2), (2, 2, 3, 4)):
        with pytest.raises(ValueError, match=r"needs images of shape \(H, W\) or \(H, W, 3\)"):
            plots.image_preview(rgb_x, shape, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_load_dataset_writes_a_preview_for_images_only(tmp_path):
    ds = common.load_dataset(common.RunConfig("t", tmp_path / "digits", dataset="digits", seed=1))
    assert ds.image_shape == (8, 8) and (tmp_path / "digits" / "plots" / "preview.png").stat().st_size > 5_000
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n5,7\n")
    common.load_dataset(common.RunConfig("t", tmp_path / "csv", dataset=f"csv:{tmp_path / 't.csv'}"))
    common.load_dataset(common.RunConfig("t", tmp_path / "blobs", dataset="blobs"))
    np.save(tmp_path / "rows.npy", np.ones((5, 3), np.float32))  # a matrix: no image shape
    common.load_dataset(common.RunConfig("t", tmp_path / "npy", dataset=f"npy:{tmp_path / 'rows.npy'}"))
    assert not [p for p in tmp_path.rglob("*.png") if "digits" not in p.parts]


# ---------------------------------------------------------------- blobs


def test_blobs_are_deterministic_with_blob_labels():
    spec = synthetic.Blobs(n_samples=10, centers=3, cluster_std=0.5, dim=4, seed=7)
    x, y = synthetic.blobs(spec)
    assert x.shape == (10, 4) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [4, 3, 3]  # shared out evenly, the first blob takes the remainder
    again = data.load("blobs", blobs=spec)
    assert np.array_equal(again.x, x) and np.array_equal(again.y, y) and again.image_shape is None
    other = synthetic.blobs(spec._replace(seed=8))[0]
    assert not np.array_equal(other, x)
    # Each label is one Gaussian blob of the given spread.
    x, y = synthetic.blobs(synthetic.Blobs(n_samples=3000, centers=2, cluster_std=0.5, dim=2, seed=0))
    for c in (0, 1):
        assert np.allclose(x[y == c].std(axis=0), 0.5, rtol=0.1)
    assert np.linalg.norm(x[y == 0].mean(0) - x[y == 1].mean(0)) > 1  # distinct centres
    assert np.array_equal(data.load("blobs").x, synthetic.blobs()[0])  # the defaults


@pytest.mark.parametrize(
    "spec, message",
    [
        (synthetic.Blobs(n_samples=2, centers=3), "fewer than centers=3"),
        (synthetic.Blobs(cluster_std=0.0), "cluster_std must be a finite number > 0"),
        (synthetic.Blobs(dim=0), "dim must be a whole number >= 1"),
        (synthetic.Blobs(centers=2.5), "centers must be a whole number"),
    ],
)
def test_blobs_refuse_bad_settings(spec, message):
    with pytest.raises(ValueError, match=message):
        synthetic.blobs(spec)


def test_blobs_settings_and_splits_are_refused_elsewhere():
    with pytest.raises(ValueError, match="blobs settings apply to the blobs dataset only, not 'digits'"):
        data.load("digits", blobs=synthetic.Blobs())
    with pytest.raises(ValueError, match="unknown split 'train' for dataset 'blobs'"):
        data.load("blobs", "train")


# ---------------------------------------------------------------- k-means' history


def test_fit_with_history_ends_where_fit_ends():
    x, _ = synthetic.blobs(synthetic.Blobs(n_samples=300, centers=5, cluster_std=2.0, seed=1))
    key = jax.random.key(4)
    res = kmeans.fit(key, x, 5, n_init=3, max_iter=40)
    res_h, hist = kmeans.fit_with_history(key, x, 5, n_init=3, max_iter=40)
    for name, a, b in zip(res._fields, res, res_h):
        assert np.array_equal(np.asarray(a), np.asarray(b)), name  # the same bits
    hist, n = np.asarray(hist), int(res.n_iter)
    assert hist.shape == (41, 5, 2) and n >= 2
    assert np.array_equal(hist[n], np.asarray(res.centroids))
    assert np.isfinite(hist[: n + 1]).all() and np.isnan(hist[n + 1 :]).all()
    assert all(np.any(np.all(x == c, axis=1)) for c in hist[0])  # row 0: k-means++ picks data points
    assert not np.array_equal(hist[0], hist[1])  # the centroids moved


def test_centroid_paths_draws_any_dimension(tmp_path):
    rng = np.random.default_rng(0)
    for d in (1, 2, 5):
        x = rng.normal(size=(60, d))
        hist = np.stack([x[:3] * (1 - t / 4) for t in range(5)])
        path = plots.centroid_paths(x, rng.integers(0, 3, 60), hist, tmp_path / f"d{d}.png", title=f"d={d}")
        assert path.stat().st_size > 5_000
    with pytest.raises(ValueError, match=r"history must be \[T, k, 5\]"):
        plots.centroid_paths(x, np.zeros(60, int), hist[..., :2], tmp_path / "bad.png")


def test_kmeans_binary_records_history_on_blobs(tmp_path):
    wd = tmp_path / "run"
    blobs = ["--dataset=blobs", "--blobs_n_samples=200", "--blobs_centers=4", "--blobs_cluster_std=1.5"]
    run(
        [
            "experiments.kmeans",
            *blobs,
            "--blobs_seed=2",
            "--n_init=1",
            "--noprune",
            "--record_history",
            f"--workdir={wd}",
        ],
        tmp_path,
    )
    results = json.loads((wd / "results.json").read_text())
    hist = np.load(wd / "kmeans_history.npy")
    assert results["n_clusters"] == 4 and results["n_samples"] == 200
    assert hist.shape == (results["n_iter"] + 1, 4, 2) and np.isfinite(hist).all()
    x, _ = synthetic.blobs(synthetic.Blobs(n_samples=200, centers=4, cluster_std=1.5, dim=2, seed=2))
    assert np.array_equal(np.load(wd / "labels.npy"), np.asarray(kmeans.predict(hist[-1], x)))
    assert (wd / "plots" / "kmeans_history.png").stat().st_size > 10_000
    assert not (wd / "plots" / "preview.png").exists()  # points, not images
    assert json.loads((wd / "config.json").read_text())["blobs_centers"] == 4

    # Blobs flags with another dataset, and a history of mini-batch k-means, are refused before any work.
    out = run(
        ["experiments.kmeans", "--blobs_centers=4", "--record_history", "--minibatch_size=10", f"--workdir={wd}2"],
        tmp_path,
        ok=False,
    )
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and "--blobs_centers applies only with --dataset=blobs" in last, out.stderr
    assert "--record_history" in last and not (tmp_path / "run2").exists()
