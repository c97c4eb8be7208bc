"""Tiny end-to-end runs of the experiment binaries, as a user runs them (python -m ...)."""

import json

import numpy as np
import pytest
from binaries import run

from research import checkpointing


def test_kmeans_binary_on_digits(tmp_path):
    out = run(["experiments.kmeans", "--dataset=digits", "--n_init=2", "--seed=3"], cwd=tmp_path)
    wd = tmp_path / "checkpoints" / "kmeans" / "digits-seed3"  # the default workdir, under the current folder
    results = json.loads((wd / "results.json").read_text())
    for key in ("acc", "nmi", "ari", "n_clusters", "dataset", "split", "seed", "fit_seconds", "compile_seconds"):
        assert key in results, key
    assert results["n_clusters"] == 10 and results["seed"] == 3 and results["dataset"] == "digits"
    assert 0.5 < results["acc"] <= 1 and results["inertia"] > 0 and results["compile_seconds"] > 0
    config = json.loads((wd / "config.json").read_text())
    assert config["n_init"] == 2 and config["dataset"] == "digits" and "max_iter" in config and "tol" in config
    labels = np.load(wd / "labels.npy")
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    assert (wd / "plots" / "clusters.png").stat().st_size > 10_000
    centroids = checkpointing.load_pytree(wd / "ckpt")["centroids"]
    assert np.asarray(centroids).shape == (10, 64)
    summary = out.stdout.strip().splitlines()[-1]
    assert summary.startswith("kmeans digits/all K=10: acc=") and "fit" in summary

    # A finished run is never replaced silently.
    again = run(["experiments.kmeans", "--dataset=digits", "--n_init=2", "--seed=3"], cwd=tmp_path, ok=False)
    assert again.returncode != 0 and "--overwrite" in again.stderr + again.stdout
    run(["experiments.kmeans", "--dataset=digits", "--n_init=2", "--seed=3", "--overwrite"], cwd=tmp_path)


def test_kmeans_binary_on_unlabelled_npy(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(8, 1, (40, 5))]).astype(np.float32)
    np.save(tmp_path / "mine.npy", x)
    wd = tmp_path / "run"
    run(["experiments.kmeans", f"--dataset=npy:{tmp_path / 'mine.npy'}", "--n_clusters=2", f"--workdir={wd}"], tmp_path)
    results = json.loads((wd / "results.json").read_text())
    assert "acc" not in results and results["n_clusters"] == 2
    labels = np.load(wd / "labels.npy")
    assert len(set(labels[:40])) == 1 and len(set(labels[40:])) == 1 and labels[0] != labels[-1]
    assert not (wd / "plots" / "clusters.png").exists()  # no image shape, no image grid


@pytest.mark.parametrize("flag, match", [("--n_clusters=5000", "larger than the number of samples")])
def test_kmeans_binary_reports_bad_flags(tmp_path, flag, match):
    out = run(["experiments.kmeans", "--dataset=digits", flag, f"--workdir={tmp_path / 'w'}"], tmp_path, ok=False)
    assert out.returncode != 0 and match in out.stderr
