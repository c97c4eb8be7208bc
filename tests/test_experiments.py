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


def test_collect_gathers_seeds_beside_the_papers(tmp_path):
    root = tmp_path / "runs"
    for seed, acc in ((0, 0.5), (1, 0.7)):
        wd = root / "kmeans" / f"mnist-seed{seed}"
        wd.mkdir(parents=True)
        scores = {"acc": acc, "nmi": 0.4, "ari": 0.3, "n_init": 10}
        (wd / "results.json").write_text(json.dumps({"dataset": "mnist", "split": "all", "seed": seed, **scores}))
    other = root / "kmeans" / "digits-seed0"  # another dataset: left out
    other.mkdir(parents=True)
    (other / "results.json").write_text(json.dumps({"dataset": "digits", "split": "all", "seed": 0, "acc": 0.9}))
    ae = root / "autoencoder" / "mnist-cae-train-seed0"
    ae.mkdir(parents=True)
    (ae / "results.json").write_text(
        json.dumps({"dataset": "mnist", "seed": 0, "reconstruction_mse": 0.002, "test_reconstruction_mse": 0.003})
    )
    (ae / "config.json").write_text(json.dumps({"arch": "cae", "activation": "elu", "epochs": 10, "split": "train"}))
    run(["experiments.collect", "--dataset=mnist", f"--root={root}", f"--out={tmp_path / 'mnist'}"], tmp_path)
    table = (tmp_path / "mnist_clustering.md").read_text()
    assert "| kmeans | mnist n_init=10 | 0,1 | 0.6000 ± 0.1414 |" in table and "53.49" in table
    assert "0.9" not in table  # the digits run
    assert len((tmp_path / "mnist_clustering.csv").read_text().splitlines()) == 3
    assert (
        "| cae | elu |" in (tmp_path / "mnist_autoencoders.md").read_text()
        and "0.00300" in (tmp_path / "mnist_autoencoders.md").read_text()
    )
    empty = run(["experiments.collect", "--dataset=cifar", f"--root={root}"], tmp_path, ok=False)
    assert empty.returncode != 0 and "no finished runs of 'cifar'" in empty.stderr
