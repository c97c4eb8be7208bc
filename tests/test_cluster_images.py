"""experiments.cluster_images end to end on a generated folder: separation, bad files, originals untouched."""

import csv
import dataclasses
import json
import os
import sys
from pathlib import Path

import binaries
import numpy as np
import pytest
from PIL import Image

from experiments import cluster_images as ci
from experiments import common, features
from research.data import images


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
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:  # file names are bytes
        rows = list(csv.DictReader(f))
    return {Path(r["path"]).name: int(r["cluster"]) for r in rows}


def assert_separated(got: dict, n: int = 8) -> None:
    """Every circle in one cluster, every stripe in one other cluster."""
    circles = {got[f"c{i}.png"] for i in range(n)}
    stripes = {got[f"s{i}.jpg"] for i in range(n)}
    assert len(circles) == len(stripes) == 1 and circles != stripes, got


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
    assert_separated(got)
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
    assert (wd / "plots" / "choose_k.png").stat().st_size > 5_000  # --n_clusters=auto: the silhouette by K
    assert (
        res["algorithm"] == "gmm" and res["n_features"] == 4 and res["removed_previous"] == 16 + 1 + 1
    )  # links, csv, cluster_1/ (cluster_0/ holds a user file)
    assert res["kept_previous"] == []
    assert (wd / "mine.txt").read_text() == "keep me"
    assert (wd / "cluster_0" / "also_mine.txt").read_text() == "keep me too"
    copies = [p for p in (wd / "cluster_0").iterdir() if p.suffix in (".png", ".jpg")]
    assert len(copies) == 8 and not any(p.is_symlink() for p in copies)
    got = read_assignments(wd / "assignments.csv")
    assert_separated(got)
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
    assert_separated(got)
    res = json.loads((wd / "results.json").read_text())
    assert res["features"] == "pretrained" and res["n_features"] == 4

    # An encoder of other images sizes, or no encoder at all: refused before anything is written.
    wrong = run(
        [f"--image_dir={folder}", f"--pretrained={tmp_path / 'ae'}", f"--workdir={tmp_path / 'w'}"], tmp_path, ok=False
    )
    assert "encodes 256 features, but the data has 1024" in wrong.stderr and not (tmp_path / "w").exists()
    with pytest.raises(Exception, match="holds no trained autoencoder"):
        features.load_encoder(tmp_path / "nowhere")


# ---------------------------------------------------------------------------
# Output folder: --overwrite removes only what it can prove an earlier run made (issue 22)


