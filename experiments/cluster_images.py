r"""Cluster a folder of your own images (PNG, JPEG, ... through Pillow) and sort them into folders.

  python -m experiments.cluster_images --image_dir=~/Pictures/holiday --n_clusters=auto
  python -m experiments.cluster_images --image_dir=photos --color=rgb --features=pca --n_clusters=8 --copy

Every image under --image_dir is decoded (Pillow), converted to gray or RGB, resized to a square and scaled to
[0, 1] by its mode's range (8 bits, 16 bits, float; see load_image); undecodable files or unsupported modes are
listed in results.json and skipped. Features: pixels, PCA or --pretrained codes; k-means or a GMM;
--n_clusters=auto keeps the K of best silhouette. Outputs in --output: assignments.csv and cluster_<k>/
(symlinks, or copies with --copy) with a manifest; the originals are only read, and --overwrite removes only
what an earlier run created and can prove it did (a link to the same target, a copy of the same hash); a file
of yours where this run writes is refused by name. Details: docs/experiments.md#cluster_images.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import NamedTuple

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


# Modes Pillow converts to L and RGB itself, all 8 bits per channel.
_EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LA", "PA", "HSV")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def load_image(path: Path, size: int, color: str) -> np.ndarray:
    """One image as float32 [size, size] (gray) or [size, size, 3] (rgb) in [0, 1]; raises on a bad file.

    Scaled by the range of the image's own mode: 8-bit modes (1, L, P, RGB, RGBA, LA, PA, CMYK, YCbCr, HSV) by
    255, 16-bit gray (I;16) by 65535, 32-bit integer gray (I) by 65535 when its values fit 16 bits (Pillow
    decodes some 16-bit files as I), float gray (F) as it is when within [0, 1]; any other I or F image by its
    own min and max, with a warning. Transparent pixels are laid on white. Other modes (LAB, La, ...) and NaN or
    infinite pixels raise ValueError.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()  # decode everything now: a truncated file fails here, not later
        im = ImageOps.exif_transpose(im)
        if im.mode in _EIGHT_BIT_MODES:
            return _eight_bit(im, size, color)
        if im.mode not in _SIXTEEN_BIT_MODES + ("I", "F"):
            raise ValueError(
                f"{path}: images of mode {im.mode} are not supported; convert it to 8-bit RGB or gray, "
                "16-bit gray or float gray first."
            )
        gray = _unit_range(np.asarray(im), im.mode, path)
    small = Image.fromarray(gray).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    gray = np.clip(np.asarray(small, np.float32), 0.0, 1.0)  # Lanczos overshoots at sharp edges
    return gray if color == "gray" else np.repeat(gray[..., None], 3, axis=-1)


def _eight_bit(im, size: int, color: str) -> np.ndarray:
    """An 8-bit Pillow image as float32 [size, size(, 3)] in [0, 1], transparency laid on white."""
    from PIL import Image

    if im.mode in ("RGBA", "RGBa", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    im = im.convert("L" if color == "gray" else "RGB")
    im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(im, np.float32) / 255.0


def _unit_range(a: np.ndarray, mode: str, path) -> np.ndarray:
    """A one-channel 16-bit, 32-bit integer or float image as float32 in [0, 1] (the rule of load_image)."""
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{path}: the {mode} image has NaN or infinite pixels; only finite images can be read.")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and lo >= 0 and hi <= 65535):
        return (a / 65535).astype(np.float32)
    if mode == "F" and lo >= 0 and hi <= 1:
        return a.astype(np.float32)
    logging.warning(
        "%s: %s pixels span [%g, %g], outside its mode's range; scaled by their own min and max",
        _printable(path),
        mode,
        lo,
        hi,
    )
    return ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)).astype(np.float32)


def load_folder(paths, size: int, color: str):
    """(x [n, d] float32, the paths read, [{"path", "error"}] for the files that could not be)."""
    rows, ok, bad = [], [], []
    for p in paths:
        try:
            rows.append(load_image(p, size, color).reshape(-1))
            ok.append(p)
        except Exception as e:  # noqa: BLE001 - any decoder failure on a user's file means "skip it", not "crash"
            bad.append({"path": str(p), "error": f"{type(e).__name__}: {e}"})
            logging.warning("skipping unreadable image %s (%s: %s)", _printable(p), type(e).__name__, _printable(e))
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
# Output folder: only ever remove what a run of this binary created and can prove it created


class Created(NamedTuple):
    """One thing a run put in --output, with its proof: a link's target or a file's SHA-256 (none for a folder,
    which is only ever removed when empty, nor for an entry of a manifest older than the proofs: "unknown")."""

    path: str  # relative to --output
    kind: str  # "folder", "link", "file" or "unknown"
    proof: str | None = None


