r"""Cluster a folder of your own images (PNG, JPEG, ... through Pillow) and sort them into folders.

  python -m experiments.cluster_images --image_dir=~/Pictures/holiday --n_clusters=auto
  python -m experiments.cluster_images --image_dir=photos --color=rgb --features=pca --n_clusters=8 --copy

Every image under --image_dir is decoded (Pillow), converted to gray or RGB, resized to a square and scaled to
[0, 1]; undecodable files are listed in results.json and skipped. Features: pixels, PCA or --pretrained codes;
k-means or a GMM; --n_clusters=auto keeps the K of best silhouette. Outputs in --output: assignments.csv and
cluster_<k>/ (symlinks, or copies with --copy) with a manifest; the originals are only read, and --overwrite
removes only what an earlier run created. Details: docs/experiments.md#cluster_images.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from experiments import common, features
from research import checks, plots
from research.cluster import gmm, kmeans, select

FLAGS = flags.FLAGS
flags.DEFINE_string("image_dir", None, "The folder of images to cluster (only read, never changed).")
flags.DEFINE_bool("recursive", True, "Also read the images in subfolders (symlinked folders are not followed).")
flags.DEFINE_integer("image_size", 32, "Images are resized to image_size x image_size pixels.")
flags.DEFINE_enum("color", "gray", ["gray", "rgb"], "Convert the images to gray (1 channel) or RGB (3).")
flags.DEFINE_enum("features", "pixels", list(features.KINDS), "Raw pixels or PCA of them.")
flags.DEFINE_integer("pca_components", 50, "--features=pca: number of components (at most the number of images).")
flags.DEFINE_enum("algorithm", "kmeans", ["kmeans", "gmm"], "k-means or a Gaussian mixture.")
flags.DEFINE_string("covariance_type", "diag", "gmm: covariance type (full, diag, spherical, tied, as gmm.fit takes).")
flags.DEFINE_string("n_clusters", "auto", "K, or 'auto': the K in [k_min, k_max] with the best silhouette.")
flags.DEFINE_integer("k_min", 2, "--n_clusters=auto: smallest K tried.")
flags.DEFINE_integer("k_max", 10, "--n_clusters=auto: largest K tried (at most the number of images - 1).")
flags.DEFINE_integer("n_init", 10, "k-means restarts; the lowest inertia is kept.")
flags.DEFINE_integer("silhouette_sample_size", 5000, "--n_clusters=auto: silhouette on at most this many images.")
flags.DEFINE_alias("silhouette_sample", "silhouette_sample_size")  # the name of the last release, kept for one more
flags.DEFINE_string("output", None, "Folder for assignments.csv and cluster_<k>/. Default: the workdir.")
flags.DEFINE_bool("copy", False, "Copy the images into cluster_<k>/ instead of symlinking them.")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MANIFEST = ".cluster_images_manifest.json"
ASSIGNMENTS = "assignments.csv"
# A run's own files when --output is the workdir: not "somebody else's" content.
_WORKDIR_FILES = {"config.json", "results.json", "metrics.jsonl", "plots"}


@dataclasses.dataclass(frozen=True)
class Config:
    """What to read, how to cluster it and where the sorted folders go (the flags of the same names)."""

    image_dir: Path
    output: Path  # default: the workdir
    recursive: bool = True
    image_size: int = 32
    color: str = "gray"
    features: str = "pixels"
    pca_components: int = 50
    pretrained: str | None = None
    algorithm: str = "kmeans"
    covariance_type: str = "diag"
    n_clusters: int | str = "auto"  # K, or "auto": the best silhouette in [k_min, k_max]
    k_min: int = 2
    k_max: int = 10
    n_init: int = 10
    silhouette_sample_size: int = 5000
    copy: bool = False
    overwrite: bool = False

    @property
    def image_shape(self) -> tuple:
        return (self.image_size, self.image_size) + (() if self.color == "gray" else (3,))


# ---------------------------------------------------------------------------
# Reading


def find_images(image_dir: Path, recursive: bool, skip_dirs=()) -> tuple[list[Path], int]:
    """Image files under image_dir, sorted; and how many other (non-image) files were passed over."""
    skip = {Path(d).resolve() for d in skip_dirs}
    found, others = [], 0
    for root, dirs, files in os.walk(image_dir):  # followlinks=False: no loops through symlinked folders
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() not in skip)
        if not recursive:
            dirs[:] = []
        for name in files:
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / name)
            else:
                others += 1
    return sorted(found), others


def load_image(path: Path, size: int, color: str) -> np.ndarray:
    """One image as float32 [size, size] (gray) or [size, size, 3] (rgb) in [0, 1]; raises on a bad file."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()  # decode everything now: a truncated file fails here, not later
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        im = im.convert("L" if color == "gray" else "RGB")
        im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(im, np.float32) / 255.0


