"""Tiny end-to-end runs of the experiment binaries, as a user runs them (python -m ...)."""

import csv
import json
import subprocess
from pathlib import Path

import jax
import numpy as np
from binaries import run, start

from research import checkpointing, data, report
from research.cluster import kmeans
from research.data import idx

BEST_FLAGS = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "best.flags"


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


def test_kmeans_binary_refuses_more_clusters_than_samples(tmp_path):
    out = run(
        ["experiments.kmeans", "--dataset=digits", "--n_clusters=5000", f"--workdir={tmp_path / 'w'}"],
        tmp_path,
        ok=False,
    )
    assert out.returncode != 0 and "larger than the number of samples" in out.stderr
    assert not (tmp_path / "w" / "results.json").exists()


def write_trees_csv(path, n_per=60, seed=0):
    """Three species of trees in four measured columns, plus an id and an uninformative site column."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(3, 4)) * 6
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "a", "b", "c", "d", "site", "species"])
        for j, (c, name) in enumerate(zip(centroids, ("ash", "beech", "cedar"), strict=True)):
            for i, row in enumerate(c + rng.normal(size=(n_per, 4))):
                out.writerow([f"t{j}{i:02d}", *np.round(row, 4), rng.choice(["north", "south"]), name])


def test_kmeans_binary_on_csv_random_init_unpruned_imbalanced(tmp_path):
    write_trees_csv(tmp_path / "trees.csv")
    wd = tmp_path / "run"
    flags = ["--label_column=species", "--drop_columns=id", "--min_retention=0.5", "--init=random", "--prune=false"]
    run(
        ["experiments.kmeans", f"--dataset=csv:{tmp_path / 'trees.csv'}", "--n_init=2", *flags, f"--workdir={wd}"],
        tmp_path,
    )
    config = json.loads((wd / "config.json").read_text())
    assert config["init"] == "random" and config["prune"] is False and config["min_retention"] == 0.5
    results = json.loads((wd / "results.json").read_text())
    # The subset the library draws for this seed: classes kept with probability 0.5, 0.75 and 1.
    ds = data.load(f"csv:{tmp_path / 'trees.csv'}", label_column="species", drop_columns=["id"])
    sub = data.imbalanced(ds, 0.5, seed=0)
    assert ds.x.shape == (180, 6)  # four standardized columns and the site's two one-hot columns; no id
    assert results["min_retention"] == 0.5 and results["n_samples"] == len(sub.x) < 180 and results["acc"] > 0.9
    assert np.asarray(checkpointing.load_pytree(wd / "ckpt")["centroids"]).shape == (3, 6)
    # Random seeding, as the library gives it for this key: one restart lands in a poor local optimum here,
    # which k-means++ seeding does not (both of its restarts reach 113.9).
    ref = kmeans.fit(jax.random.key(0), sub.x, 3, n_init=2, init="random", prune=False)
    np.testing.assert_allclose(results["inertia_per_init"], np.asarray(ref.inertia_per_init), rtol=1e-5)
    assert max(results["inertia_per_init"]) > 1.5 * min(results["inertia_per_init"])
    np.testing.assert_array_equal(np.load(wd / "labels.npy"), np.asarray(ref.labels))


def write_digits_idx(folder):
    """The digits as MNIST-named IDX files: the first 1500 as the train split (raw), the rest as test (gzip)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)
    folder.mkdir()
    for part, rows, suffix in (("train", slice(None, 1500), ""), ("t10k", slice(1500, None), ".gz")):
        idx.write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", images[rows])
        idx.write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", digits.target[rows].astype(np.uint8))


def finished(proc, workdir):
    """results.json of a started binary, once it has exited successfully."""
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-4000:]
    return json.loads((workdir / "results.json").read_text())