def _sha256(path) -> str:
    st = os.stat(path)
    return _sha256_of(os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256_of(path: str, inode: int, size: int, mtime_ns: int) -> str:
    """The file's SHA-256, read once per version of it (the checks and the cleanup all ask)."""
    del inode, size, mtime_ns  # the cache key: a changed file is read again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entries(out: Path, ignore) -> list[str]:
    return sorted(e for e in os.listdir(out) if e not in ignore) if out.is_dir() else []


def _read_manifest(out: Path) -> list[Created]:
    """What an earlier run recorded in out's manifest (none without one); refuses entries outside out."""
    path = out / MANIFEST
    if not path.is_file():
        return []
    try:
        entries = [_manifest_entry(item) for item in json.loads(path.read_text())["created"]]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"{path} is not a manifest cluster_images can read; move it away or choose another --output."
        ) from None
    for entry in entries:
        parts = Path(entry.path).parts
        if Path(entry.path).is_absolute() or not parts or ".." in parts:
            raise ValueError(f"{path}: refusing a manifest entry outside the output folder: {entry.path!r}.")
    return entries


def _manifest_entry(item) -> Created:
    if isinstance(item, str):  # a manifest older than the proofs: names only
        return Created(item, "unknown")
    return Created(str(item["path"]), str(item["kind"]), item.get("target", item.get("sha256")))


def _manifest_text(created: list[Created]) -> str:
    """The manifest's JSON (ASCII: a name that is not UTF-8 is kept as its \\udcXX escapes, exactly)."""
    rows = [
        {"path": c.path, "kind": c.kind} | ({"target" if c.kind == "link" else "sha256": c.proof} if c.proof else {})
        for c in created
    ]
    return json.dumps({"version": 2, "created": rows}, indent=1) + "\n"


def _is_ours(out: Path, entry: Created) -> bool:
    """Whether out/entry.path is still the link or file an earlier run made (same target, same bytes)."""
    p = out / entry.path
    if entry.kind == "link":
        return p.is_symlink() and os.readlink(p) == entry.proof
    if entry.kind == "file":
        return p.is_file() and not p.is_symlink() and _sha256(p) == entry.proof
    return False


def _under_symlink(out: Path, rel: str) -> bool:
    parts = Path(rel).parts
    return any((out / Path(*parts[:i])).is_symlink() for i in range(1, len(parts)))


def _blocked(out: Path, wanted: list[Created], previous: list[Created]) -> list[str]:
    """The paths of `wanted` taken by something no earlier run can be proved to have put there."""
    known = {e.path: e for e in previous}
    blocked = []
    for w in wanted:
        p = out / w.path
        if not os.path.lexists(p):
            continue
        prev = known.get(w.path)
        if w.kind == "folder":
            free = prev is not None and p.is_dir() and not p.is_symlink()
        else:
            free = prev is not None and not _under_symlink(out, w.path) and _is_ours(out, prev)
        if not free:
            blocked.append(w.path)
    return blocked


def _refuse_blocked(out: Path, blocked: list[str]) -> None:
    if blocked:
        shown = ", ".join(_printable(b) for b in blocked[:5]) + (" ..." if len(blocked) > 5 else "")
        raise ValueError(
            f"--output {_printable(out)} holds {shown} where this run writes, and no earlier cluster_images run can be "
            "proved to have made them (a file of yours, a changed copy or link, or a manifest from before the proofs); "
            "move them away or choose another --output. Nothing was changed."
        )


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
    _read_manifest(out)  # a corrupt manifest fails now, not after the work


def check_names_free(out: Path, names) -> None:
    """Refuses, before any work, when a file that is not provably an earlier run's sits where this run may write:
    assignments.csv, or any image name of `names` in an existing cluster_<k>/."""
    folders = [e for e in _entries(out, ()) if re.fullmatch(r"cluster_\d+", e) and (out / e).is_dir()]
    wanted = [Created(ASSIGNMENTS, "file")] + [Created(f"{d}/{n}", "file") for d in folders for n in names]
    _refuse_blocked(out, _blocked(out, wanted, _read_manifest(out)))


def remove_previous(out: Path) -> tuple[list[str], list[str]]:
    """Removes what an earlier run created and can prove it created: links that still point where they did,
    files whose bytes still hash as recorded, then folders left empty. Any other file stays and is reported.
    Returns (removed, kept files) paths relative to out."""
    removed, kept = [], []
    for entry in sorted(_read_manifest(out), key=lambda e: -len(Path(e.path).parts)):  # files before their folders
        p = out / entry.path
        if not os.path.lexists(p):
            continue
        if _under_symlink(out, entry.path):
            kept.append(entry.path)
        elif entry.kind in ("folder", "unknown") and p.is_dir() and not p.is_symlink():
            try:
                p.rmdir()  # only if empty: files someone else put there stay
                removed.append(entry.path)
            except OSError:
                logging.info("keeping %s: it holds files this binary did not create", _printable(p))
        elif _is_ours(out, entry):
            p.unlink()  # removes a link itself, never its target
            removed.append(entry.path)
        else:
            kept.append(entry.path)
    for rel in kept:
        logging.warning("keeping %s: not provably created by an earlier cluster_images run", _printable(out / rel))
    (out / MANIFEST).unlink(missing_ok=True)
    return removed, kept