def load_folder(paths, size: int, color: str):
    """(x [n, d] float32, the paths read, [{"path", "error"}] for the files that could not be)."""
    rows, ok, bad = [], [], []
    for p in paths:
        try:
            rows.append(load_image(p, size, color).reshape(-1))
            ok.append(p)
        except Exception as e:  # noqa: BLE001 - any decoder failure on a user's file means "skip it", not "crash"
            bad.append({"path": str(p), "error": f"{type(e).__name__}: {e}"})
            logging.warning("skipping unreadable image %s (%s: %s)", p, type(e).__name__, e)
    d = size * size * (1 if color == "gray" else 3)
    return (np.stack(rows) if rows else np.zeros((0, d), np.float32)), ok, bad


# ---------------------------------------------------------------------------
# Clustering


def cluster(key, z, k: int, cfg: Config) -> np.ndarray:
    """Labels [n] of k-means (cfg.n_init restarts) or of a Gaussian mixture (cfg.covariance_type) at K = k."""
    if cfg.algorithm == "gmm":
        return np.asarray(gmm.fit(key, z, k, covariance_type=cfg.covariance_type).labels)
    return np.asarray(kmeans.fit(key, z, k, n_init=cfg.n_init).labels)


def silhouette_or_none(z, labels, cfg: Config, seed: int):
    """The mean silhouette (on cfg.silhouette_sample_size images at most), None where it is not defined."""
    s = select.mean_silhouette(z, labels, sample_size=cfg.silhouette_sample_size, seed=seed)
    return None if np.isnan(s) else s


def choose_k(key, z, cfg: Config, seed: int) -> tuple[int, np.ndarray, dict]:
    """--n_clusters=auto: fits K = k_min..k_max, keeps the best mean silhouette (ties: the smaller K)."""
    n = len(z)
    k_max = min(cfg.k_max, n - 1)
    if k_max < cfg.k_min:
        raise ValueError(f"--n_clusters=auto needs at least {cfg.k_min + 1} readable images, got {n}.")
    ks = list(range(cfg.k_min, k_max + 1))
    sil = select.silhouette(
        z,
        ks,
        lambda k: cluster(jax.random.fold_in(key, k), z, k, cfg),
        sample_size=cfg.silhouette_sample_size,
        seed=seed,
    )
    if sil.k is None:
        raise ValueError("no K in [k_min, k_max] gave two or more non-empty clusters; the images may be identical.")
    scores = {k: None if np.isnan(s) else float(s) for k, s in zip(ks, sil.scores)}
    return sil.k, sil.labels[ks.index(sil.k)], scores


def by_size(labels) -> np.ndarray:
    """Renumbers clusters 0.. by decreasing size (ties: the lower old id first)."""
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(ids))
    return rank[inverse]


# ---------------------------------------------------------------------------
# Output folder: only ever remove what a run of this binary created


def _entries(out: Path, ignore) -> list[str]:
    return sorted(e for e in os.listdir(out) if e not in ignore) if out.is_dir() else []


def _manifest_entries(out: Path) -> list[str]:
    path = out / MANIFEST
    if not path.is_file():
        return []
    created = json.loads(path.read_text()).get("created", [])
    safe = []
    for rel in created:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or not parts or ".." in parts:
            raise ValueError(f"{path}: refusing a manifest entry outside the output folder: {rel!r}.")
        safe.append(rel)
    return safe


