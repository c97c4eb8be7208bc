"""Tiny end-to-end runs of the experiment binaries, as a user runs them (python -m ...)."""

import csv
import json

import numpy as np
import pytest
from binaries import run

from research import checkpointing, report


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
    for k in (3, 12):  # K other than the class count, 20% held out: no published figure beside them
        wd = root / "dec" / f"mnist-k{k}-val-seed0"
        wd.mkdir(parents=True)
        res = {
            "dataset": "mnist",
            "seed": 0,
            "acc": 0.3,
            "nmi": 0.4,
            "ari": 0.2,
            "n_clusters": k,
            "loss_validation": 1.0,
        }
        (wd / "results.json").write_text(json.dumps(res))
    other = root / "kmeans" / "digits-seed0"  # another dataset: left out
    other.mkdir(parents=True)
    (other / "results.json").write_text(json.dumps({"dataset": "digits", "split": "all", "seed": 0, "acc": 0.9}))
    ae = root / "autoencoder" / "mnist-cae-train-seed0"
    ae.mkdir(parents=True)
    (ae / "results.json").write_text(
        json.dumps({"dataset": "mnist", "seed": 0, "reconstruction_mse": 0.002, "test_reconstruction_mse": 0.003})
    )
    (ae / "config.json").write_text(
        json.dumps(
            {"arch": "cae", "activation": "elu", "weight_init": "glorot", "optimizer": "adam", "augment": "affine"}
            | {"epochs": 10, "split": "train"}
        )
    )
    run(["experiments.collect", "--dataset=mnist", f"--root={root}", f"--out={tmp_path / 'mnist'}"], tmp_path)
    table = (tmp_path / "mnist_clustering.md").read_text()
    assert "| kmeans | mnist n_init=10 | 0,1 | 0.6000 ± 0.1414 |" in table and "53.49" in table
    assert "0.9" not in table  # the digits run
    assert "| dec | mnist-k3-val | 0 | 0.3000 | 0.4000 | 0.2000 | - |" in table and "84.30" not in table
    assert table.index("mnist-k3-val") < table.index("mnist-k12-val")  # numbers sort by value
    assert len((tmp_path / "mnist_clustering.csv").read_text().splitlines()) == 5
    assert (
        "| cae | elu | glorot | adam | affine |" in (tmp_path / "mnist_autoencoders.md").read_text()
        and "0.00300" in (tmp_path / "mnist_autoencoders.md").read_text()
    )
    empty = run(["experiments.collect", "--dataset=cifar", f"--root={root}"], tmp_path, ok=False)
    assert empty.returncode != 0 and "no finished runs of 'cifar'" in empty.stderr


def _blob_images(tmp_path, n_per=60, k=3, seed=0):
    """Three well-separated blobs of 8x8 "images" (64 features in [0, 1]) with labels, as npy files."""
    rng = np.random.default_rng(seed)
    centroids = rng.uniform(0, 1, size=(k, 64))
    x = np.concatenate([np.clip(c + rng.normal(0, 0.05, (n_per, 64)), 0, 1) for c in centroids]).astype(np.float32)
    np.save(tmp_path / "blobs.npy", x)
    return tmp_path / "blobs.npy"


def test_manifold_cluster_binary_separates_blobs(tmp_path):
    path = _blob_images(tmp_path)
    wd = tmp_path / "mc"
    args = ["experiments.manifold_cluster", f"--dataset=npy:{path}", "--n_clusters=3", f"--workdir={wd}"]
    out = run(args + ["--n_epochs=60", "--embed_dim=4", "--knn_dims=16", "--knn_candidates=30"], tmp_path)
    results = json.loads((wd / "results.json").read_text())
    assert results["n_features"] == 64 and results["embed_dim"] == 4 and len(results["lower_bound_per_init"]) == 10
    assert results["metric"] == "cosine"  # the default for raw features
    labels = np.load(wd / "labels.npy")
    assert [len(set(labels[i * 60 : (i + 1) * 60])) for i in range(3)] == [1, 1, 1] and len(set(labels)) == 3
    assert np.load(wd / "embedding.npy").shape == (180, 4)
    assert (wd / "plots" / "embedding.png").exists() and "manifold_cluster" in out.stdout


def test_tsne_dbscan_binary_on_digits_subset(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    pick = np.isin(digits.target, [0, 1, 6])  # three digits t-SNE separates cleanly
    np.save(tmp_path / "x.npy", (digits.data[pick] / 16.0).astype(np.float32))
    wd = tmp_path / "td"
    args = ["experiments.tsne_dbscan", f"--dataset=npy:{tmp_path / 'x.npy'}", f"--workdir={wd}", "--n_iter=300"]
    run(args + ["--perplexity=20", "--sweep_perplexities=5", "--sweep_samples=200"], tmp_path)
    results = json.loads((wd / "results.json").read_text())
    labels = np.load(wd / "labels.npy")
    y = digits.target[pick]
    clustered = labels >= 0
    assert results["n_clusters"] >= 3 and results["noise_fraction"] < 0.1 and results["eps"] > 0
    # Every cluster found holds one digit only.
    assert all(len(set(y[clustered & (labels == c)])) == 1 for c in set(labels[clustered]))
    for name in ("embedding.png", "perplexity.png"):
        assert (wd / "plots" / name).exists(), name


def test_csv_takes_every_rows_columns(tmp_path):
    # Rows gathered from runs of different vintages record different fields: none is dropped or refused.
    out = report.write_csv([{"row": "a", "acc": 0.5}, {"row": "b", "acc": 0.6, "n_iter": 7}], tmp_path / "t")
    with open(out.with_suffix(".csv")) as f:
        got = list(csv.DictReader(f))
    assert got == [{"row": "a", "acc": "0.5", "n_iter": ""}, {"row": "b", "acc": "0.6", "n_iter": "7"}]