def link_name(path: Path, image_dir: Path) -> str:
    """A flat file name for an image, unique across subfolders: sub/dir/a.png -> sub__dir__a.png."""
    return "__".join(path.relative_to(image_dir).parts)


def _plan(image_dir: Path, paths, labels) -> list[tuple[Path, str]]:
    """(original, cluster_<k>/<flat name>) per image, names made unique within each folder."""
    plan, used = [], set()
    for p, k in zip(paths, labels):
        name = link_name(p, image_dir)
        stem, suffix, i = Path(name).stem, Path(name).suffix, 1
        while f"cluster_{k}/{name}" in used:
            name, i = f"{stem}-{i}{suffix}", i + 1
        used.add(f"cluster_{k}/{name}")
        plan.append((p, f"cluster_{k}/{name}"))
    return plan


def _assignments_bytes(paths, labels) -> bytes:
    """assignments.csv: UTF-8; a path that is not valid UTF-8 keeps its own bytes (surrogateescape)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "cluster"])
    w.writerows((os.path.abspath(p), int(k)) for p, k in zip(paths, labels))
    return buf.getvalue().encode("utf-8", "surrogateescape")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_new(src: Path, dst: Path) -> None:
    """Copies src to dst, which must not exist (never overwrites), with src's times and permissions."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout)
    shutil.copystat(src, dst)


def write_outputs(out: Path, image_dir: Path, paths, labels, *, copy: bool, overwrite: bool) -> dict:
    """cluster_<k>/ links (copies with `copy`), assignments.csv and the manifest; with `overwrite`, an earlier
    run's outputs are removed first (only those it can prove are its own).

    Everything is computed and encoded first, and every path checked free, before anything changes. Then the
    manifest (with each link's target and each copy's hash) is written, so a crash midway stays cleanable, then
    the folder entries, and last assignments.csv, atomically: it exists only once the run has finished.
    """
    plan = _plan(image_dir, paths, labels)
    folders = sorted({f"cluster_{k}" for k in labels}, key=lambda s: int(s.split("_")[1]))
    csv_bytes = _assignments_bytes(paths, labels)
    entries = [Created(f, "folder") for f in folders]
    for src, rel in plan:
        entries.append(Created(rel, "file", _sha256(src)) if copy else Created(rel, "link", os.path.abspath(src)))
    created = [Created(ASSIGNMENTS, "file", hashlib.sha256(csv_bytes).hexdigest()), *entries]
    manifest = _manifest_text(created).encode("ascii")

    # Checked before anything is removed: every path this run writes must be free, or provably an earlier run's.
    _refuse_blocked(out, _blocked(out, created, _read_manifest(out) if overwrite else []))
    removed, kept = remove_previous(out) if overwrite else ([], [])
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / MANIFEST, manifest)
    for folder in folders:
        (out / folder).mkdir(exist_ok=True)  # an earlier run's folder that still holds a user's file is reused
    for src, rel in plan:
        if copy:
            _copy_new(src, out / rel)  # reads the original; its bytes and times stay as they are
        else:
            os.symlink(os.path.abspath(src), out / rel)  # fails rather than replace anything
    _write_atomic(out / ASSIGNMENTS, csv_bytes)
    return {"removed_previous": len(removed), "kept_previous": kept}


def _printable(s) -> str:
    """str(s) with each byte of a non-UTF-8 file name shown as \\xNN (for logs, messages, titles and stdout)."""
    try:
        return os.fsencode(str(s)).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return str(s).encode("utf-8", "backslashreplace").decode("utf-8")


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
    for name in ("dataset", "split", "data_dir", "label_column", "drop_columns", "csv_encoding"):
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
    paths, n_other = find_images(image_dir, cfg.recursive, skip_dirs=(out, wd))
    check_names_free(out, [link_name(p, image_dir) for p in paths])
    common.prepare_workdir(run)

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
        title=f"{cfg.algorithm}, {_printable(image_dir.name)}, K={len(sizes)}",
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
        f"cluster_images {_printable(image_dir.name)}: {len(paths)} images ({len(unreadable)} unreadable) "
        f"-> K={len(sizes)} sizes {sizes.tolist()} silhouette={'n/a' if sil is None else f'{sil:.3f}'} -> {_printable(out)}",
    )


if __name__ == "__main__":
    common.run_main(main)