def check_output(out: Path, ignore, overwrite: bool) -> None:
    """Refuses a non-empty output folder unless `overwrite` (before any work is done)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} exists and is not a folder.")
    entries = _entries(out, ignore)
    if entries and not overwrite:
        shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
        raise ValueError(
            f"output folder {out} is not empty ({shown}). Pass --overwrite to replace the outputs of an earlier "
            "cluster_images run there (only the files it created are removed), or choose another --output."
        )
    _manifest_entries(out)  # a corrupt manifest fails now, not after the work


def remove_previous(out: Path) -> list[str]:
    """Removes what the manifest says an earlier run created (links, copies, then emptied folders)."""
    created = _manifest_entries(out)
    removed = []
    for rel in sorted(created, key=lambda r: -len(Path(r).parts)):  # files before their folders
        p = out / rel
        if any((out / Path(*Path(rel).parts[:i])).is_symlink() for i in range(1, len(Path(rel).parts))):
            logging.warning("not removing %s: a folder on its path is now a symlink", p)
            continue
        if p.is_symlink() or p.is_file():
            p.unlink()  # removes a link itself, never its target
            removed.append(rel)
        elif p.is_dir():
            try:
                p.rmdir()  # only if empty: files someone else put there stay
                removed.append(rel)
            except OSError:
                logging.warning("keeping %s: it holds files this binary did not create", p)
    (out / MANIFEST).unlink(missing_ok=True)
    return removed


def link_name(path: Path, image_dir: Path) -> str:
    """A flat file name for an image, unique across subfolders: sub/dir/a.png -> sub__dir__a.png."""
    return "__".join(path.relative_to(image_dir).parts)


def write_outputs(out: Path, image_dir: Path, paths, labels, *, copy: bool, overwrite: bool) -> dict:
    """assignments.csv, cluster_<k>/ links (copies with `copy`), and the manifest (written first, so a crash is
    cleanable); with `overwrite`, an earlier run's outputs there are removed first."""
    out.mkdir(parents=True, exist_ok=True)
    plan, used = [], set()
    for p, k in zip(paths, labels):
        name = link_name(p, image_dir)
        stem, suffix, i = Path(name).stem, Path(name).suffix, 1
        while f"cluster_{k}/{name}" in used:
            name, i = f"{stem}-{i}{suffix}", i + 1
        used.add(f"cluster_{k}/{name}")
        plan.append((p, f"cluster_{k}/{name}"))
    folders = sorted({f"cluster_{k}" for k in labels}, key=lambda s: int(s.split("_")[1]))
    created = [ASSIGNMENTS, *folders, *(rel for _, rel in plan)]
    # Checked before anything is removed: every name this run writes must be free, or an earlier run's.
    previous = set(_manifest_entries(out)) if overwrite else set()
    clash = [
        e
        for e in created
        if ((out / e).exists() or (out / e).is_symlink())
        and (e not in previous or (e in folders and (out / e).is_symlink()))
    ]
    if clash:
        shown = ", ".join(clash[:5]) + (" ..." if len(clash) > 5 else "")
        raise ValueError(
            f"{out} already holds {shown}, not created by an earlier cluster_images run (no manifest entry); "
            "move them away or choose another --output. Nothing was changed."
        )
    removed = remove_previous(out) if overwrite else []
    (out / MANIFEST).write_text(json.dumps({"created": created}, indent=1) + "\n")
    for folder in folders:
        (out / folder).mkdir(exist_ok=True)  # an earlier run's folder that still holds a user's file is reused
    for src, rel in plan:
        if copy:
            shutil.copy2(src, out / rel)  # reads the original; its bytes and times stay as they are
        else:
            os.symlink(os.path.abspath(src), out / rel)
    with open(out / ASSIGNMENTS, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "cluster"])
        w.writerows((os.path.abspath(p), int(k)) for p, k in zip(paths, labels))
    return {"removed_previous": len(removed)}


# ---------------------------------------------------------------------------


def parse_n_clusters(value: str):
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return checks.check_positive_int(int(value), "--n_clusters")
    except ValueError:
        raise ValueError(f"--n_clusters must be 'auto' or a whole number >= 1, got {value!r}.") from None


