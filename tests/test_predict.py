"""research.load (research/saved.py) and experiments.predict: a finished run's model on new data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from binaries import run
from sklearn.pipeline import Pipeline

import research
from research import checkpointing, data, estimators, runlog, saved
from research.cluster import gmm, kmeans, som, spherical_kmeans
from research.embed import pca


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _run_dir(wd, experiment, params=None, ckpt_config=None, labels=None, results=None, **flags):
    """A finished run's workdir laid out as the binaries leave it (common.save_clustering, common.finish)."""
    wd.mkdir(parents=True)
    runlog.write_json(wd / "config.json", {"experiment": experiment, "dataset": "digits", **flags})
    if params is not None:
        checkpointing.save_pytree(wd / "ckpt", params, config=ckpt_config or {})
    if labels is not None:
        np.save(wd / "labels.npy", np.asarray(labels))
    runlog.write_json(wd / "results.json", results or {})
    return wd


def _arrays(named_tuple) -> dict:
    return {k: np.asarray(v) for k, v in named_tuple._asdict().items()}


def test_predict_binary_and_load_on_a_dec_run(tmp_path, digits):
    dec = tmp_path / "dec"
    tiny = ["--ae_arch=mlp:16-10", "--ae_epochs=1", "--max_iter=20", "--n_init=2", "--update_interval=10"]
    run(["experiments.dec", "--dataset=digits", f"--workdir={dec}", *tiny], tmp_path)
    out = run(["experiments.predict", f"--workdir={dec}", "--output=pred/dec.csv"], tmp_path)
    labels = np.load(dec / "labels.npy")
    assert np.array_equal(np.load(tmp_path / "pred" / "dec.npy"), labels), out.stdout
    lines = (tmp_path / "pred" / "dec.csv").read_text().splitlines()
    assert lines[0] == "index,label," + ",".join(f"p_{k}" for k in range(10)) and len(lines) == 1 + len(labels)
    first = lines[1].split(",")
    assert first[:2] == ["0", str(labels[0])] and abs(sum(map(float, first[2:])) - 1) < 1e-4
    again = run(["experiments.predict", f"--workdir={dec}", "--output=pred/dec"], tmp_path, ok=False)
    assert again.returncode == 2 and "pred/dec.npy exists; pass --overwrite" in again.stderr

    model = research.load(dec)  # DEC's own encoder and centroids
    assert isinstance(model, saved.SavedDEC)
    assert np.array_equal(model.predict(digits.x), labels)
    np.testing.assert_allclose(model.transform(digits.x), np.load(dec / "embedding.npy"), rtol=1e-5, atol=1e-6)
    q = model.predict_proba(digits.x[:5])
    np.testing.assert_allclose(q.sum(1), 1, rtol=1e-5)
    assert np.array_equal(q.argmax(1), labels[:5])
    ae = saved.open_run(dec / "autoencoder")  # the pretraining stage: an autoencoder run, codes only
    assert isinstance(ae.model, saved.Encoder) and not hasattr(ae.model, "predict")
    assert ae.model.transform(digits.x[:7]).shape == (7, 10) and ae.image_shape == (8, 8)
    with pytest.raises(ValueError, match=r"shape \(7, 63\): 63 features.*trained on 64 features \(8x8 images\)"):
        saved.check_input(ae, digits.x[:7, :63])
    with pytest.raises(ValueError, match="holds 4x16 images, but .* trained on 8x8 images"):
        saved.check_input(ae, digits.x[:7], (4, 16))


def _pca(rng, d: int, c: int) -> pca.PCAResult:
    """A PCA of d features to c orthonormal axes (the loader needs its fields, not a fit)."""
    axes = np.linalg.qr(rng.normal(size=(d, c)))[0].T.astype(np.float32)
    var = np.sort(rng.uniform(1, 2, c)).astype(np.float32)[::-1]
    f32 = np.float32
    return pca.PCAResult(rng.normal(size=d).astype(f32), axes, var, var / 10, var * 5, f32(0.1), np.bool_(False))