def test_the_pipeline_feeds_dec_da_and_reuses_its_pretraining(tmp_path):
    # experiments.pipeline with best.flags, shrunk: a small BCE autoencoder on digits read from IDX files, then
    # the N2D stage on its codes (neighbour embedding, GMM). Then, side by side: DEC-DA on that autoencoder
    # (--pretrained), and the pipeline again with another embedding, which reuses stage 1 and reruns stage 2.
    write_digits_idx(tmp_path / "idx")
    dataset = f"--dataset=idx:{tmp_path / 'idx'}"
    wd = tmp_path / "pipe"
    ae = wd / "autoencoder"
    n2d = ["--n_epochs=20", "--embed_dim=2", "--gmm_n_init=1", "--n_neighbors=5", "--covariance_type=diag"]
    best = ["experiments.pipeline", f"--flagfile={BEST_FLAGS}", dataset, f"--workdir={wd}"]
    args = [*best, "--loss=bce", "--arch=mlp:32-8", "--epochs=2", *n2d]
    out = run(args, tmp_path)
    assert out.stdout.strip().splitlines()[-1].startswith(f"pipeline idx:{tmp_path / 'idx'}/all K=10: acc=")
    ae_results = json.loads((ae / "results.json").read_text())
    assert ae_results["n_samples"] == 1797  # both splits, raw and gzipped
    assert checkpointing.load_config(ae / "model")["loss"] == "bce"
    # The loss trained on is the cross-entropy, well above the squared error it is reported beside (an MSE
    # training loss would be about equal to it).
    assert ae_results["final_loss"] > 2 * ae_results["reconstruction_mse"]
    assert (ae / "plots" / "augment_preview.png").is_file()  # best.flags' affine augmentation

    res = json.loads((wd / "results.json").read_text())
    stage1, stage2 = res["stages"]["autoencoder"], res["stages"]["manifold"]
    assert (stage1["workdir"], stage2["workdir"]) == (str(ae), str(wd / "manifold"))
    assert not stage1["reused"] and not stage2["reused"]
    # best.flags' settings, shrunk by the flags given after it.
    assert stage1["settings"]["augment"] == "affine" and stage1["settings"]["weight_init"] == "fan_in_uniform"
    assert stage1["settings"]["epochs"] == 2 and stage1["settings"]["arch"] == "mlp:32-8"
    expected = {"metric": "euclidean", "min_dist": 0.0, "n_neighbors": 5, "n_epochs": 20, "pretrained": str(ae)}
    assert {name: stage2["settings"][name] for name in expected} == expected
    manifold = json.loads((wd / "manifold" / "results.json").read_text())
    assert manifold["features"] == "pretrained" and manifold["n_features"] == 8  # the codes
    assert res["n_samples"] == 1797 and 0 < res["acc"] <= 1
    assert {m: res[m] for m in ("acc", "nmi", "ari")} == {m: manifold[m] for m in ("acc", "nmi", "ari")}
    assert np.array_equal(np.load(wd / "labels.npy"), np.load(wd / "manifold" / "labels.npy"))
    embedding = np.load(wd / "manifold" / "embedding.npy")
    assert embedding.shape == (1797, 2)

    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    dec = tmp_path / "dec"
    dec_flags = ["--augment=affine", "--max_iter=10", "--update_interval=5", "--n_init=1", "--batch_size=64"]
    self_label = ["--selftrain_rounds=2", "--selftrain_epochs=1"]  # and stage 3, self-labelling
    trained = (ae / "results.json").stat().st_mtime_ns
    procs = [
        start(["experiments.dec", dataset, f"--pretrained={ae}", *dec_flags, f"--workdir={dec}"], tmp_path, **pipe),
        start([*args, "--min_dist=0.5", "--overwrite", f"--autoencoder_workdir={ae}", *self_label], tmp_path, **pipe),
    ]
    results = finished(procs[0], dec)
    assert results["mode"] == "dec-da" and results["n_iter"] == 10 and results["pretrained"] == str(ae)
    assert json.loads((dec / "config.json").read_text())["augment"] == "affine"

    again = finished(procs[1], wd)
    assert again["stages"]["autoencoder"]["reused"] and not again["stages"]["manifold"]["reused"]
    assert (ae / "results.json").stat().st_mtime_ns == trained
    assert json.loads((wd / "manifold" / "config.json").read_text())["min_dist"] == 0.5
    assert not np.array_equal(np.load(wd / "manifold" / "embedding.npy"), embedding)
    stage3 = again["stages"]["selftrain"]
    assert stage3["workdir"] == str(wd / "selftrain") and not stage3["reused"] and stage3["augmented"]
    assert [h["round"] for h in stage3["history"]] == [0, 1] and stage3["settings"]["rounds"] == 2
    last = json.loads((wd / "selftrain" / "results.json").read_text())
    assert {m: again[m] for m in ("acc", "nmi")} == {m: last[m] for m in ("acc", "nmi")}
    assert np.array_equal(np.load(wd / "labels.npy"), np.load(wd / "selftrain" / "labels.npy"))
    assert np.load(wd / "selftrain" / "proba.npy").shape == (1797, 10)


def test_reproduce_builds_the_imbalanced_table_from_its_runs(tmp_path):
    # Every row's run is planted (their binaries have end-to-end tests of their own, --min_retention included):
    # the table must find each under its subset's workdir, and run nothing.
    root = tmp_path / "runs"
    planted = {"autoencoder": {"reconstruction_mse": 0.01}}
    for r_min, shift in (("0.3", 0.0), ("0.7", 0.1)):
        for name, acc in (("kmeans", 0.5), ("ae_kmeans", 0.6), ("dec", 0.7)):
            planted[f"{name}/digits-quick-rmin{r_min}"] = {"acc": acc + shift, "nmi": 0.5, "ari": 0.4}
    for path, res in planted.items():
        wd = root / (f"{path}/digits-quick-seed0" if path == "autoencoder" else f"{path}-seed0")
        wd.mkdir(parents=True)
        (wd / "results.json").write_text(json.dumps(res))
    flags = ["--table=dec_imbalanced", "--quick", "--seeds=0", "--min_retention=0.3,0.7"]
    out = run(["experiments.reproduce", *flags, f"--root={root}", f"--out={tmp_path / 'tables'}"], tmp_path)
    assert "running" not in out.stdout
    md = (tmp_path / "tables" / "dec_imbalanced_quick.md").read_text()
    assert "| method | r_min = 0.3 | r_min = 0.7 |" in md
    for row in (
        "| k-means (pixels) | 0.5000 | 0.6000 |",
        "| AE + k-means | 0.6000 | 0.7000 |",
        "| DEC | 0.7000 | 0.8000 |",
    ):
        assert row in md, md
    with open(tmp_path / "tables" / "dec_imbalanced_quick.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["min_retention"], r["row"]) for r in rows] == [
        (r, name) for r in ("0.3", "0.7") for name in ("k-means (pixels)", "AE + k-means", "DEC")
    ]


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
    assert results["n_features"] == 64 and results["embed_dim"] == 4 and len(results["lower_bound_per_init"]) == 30
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
    assert results["method"] == "hdbscan" and len(results["eps_birth"]) == results["n_clusters"]  # the default
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