def tiny_originals(root: Path, names=("a.png", "b.png")) -> list[Path]:
    """Small gray PNGs under root (names may be str or bytes), returned sorted as find_images returns them."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(root / os.fsdecode(name))
    return images.find_images(root, True)[0]


def sorted_once(tmp_path, copy: bool):
    """Originals a.png (cluster 0) and b.png (cluster 1) sorted into out/ by one run; (src, out, paths)."""
    src, out = tmp_path / "src", tmp_path / "out"
    paths = tiny_originals(src)
    ci.write_outputs(out, src, paths, np.array([0, 1]), copy=copy, overwrite=False)
    return src, out, paths


def replace_with_own_file(p: Path) -> None:
    p.unlink()
    p.write_bytes(b"my own picture")


def edit_copy(p: Path) -> None:
    p.write_bytes(p.read_bytes() + b"edited")


def repoint_link(p: Path) -> None:
    p.unlink()
    p.symlink_to(p.parent.parent / "elsewhere.png")


@pytest.mark.parametrize(
    ("copy", "change"),
    [(False, replace_with_own_file), (True, replace_with_own_file), (True, edit_copy), (False, repoint_link)],
)
def test_overwrite_never_removes_what_it_cannot_prove_it_made(tmp_path, copy, change):
    src, out, paths = sorted_once(tmp_path, copy)
    mine = out / "cluster_0" / "a.png"
    change(mine)
    state = (os.path.islink(mine), mine.read_bytes() if not mine.is_symlink() else os.readlink(mine))
    manifest = (out / ci.MANIFEST).read_bytes()

    # The new run wants that very path: refused, before the work and again before any change, naming it.
    with pytest.raises(ValueError, match="cluster_0/a.png where this run writes.*Nothing was changed"):
        ci.check_names_free(out, ["a.png", "b.png"])
    with pytest.raises(ValueError, match="cluster_0/a.png where this run writes"):
        ci.write_outputs(out, src, paths, np.array([0, 1]), copy=copy, overwrite=True)
    assert (out / ci.MANIFEST).read_bytes() == manifest and (out / "cluster_1" / "b.png").exists()

    # A run that does not write there removes the rest and keeps (and reports) the changed entry.
    other = tiny_originals(tmp_path / "src2", ["c.png", "d.png"])
    got = ci.write_outputs(out, tmp_path / "src2", other, np.array([0, 0]), copy=copy, overwrite=True)
    assert got["kept_previous"] == ["cluster_0/a.png"] and got["removed_previous"] == 3  # csv, b.png, cluster_1/
    assert (os.path.islink(mine), mine.read_bytes() if not mine.is_symlink() else os.readlink(mine)) == state
    assert sorted(p.name for p in (out / "cluster_0").iterdir()) == ["a.png", "c.png", "d.png"]
    assert not (out / "cluster_1").exists()


def test_overwrite_removes_its_own_links_and_copies(tmp_path):
    src, out, paths = sorted_once(tmp_path, copy=True)
    assert (out / "cluster_1" / "b.png").read_bytes() == paths[1].read_bytes()
    ci.check_names_free(out, ["a.png", "b.png"])  # all provably ours: nothing to refuse
    got = ci.write_outputs(out, src, paths, np.array([1, 0]), copy=False, overwrite=True)
    assert got == {"removed_previous": 5, "kept_previous": []}
    assert os.readlink(out / "cluster_1" / "a.png") == os.path.abspath(paths[0])
    assert sorted(p.name for p in out.iterdir()) == [ci.MANIFEST, "assignments.csv", "cluster_0", "cluster_1"]


def test_a_manifest_without_proofs_leaves_every_file_in_place(tmp_path):
    # A manifest as earlier versions wrote it: names only. Their files may be the user's now: all kept.
    src, out, paths = sorted_once(tmp_path, copy=False)
    (out / "cluster_2").mkdir()
    names = ["assignments.csv", "cluster_0", "cluster_1", "cluster_2", "cluster_0/a.png", "cluster_1/b.png"]
    (out / ci.MANIFEST).write_text(json.dumps({"created": names}))
    replace_with_own_file(out / "cluster_0" / "a.png")
    with pytest.raises(ValueError, match="assignments.csv, cluster_0/a.png, cluster_1/b.png where this run writes"):
        ci.write_outputs(out, src, paths, np.array([0, 1]), copy=False, overwrite=True)
    removed, kept = ci.remove_previous(out)
    assert removed == ["cluster_2"]  # an empty folder: nothing in it to lose
    assert sorted(kept) == ["assignments.csv", "cluster_0/a.png", "cluster_1/b.png"]
    assert (out / "cluster_0" / "a.png").read_bytes() == b"my own picture"
    (out / ci.MANIFEST).write_text('{"created": [3]}')
    with pytest.raises(ValueError, match="is not a manifest cluster_images can read; move it away"):
        ci.check_output(out, (), overwrite=True)


def test_a_crash_midway_leaves_no_assignments_and_stays_cleanable(tmp_path, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "out"
    paths = tiny_originals(src)
    real_symlink, made = os.symlink, []

    def fail_on_second(target, link):
        if made:
            raise OSError("disk full")
        made.append(link)
        real_symlink(target, link)

    monkeypatch.setattr(ci.os, "symlink", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        ci.write_outputs(out, src, paths, np.array([0, 1]), copy=False, overwrite=False)
    monkeypatch.undo()
    assert not (out / "assignments.csv").exists() and (out / "cluster_0" / "a.png").is_symlink()
    got = ci.write_outputs(out, src, paths, np.array([0, 1]), copy=False, overwrite=True)
    assert got == {"removed_previous": 3, "kept_previous": []}  # the link and both folders, by the manifest


def test_a_file_name_that_is_not_utf8_is_sorted_and_listed_exactly(tmp_path):
    if sys.platform != "linux":
        pytest.skip("file names as raw bytes: Linux file systems")
    src, out = tmp_path / "src", tmp_path / "out"
    paths = tiny_originals(src, [b"caf\xe9.png", b"plain.png"])
    ci.write_outputs(out, src, paths, np.array([0, 1]), copy=False, overwrite=False)
    rows = (out / "assignments.csv").read_bytes().splitlines()
    assert rows[1] == os.fsencode(paths[0].resolve()) + b",0" and rows[2].endswith(b"plain.png,1")
    assert os.path.samefile(os.fsencode(out) + b"/cluster_0/caf\xe9.png", paths[0])
    # The manifest (ASCII JSON) keeps the name exactly: the next --overwrite proves and removes the link.
    got = ci.write_outputs(out, src, paths, np.array([1, 0]), copy=False, overwrite=True)
    assert got == {"removed_previous": 5, "kept_previous": []}


def test_the_whole_run_survives_names_that_are_not_utf8(tmp_path, capsys):
    # results.json, the plot title and the summary line too, with the image folder's own name not UTF-8.
    if sys.platform != "linux":
        pytest.skip("file names as raw bytes: Linux file systems")
    src = tmp_path / os.fsdecode(b"ph\xf6tos")
    make_folder(src, n=3)
    (src / os.fsdecode(b"caf\xe9.png")).write_bytes((src / "c0.png").read_bytes())
    run_cfg = common.RunConfig(experiment="cluster_images", workdir=tmp_path / "run")
    cfg = ci.Config(image_dir=src, output=tmp_path / "run", n_clusters=2, n_init=1, image_size=8)
    ci.sort_images(run_cfg, cfg)
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["n_images"] == 7 and res["image_dir"] == str(src.resolve())
    assert "ph\\xf6tos: 7 images" in capsys.readouterr().out
    got = read_assignments(tmp_path / "run" / "assignments.csv")
    assert_separated(got, n=3)
    assert got[os.fsdecode(b"caf\xe9.png")] == got["c0.png"]


# ---------------------------------------------------------------------------
# Decoding: each mode scaled by its own range (issue 22)


def save(tmp_path, name, array, mode=None):
    path = tmp_path / name
    im = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    im.save(path)
    return path


RAMP = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)


@pytest.mark.parametrize(
    ("name", "array", "expected"),
    [
        ("i16.png", (RAMP * 40000).astype(np.uint16), RAMP * 40000 / 65535),  # I;16: by 65535, not clipped at 255
        ("i32.tif", (RAMP * 40000).astype(np.int32), RAMP * 40000 / 65535),  # I holding 16-bit values
        ("unit.tif", RAMP * 0.5, RAMP * 0.5),  # F within [0, 1]: as it is
        ("wide.tif", RAMP * 1000 - 300, RAMP),  # F outside: its own min and max
        ("l.png", (RAMP * 255).astype(np.uint8), (RAMP * 255).astype(np.uint8) / 255),
    ],
)
def test_images_are_scaled_by_their_modes_range(tmp_path, name, array, expected):
    path = save(tmp_path, name, array)
    gray = images.load_image(path, 8, "gray")
    np.testing.assert_allclose(gray, expected, atol=1e-4)
    rgb = images.load_image(path, 8, "rgb")
    assert rgb.shape == (8, 8, 3) and np.allclose(rgb[..., 1], gray)
    small = images.load_image(path, 4, "gray")
    assert small.dtype == np.float32 and 0 <= small.min() and small.max() <= 1 and small.std() > 0.1


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_eight_bit_modes_agree_with_their_gray(tmp_path, mode):
    gray = (RAMP * 255).astype(np.uint8)
    expected = images.load_image(save(tmp_path, "l.png", gray), 8, "gray")
    got = images.load_image(save(tmp_path, f"x.{'png' if mode != 'P' else 'gif'}", gray, mode), 8, "gray")
    np.testing.assert_allclose(got, expected, atol=2 / 255)


def test_transparent_pixels_are_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)  # black, fully transparent
    assert images.load_image(save(tmp_path, "t.png", rgba), 8, "gray").min() == 1.0


def test_unsupported_modes_and_nonfinite_pixels_are_refused_by_name(tmp_path):
    lab = tmp_path / "lab.tif"
    Image.new("LAB", (8, 8)).save(lab)
    with pytest.raises(ValueError, match="lab.tif: images of mode LAB are not supported"):
        images.load_image(lab, 8, "gray")
    with pytest.raises(ValueError, match="nan.tif: the F image has NaN or infinite pixels"):
        images.load_image(save(tmp_path, "nan.tif", np.where(RAMP > 0.5, np.nan, RAMP).astype(np.float32)), 8, "gray")
    x, ok, bad = images.load_folder([lab], 8, "gray")  # in a folder: listed as unreadable and skipped
    assert x.shape == (0, 64) and not ok and "mode LAB" in bad[0]["error"]


# ---------------------------------------------------------------------------
# Deep features from the folder itself, and a user's own features beside the photos (issue 21)


def class_folders(root: Path, n: int = 8) -> None:
    """n bright discs in discs/ and n dark frames in frames/ (12x12 gray PNGs, drawn with numpy)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:12, :12]
    shapes = {"discs": np.hypot(yy - 5.5, xx - 5.5) < 4, "frames": (np.minimum(yy, xx) < 2) | (np.maximum(yy, xx) > 9)}
    for name, mask in shapes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(mask * 200 + rng.integers(0, 40, mask.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_features_autoencoder_trains_on_the_folder_and_clusters_its_codes(tmp_path):
    from experiments import stages

    class_folders(tmp_path / "photos")
    run_cfg = common.RunConfig(experiment="cluster_images", workdir=tmp_path / "run", dataset="images:photos")
    ae = stages.AutoencoderConfig(arch="mlp:16-3", epochs=1, batch_size=8)
    cfg = ci.Config(
        image_dir=tmp_path / "photos",
        output=tmp_path / "run",
        image_size=8,
        features=features.Config("autoencoder"),
        autoencoder=ae,
        n_clusters=2,
        n_init=1,
    )
    ci.sort_images(run_cfg, cfg)
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["features"] == "autoencoder" and res["n_features"] == 3 and res["n_images"] == 16
    assert res["pretrained"] == str(tmp_path / "run" / "autoencoder") and "acc" in res  # labels: the folders
    spec = json.loads((tmp_path / "run" / "autoencoder" / "config.json").read_text())
    assert spec["arch"] == "mlp:16-3" and spec["epochs"] == 1  # trained by the experiments.stages stage


def test_own_features_in_a_npy_sort_the_photos_and_the_grid_shows_them(tmp_path, monkeypatch):
    class_folders(tmp_path / "photos", n=4)
    (tmp_path / "photos" / "frames" / "broken.png").write_bytes(b"not a png")
    paths, _ = images.find_images(tmp_path / "photos")  # the order the rows must follow
    assert [p.parent.name for p in paths] == ["discs"] * 4 + ["frames"] * 5
    # A "backbone" that knows the folders: two well separated points, one row per file, the broken one too.
    np.save(tmp_path / "feats.npy", np.array([[0.0, 0.0] if p.parent.name == "discs" else [5.0, 5.0] for p in paths]))
    drawn = {}
    monkeypatch.setattr(ci.plots, "cluster_grid", lambda x, labels, shape, *a, **k: drawn.update(x=x, shape=shape))
    run_cfg = common.RunConfig(experiment="cluster_images", workdir=tmp_path / "run", dataset="npy:feats.npy")
    monkeypatch.chdir(tmp_path)
    cfg = ci.Config(image_dir=tmp_path / "photos", output=tmp_path / "run", dataset="npy:feats.npy", image_size=8)
    ci.sort_images(run_cfg, dataclasses.replace(cfg, n_clusters=2, n_init=1))
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["n_images"] == 9 and res["n_unreadable"] == 1 and res["n_features"] == 2 and res["acc"] == 1.0
    rows = (tmp_path / "run" / "assignments.csv").read_text().splitlines()
    assert len(rows) == 1 + 9 and rows[-1].endswith("frames/broken.png,0")  # sorted too, with its folder (the larger)
    assert drawn["x"].shape == (8, 64) and drawn["shape"] == (8, 8)  # the photos, not the features, in the grid

    np.save(tmp_path / "feats.npy", np.zeros((5, 2)))
    with pytest.raises(ValueError, match="has 5 rows but --image_dir holds 9 image files"):
        ci.sort_images(
            dataclasses.replace(run_cfg, workdir=tmp_path / "w2"), dataclasses.replace(cfg, output=tmp_path / "w2")
        )


def test_flags_of_another_mode_are_refused_when_parsed(monkeypatch):
    from absl import flags

    def refused(argv, message):
        try:
            with pytest.raises(flags.IllegalFlagValueError, match=message):
                flags.FLAGS(["cluster_images", *argv])
        finally:
            flags.FLAGS.unparse_flags()

    refused(["--ae_epochs=3", "--features=pca"], "--ae_epochs applies only with --features=autoencoder")
    refused(["--features=autoencoder", "--pca_components=5"], "--pca_components applies only with --features=pca")
    # --image_size and --color apply to every dataset in cluster_images, in other binaries to images:<dir> only.
    flags.FLAGS(["cluster_images", "--image_size=8", "--color=rgb"])
    flags.FLAGS.unparse_flags()
    monkeypatch.setattr(common, "_IMAGES_WHATEVER_DATASET", [])
    refused(["--image_size=8", "--dataset=digits"], "--image_size applies only with --dataset=images:<dir>")
    flags.FLAGS(["kmeans", "--image_size=8", "--dataset=images:photos"])
    flags.FLAGS.unparse_flags()