def test_load_rebuilds_the_clusterings_and_their_feature_stages(tmp_path, digits):
    rng, x = np.random.default_rng(0), digits.x[:300]
    p = _pca(rng, 64, 5)
    z = np.asarray(pca.transform(p, x))
    centroids = z[rng.choice(len(z), 6, replace=False)]
    labels = np.asarray(kmeans.predict(centroids, z))
    ckpt = {"centroids": centroids, "pca": _arrays(p)}
    wd = _run_dir(tmp_path / "km", "kmeans", ckpt, {"features": "pca", "n_features": 5}, labels, {"inertia": 1.0})
    model = research.load(wd)
    assert isinstance(model, Pipeline) and [s for s, _ in model.steps] == ["pca", "kmeans"]
    assert np.array_equal(model.predict(x), labels) and model.n_features_in_ == 64
    assert model[-1].inertia_ == 1.0 and np.array_equal(model[-1].labels_, labels)
    old = _run_dir(tmp_path / "pca_km", "pca_kmeans", ckpt, {"n_clusters": 6}, labels)  # no "features" entry
    assert np.array_equal(research.load(old).predict(x), labels)
    pixels = _run_dir(tmp_path / "mb", "kmeans", {"centroids": x[:4]}, minibatch_size=64)
    assert isinstance(research.load(pixels), estimators.MiniBatchKMeans)

    eye = np.eye(5, dtype=np.float32)[None]  # tied: the library's leading axis of 1
    g = gmm.GMMParams(np.full(4, 0.25, np.float32), z[:4], eye * 4, eye / 2)
    wd = _run_dir(tmp_path / "gmm", "gmm", {"gmm": _arrays(g), "pca": _arrays(p)}, {"covariance_type": "tied"})
    mixture = research.load(wd)
    np.testing.assert_allclose(mixture.predict_proba(x), gmm.predict_proba(g, z), rtol=1e-4, atol=1e-6)
    assert np.array_equal(mixture.predict(x), np.asarray(gmm.predict(g, z)))
    assert isinstance(mixture[-1], estimators.GaussianMixture) and mixture[-1].covariances_.shape == (5, 5)

    directions = x[[0, 1, 2]]
    wd = _run_dir(tmp_path / "sph", "spherical_kmeans", {"centroids": directions})
    assert np.array_equal(research.load(wd).predict(x), spherical_kmeans.predict(directions, x))

    codebook, units = x[:12].reshape(3, 4, 64), rng.integers(0, 3, (3, 4))
    model = research.load(_run_dir(tmp_path / "som", "som", {"codebook": codebook, "unit_labels": units}))
    winners = np.asarray(som.winner(codebook, x))
    assert np.array_equal(model.winner(x), winners) and len(set(winners.tolist())) > 3
    assert np.array_equal(model.predict(x), units.reshape(-1)[winners])


@pytest.mark.parametrize(
    "experiment, says",
    [
        ("choose_k", "keeps no single model"),
        ("manifold_cluster", "cannot place new points"),
        ("tsne_dbscan", "cannot place new points"),
        ("cluster_images", "saves no model"),
        ("reproduce", "cannot be loaded"),
    ],
)
def test_runs_without_a_model_for_new_rows_are_refused(tmp_path, experiment, says):
    wd = _run_dir(tmp_path / experiment, experiment)
    with pytest.raises(ValueError, match=says):
        research.load(wd)


def test_unfinished_and_incomplete_workdirs_are_refused_naming_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        research.load(tmp_path)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps({"experiment": "kmeans"}))
    with pytest.raises(ValueError, match="unfinished run \\(no results.json\\)"):
        research.load(unfinished)
    with pytest.raises(FileNotFoundError, match=r"ckpt is missing: the run saved no fitted model"):
        research.load(_run_dir(tmp_path / "old", "kmeans"))
    with pytest.raises(FileNotFoundError, match=r"model is missing: the run saved no trained autoencoder"):
        research.load(_run_dir(tmp_path / "ae", "autoencoder"))
    wd = _run_dir(tmp_path / "gone", "ae_kmeans", {"centroids": np.zeros((2, 3), np.float32)}, pretrained="nowhere")
    with pytest.raises(FileNotFoundError, match="autoencoder in nowhere, which is not there"):
        research.load(wd)
    wd = _run_dir(tmp_path / "other", "gmm", {"means": np.zeros((2, 3), np.float32)})
    with pytest.raises(ValueError, match="has no 'gmm'"):
        research.load(wd)


def test_predict_reads_a_new_table_with_the_runs_own_preprocessing(tmp_path):
    rng = np.random.default_rng(0)
    centres, kinds = np.array([[0.0, 0.0], [8.0, 1.0], [0.0, 9.0]]), np.array(["red", "green", "blue"])
    y = np.repeat(np.arange(3), 20)
    xy = centres[y] + rng.normal(size=(60, 2))
    rows = [f"{a:.3f},{b:.3f},{kinds[c]},{c}" for (a, b), c in zip(xy, y)]
    (tmp_path / "t.csv").write_text("a,b,colour,label\n" + "\n".join(rows) + "\n")
    wd = tmp_path / "km"
    flags = ["--dataset=csv:t.csv", "--label_column=label", "--n_clusters=3", f"--workdir={wd}"]
    run(["experiments.kmeans", *flags], tmp_path)
    labels = np.load(wd / "labels.npy")
    # One row, columns reordered, no label: scaled by the training table's statistics, it lands where it did
    # in training (a table of one row standardized by its own statistics would be all zeros).
    a, b, colour, _ = rows[45].split(",")
    (tmp_path / "new.csv").write_text(f"colour,b,a\n{colour},{b},{a}\n")
    out = run(["experiments.predict", f"--workdir={wd}", "--dataset=csv:new.csv", "--output=pred/new"], tmp_path)
    assert np.load(tmp_path / "pred" / "new.npy").tolist() == [labels[45]], out.stdout
    assert "no labels to score" in out.stdout