def main(argv):
    del argv
    for name in ("dataset", "split", "data_dir", "label_column", "drop_columns"):
        if FLAGS[name].present:
            raise app.UsageError(f"--{name} is not used by cluster_images: it reads the images in --image_dir.")
    if not FLAGS.image_dir:
        raise app.UsageError("--image_dir is required: the folder of images to cluster.")
    image_dir = Path(FLAGS.image_dir).expanduser()
    if not image_dir.is_dir():
        raise ValueError(f"--image_dir={FLAGS.image_dir}: no such folder.")
    run = common.run_config("cluster_images")
    if FLAGS.workdir is None:  # named after the image folder, not the (unused) --dataset
        wd = common.default_workdir("cluster_images", image_dir.name, run.seed)
        run = dataclasses.replace(run, workdir=wd, flags={**run.flags, "workdir": str(wd)})
    output = Path(FLAGS.output).expanduser() if FLAGS.output else run.workdir
    cfg = common.config_from_flags(
        Config, image_dir=image_dir, output=output, n_clusters=parse_n_clusters(FLAGS.n_clusters)
    )
    checks.check_positive_int(cfg.image_size, "--image_size")
    if cfg.n_clusters == "auto" and not 2 <= cfg.k_min <= cfg.k_max:
        raise ValueError(f"need 2 <= --k_min <= --k_max, got k_min={cfg.k_min}, k_max={cfg.k_max}.")
    sort_images(run, cfg)


def sort_images(run: common.RunConfig, cfg: Config) -> None:
    """Reads cfg.image_dir, clusters the images and sorts them into cfg.output; writes the run's outputs."""
    if cfg.pretrained:  # fails now, before anything is written
        features.load_encoder(cfg.pretrained, input_dim=int(np.prod(cfg.image_shape)))
    image_dir, out, wd = cfg.image_dir, cfg.output, run.workdir
    if out.resolve() == image_dir.resolve():
        raise ValueError("--output must not be the image folder itself; the originals' folder is only read.")
    check_output(out, _WORKDIR_FILES if out.resolve() == wd.resolve() else (), cfg.overwrite)
    common.prepare_workdir(run)

    paths, n_other = find_images(image_dir, cfg.recursive, skip_dirs=(out, wd))
    x, paths, unreadable = load_folder(paths, cfg.image_size, cfg.color)
    logging.info("%d images read, %d unreadable, %d other files ignored", len(paths), len(unreadable), n_other)
    if len(paths) < 2:
        raise ValueError(f"{image_dir}: {len(paths)} readable images; clustering needs at least 2.")
    (z,), info = features.compute(
        cfg.features, x, pca_components=cfg.pca_components, pretrained=cfg.pretrained, key=run.key()
    )

    key = run.key()
    scores = None
    if cfg.n_clusters == "auto":
        k, labels, scores = choose_k(key, z, cfg, run.seed)
    else:
        k = checks.check_n_clusters(cfg.n_clusters, len(z), "--n_clusters")
        labels = cluster(key, z, k, cfg)
    labels = by_size(labels)
    sizes = np.bincount(labels)
    written = write_outputs(out, image_dir, paths, labels, copy=cfg.copy, overwrite=cfg.overwrite)

    plots.cluster_grid(
        x,
        labels,
        cfg.image_shape,
        wd / "plots" / "clusters.png",
        seed=run.seed,
        cmap="gray",
        title=f"{cfg.algorithm}, {image_dir.name}, K={len(sizes)}",
    )
    sil = silhouette_or_none(z, labels, cfg, run.seed)
    results = {
        "image_dir": str(image_dir.resolve()),
        "output": str(out.resolve()),
        "n_images": len(paths),
        "n_unreadable": len(unreadable),
        "unreadable": unreadable,
        "n_ignored_other_files": n_other,
        "image_shape": cfg.image_shape,
        "features": "pretrained" if cfg.pretrained else cfg.features,
        "n_features": int(z.shape[1]),
        "algorithm": cfg.algorithm,
        "n_clusters": len(sizes),
        "cluster_sizes": sizes,
        "silhouette": sil,
        "silhouette_by_k": scores,
        "linked": "copy" if cfg.copy else "symlink",
        "seed": run.seed,
        **info,
        **written,
    }
    common.finish(
        run,
        results,
        f"cluster_images {image_dir.name}: {len(paths)} images ({len(unreadable)} unreadable) -> K={len(sizes)} "
        f"sizes {sizes.tolist()} silhouette={'n/a' if sil is None else f'{sil:.3f}'} -> {out}",
    )


if __name__ == "__main__":
    app.run(main)
