"""experiments.cluster_images end to end on a generated folder: separation, bad files, originals untouched."""

import csv
import json
from pathlib import Path

import binaries
import numpy as np
import pytest
from PIL import Image

from experiments import features


def run(args, cwd, ok=True):
    return binaries.run(["experiments.cluster_images", *args], cwd, ok)


def make_folder(root: Path, n: int = 8) -> None:
    """n circles (PNG, gray) and n stripes (JPEG, RGB, half of them in sub/), plus two bad files and a note."""
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    yy, xx = np.mgrid[:40, :40]
    for i in range(n):
        cy, cx, r = rng.uniform(15, 25), rng.uniform(15, 25), rng.uniform(7, 11)
        Image.fromarray((((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * 255).astype(np.uint8)).save(root / f"c{i}.png")
        stripes = np.clip(xx // 5 % 2 * 215 + rng.integers(0, 40, xx.shape), 0, 255).astype(np.uint8)
        Image.fromarray(stripes).convert("RGB").save(root / ("sub" if i % 2 else ".") / f"s{i}.jpg", quality=95)
    png = (root / "c0.png").read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "text.jpg").write_text("this is not a JPEG")
    (root / "notes.txt").write_text("ignored")


def snapshot(root: Path) -> dict:
    """Every file under root: (bytes, mtime_ns)."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def read_assignments(path: Path) -> dict:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {Path(r["path"]).name: int(r["cluster"]) for r in rows}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_folder(root)
    return root


def test_separates_and_links_and_never_touches_originals(folder, tmp_path):
    before = snapshot(folder)
    wd = tmp_path / "run"
    out = run(
        [f"--image_dir={folder}", "--n_clusters=2", "--n_init=2", "--color=rgb", f"--workdir={wd}"],
        tmp_path,
    )

    got = read_assignments(wd / "assignments.csv")
    assert len(got) == 16 and "truncated.png" not in got and "text.jpg" not in got
    circles = {got[f"c{i}.png"] for i in range(8)}
    stripes = {got[f"s{i}.jpg"] for i in range(8)}
    assert len(circles) == len(stripes) == 1 and circles != stripes  # the two kinds, apart
    res = json.loads((wd / "results.json").read_text())
    assert res["n_images"] == 16 and res["n_clusters"] == 2 and res["cluster_sizes"] == [8, 8]
    assert sorted(Path(u["path"]).name for u in res["unreadable"]) == ["text.jpg", "truncated.png"]
    assert res["n_ignored_other_files"] == 1 and "truncated.png" in out.stderr  # logged too
    # Symlinks into cluster_<k>/, pointing at the originals; sub/s1.jpg gets a flat, unique name.
    link = wd / f"cluster_{got['s1.jpg']}" / "sub__s1.jpg"
    assert link.is_symlink() and link.resolve() == (folder / "sub" / "s1.jpg").resolve()
    assert len(list((wd / "cluster_0").iterdir())) == 8
    assert (wd / "plots" / "clusters.png").stat().st_size > 5_000
    assert snapshot(folder) == before  # bytes and mtimes of every original, and no file added there

    # A second run into the same output is refused before any work...
    again = run([f"--image_dir={folder}", "--n_clusters=2", f"--workdir={wd}"], tmp_path, ok=False)
    assert again.returncode != 0 and "--overwrite" in again.stderr

    # ...and --overwrite removes only what the first run created: a file of the user's stays.
    (wd / "mine.txt").write_text("keep me")
    (wd / "cluster_0" / "also_mine.txt").write_text("keep me too")
    flags = ["--n_clusters=auto", "--k_min=2", "--k_max=3", "--algorithm=gmm", "--features=pca", "--pca_components=4"]
    flags += ["--color=rgb", "--copy", "--overwrite"]
    run([f"--image_dir={folder}", *flags, f"--workdir={wd}"], tmp_path)
    res = json.loads((wd / "results.json").read_text())
    assert res["n_clusters"] == 2 and set(res["silhouette_by_k"]) == {"2", "3"} and res["image_shape"] == [32, 32, 3]
    assert (
        res["algorithm"] == "gmm" and res["n_features"] == 4 and res["removed_previous"] == 16 + 1 + 1
    )  # links, csv, cluster_1/ (cluster_0/ holds a user file)
    assert (wd / "mine.txt").read_text() == "keep me"
    assert (wd / "cluster_0" / "also_mine.txt").read_text() == "keep me too"
    copies = [p for p in (wd / "cluster_0").iterdir() if p.suffix in (".png", ".jpg")]
    assert len(copies) == 8 and not any(p.is_symlink() for p in copies)
    got = read_assignments(wd / "assignments.csv")
    assert len({got[f"c{i}.png"] for i in range(8)} | {got[f"s{i}.jpg"] for i in range(8)}) == 2
    assert snapshot(folder) == before


def test_pretrained_encoder_gives_the_features(folder, tmp_path):
    # A small autoencoder trained on the folder's images (as experiments.autoencoder saves it), then reused.
    import jax

    from research import nets
    from research.deep import pretrain

    paths = [p for p in sorted(folder.rglob("*")) if p.name[0] in "cs" and p.suffix in (".png", ".jpg")]
    x = np.stack([np.asarray(Image.open(p).convert("L").resize((16, 16)), np.float32).ravel() / 255 for p in paths])
    model = nets.build("mlp:32-4", x.shape[1])
    params = pretrain.pretrain(jax.random.key(0), model, x, pretrain.PretrainConfig(batch_size=16, epochs=60))
    spec = {"arch": "mlp:32-4", "input_dim": 256, "image_shape": [16, 16], "activation": "relu", "init": "glorot"}
    pretrain.save_model(tmp_path / "ae", {**spec, "loss": "mse", "dataset": "photos"}, params)

    wd = tmp_path / "run"
    run(
        [
            f"--image_dir={folder}",
            "--image_size=16",
            "--n_clusters=2",
            f"--pretrained={tmp_path / 'ae'}",
            f"--workdir={wd}",
        ],
        tmp_path,
    )
    got = read_assignments(wd / "assignments.csv")
    assert len({got[f"c{i}.png"] for i in range(8)} | {got[f"s{i}.jpg"] for i in range(8)}) == 2
    res = json.loads((wd / "results.json").read_text())
    assert res["features"] == "pretrained" and res["n_features"] == 4

    # An encoder of other images sizes, or no encoder at all: refused before anything is written.
    wrong = run(
        [f"--image_dir={folder}", f"--pretrained={tmp_path / 'ae'}", f"--workdir={tmp_path / 'w'}"], tmp_path, ok=False
    )
    assert "encodes 256 features, but the data has 1024" in wrong.stderr and not (tmp_path / "w").exists()
    with pytest.raises(Exception, match="holds no trained autoencoder"):
        features.load_encoder(tmp_path / "nowhere")
