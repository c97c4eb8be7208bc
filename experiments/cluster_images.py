r"""Cluster a folder of your own images (PNG, JPEG, ... through Pillow) and sort them into folders.

  python -m experiments.cluster_images --image_dir=~/Pictures/holiday --n_clusters=auto
  python -m experiments.cluster_images --image_dir=photos --color=rgb --features=pca --n_clusters=8 --copy
  python -m experiments.cluster_images --image_dir=photos --features=autoencoder --ae_epochs=50 --n_clusters=8
  python -m experiments.cluster_images --image_dir=photos --dataset=npy:features.npy --n_clusters=8

Every image under --image_dir is read by research.data.images (the loader of --dataset=images:<dir> too):
decoded by Pillow, gray or RGB (--color), resized to --image_size squared, scaled to [0, 1] by its mode's range;
undecodable files or unsupported modes are listed in results.json and skipped. Features: pixels, PCA, the codes
of an autoencoder trained on the images first (--features=autoencoder, its --ae_* flags, the experiments.stages
stage) or of a finished one (--pretrained), or your own rows, one per image in the loader's order, from
--dataset (e.g. a backbone's outputs in a .npy). k-means or a GMM; --n_clusters=auto keeps the K of best
silhouette (plots/choose_k.png). With class sub-folders (or labels in --dataset) ACC/NMI are reported.
Outputs in --output: assignments.csv and cluster_<k>/ (symlinks, or copies with --copy) with a manifest; the
originals are only read, and --overwrite removes only what an earlier run created and can prove it did (a link
to the same target, a copy of the same hash); a file of yours where this run writes is refused by name.
Details: docs/experiments.md#cluster_images.
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

from experiments import common, features, stages
from research import checkpointing, checks, data, plots
from research.cluster import gmm, kmeans, select
from research.data import images
from research.data.images import printable as _printable

FLAGS = flags.FLAGS
flags.DEFINE_string("image_dir", None, "The folder of images to cluster (only read, never changed).")
flags.DEFINE_bool("recursive", True, "Also read the images in subfolders (symlinked folders are not followed).")
common.read_images_whatever_dataset()  # --image_size and --color (experiments/common.py) apply to --image_dir
features.define_flags(kinds=(*features.KINDS, "autoencoder"))
stages.define_autoencoder_flags("ae_")
common.cli.only_when(
    [f"ae_{name}" for name in stages.FIELDS], "features", lambda k: k == "autoencoder", "with --features=autoencoder"
)
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

MANIFEST = ".cluster_images_manifest.json"
ASSIGNMENTS = "assignments.csv"
AUTOENCODER = "autoencoder"  # the workdir's subfolder where --features=autoencoder trains its network
# A run's own files when --output is the workdir: not "somebody else's" content.
_WORKDIR_FILES = {"config.json", "results.json", "metrics.jsonl", "plots", AUTOENCODER}


@dataclasses.dataclass(frozen=True)
class Config:
    """What to read, how to cluster it and where the sorted folders go (the flags of the same names).

    dataset: with --dataset given, the rows to cluster instead of the pixels, one per image file in
    research.data.images' order (every file found, readable or not); None: the images' own pixels."""

    image_dir: Path
    output: Path  # default: the workdir
    dataset: str | None = None
    recursive: bool = True
    image_size: int = images.DEFAULT_SIZE
    color: str = "gray"
    features: features.Config = dataclasses.field(default_factory=features.Config)
    autoencoder: stages.AutoencoderConfig = dataclasses.field(default_factory=stages.AutoencoderConfig)
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
        return images.image_shape(self.image_size, self.color)


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
    if FLAGS.min_retention is not None:
        raise app.UsageError("--min_retention is not used by cluster_images: every image in --image_dir is sorted.")
    if not FLAGS.image_dir:
        raise app.UsageError("--image_dir is required: the folder of images to cluster.")
    image_dir = Path(FLAGS.image_dir).expanduser()
    if not image_dir.is_dir():
        raise ValueError(f"--image_dir={FLAGS.image_dir}: no such folder.")
    given = FLAGS["dataset"].present  # else the images themselves are the data
    run = common.run_config("cluster_images")
    dataset = run.dataset if given else f"images:{image_dir.resolve()}"
    wd = run.workdir if FLAGS.workdir else common.default_workdir("cluster_images", image_dir.name, run.seed)
    run = dataclasses.replace(
        run, dataset=dataset, workdir=wd, flags={**run.flags, "dataset": dataset, "workdir": str(wd)}
    )
    output = Path(FLAGS.output).expanduser() if FLAGS.output else run.workdir
    cfg = common.config_from_flags(
        Config,
        image_dir=image_dir,
        output=output,
        dataset=dataset if given else None,
        features=features.config_from_flags(),
        autoencoder=stages.autoencoder_config("ae_"),
        n_clusters=parse_n_clusters(FLAGS.n_clusters),
    )
    if cfg.n_clusters == "auto" and not 2 <= cfg.k_min <= cfg.k_max:
        raise ValueError(f"need 2 <= --k_min <= --k_max, got k_min={cfg.k_min}, k_max={cfg.k_max}.")
    sort_images(run, cfg)


def read_rows(run: common.RunConfig, cfg: Config, paths):
    """What to cluster and what to draw: (rows [n, d], the paths of the rows, labels [n] or None, image_shape of
    the rows or None, pixels of the readable images [m, size*size(*3)], their indices among the rows, the
    unreadable files). The rows are the readable images' pixels, or with cfg.dataset that dataset's rows, one per
    image file found (unreadable ones included), checked to be as many as the files."""
    pixels, read, unreadable = images.load_folder(paths, cfg.image_size, cfg.color)
    if cfg.dataset is None:
        y, _ = images.labels_from_folders(read, cfg.image_dir)
        return pixels, read, y, cfg.image_shape, pixels, np.arange(len(read)), unreadable
    ds = run.load()
    if len(ds.x) != len(paths):
        raise ValueError(
            f"--dataset={cfg.dataset} has {len(ds.x)} rows but --image_dir holds {len(paths)} image files; it needs "
            "one row per image file, in the order of research.data.images.find_images (sorted relative paths, "
            "compared folder by folder; docs/data.md#folders-of-images)."
        )
    y = ds.y if ds.y is not None else images.labels_from_folders(paths, cfg.image_dir)[0]
    index = {p: i for i, p in enumerate(paths)}
    shown = np.array([index[p] for p in read], np.int64)
    return ds.x, paths, y, ds.image_shape, pixels, shown, unreadable


def codes_of_autoencoder(run: common.RunConfig, cfg: Config, rows, y, image_shape) -> features.Config:
    """--features=autoencoder: trains the autoencoder of cfg.autoencoder on the rows into <workdir>/autoencoder
    (the experiments.stages stage; reused there when one with these settings and inputs is finished) and returns
    the features Config that extracts its codes."""
    ae_dir = run.workdir / AUTOENCODER
    model_dir = ae_dir / "model"
    if model_dir.is_dir():  # one of other inputs (another --image_size, --color or --dataset) is no use
        spec = checkpointing.load_config(model_dir)
        if spec.get("input_dim") != rows.shape[1] or spec.get("dataset") != run.dataset:
            if not run.overwrite:
                raise ValueError(
                    f"{ae_dir} holds an autoencoder trained on other inputs ({spec.get('dataset')}, "
                    f"{spec.get('input_dim')} features); pass --overwrite to replace it, or use another --workdir."
                )
            common.remove_run_outputs(ae_dir)
    ds = data.Dataset(rows, y, image_shape, run.dataset)
    stages.obtain_autoencoder(run, ds, cfg.autoencoder)
    return dataclasses.replace(cfg.features, pretrained=str(ae_dir))


def sort_images(run: common.RunConfig, cfg: Config) -> None:
    """Reads cfg.image_dir, clusters the images and sorts them into cfg.output; writes the run's outputs."""
    if cfg.features.kind == "pretrained" and cfg.dataset is None:  # fails now, before anything is written
        features.load_encoder(cfg.features.pretrained, input_dim=int(np.prod(cfg.image_shape)))
    image_dir, out, wd = cfg.image_dir, cfg.output, run.workdir
    if out.resolve() == image_dir.resolve():
        raise ValueError("--output must not be the image folder itself; the originals' folder is only read.")
    check_output(out, _WORKDIR_FILES if out.resolve() == wd.resolve() else (), cfg.overwrite)
    paths, n_other = images.find_images(image_dir, cfg.recursive, skip_dirs=(out, wd))
    check_names_free(out, [link_name(p, image_dir) for p in paths])
    common.prepare_workdir(run)

    rows, paths, y, row_shape, pixels, shown, unreadable = read_rows(run, cfg, paths)
    logging.info("%d images read, %d unreadable, %d other files ignored", len(pixels), len(unreadable), n_other)
    if len(rows) < 2:
        raise ValueError(f"{_printable(image_dir)}: {len(rows)} readable images; clustering needs at least 2.")
    fcfg = cfg.features
    if fcfg.kind == "autoencoder":
        fcfg = codes_of_autoencoder(run, cfg, rows, y, row_shape)
    (z,), _, info = features.extract(fcfg, run.key(), rows, dataset=run.dataset)

    key = run.key()
    scores = None
    if cfg.n_clusters == "auto":
        k, labels, scores = choose_k(key, z, cfg, run.seed)
        plot_silhouettes(
            scores, k, wd / "plots" / "choose_k.png", f"{_printable(image_dir.name)}, {features.name(fcfg)}"
        )
    else:
        k = checks.check_n_clusters(cfg.n_clusters, len(z), "--n_clusters")
        labels = cluster(key, z, k, cfg)
    labels = by_size(labels)
    sizes = np.bincount(labels)
    written = write_outputs(out, image_dir, paths, labels, copy=cfg.copy, overwrite=cfg.overwrite)

    if len(shown):
        plots.cluster_grid(
            pixels,
            labels[shown],
            cfg.image_shape,
            wd / "plots" / "clusters.png",
            seed=run.seed,
            cmap="gray",
            y_n=None if y is None else y[shown],
            title=f"{cfg.algorithm}, {_printable(image_dir.name)}, {features.name(fcfg)}, K={len(sizes)}",
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
        **({"dataset": cfg.dataset} if cfg.dataset else {}),
        **info,
        "algorithm": cfg.algorithm,
        "n_clusters": len(sizes),
        "cluster_sizes": sizes,
        "silhouette": sil,
        "silhouette_by_k": scores,
        **common.label_metrics(y, labels),
        "linked": "copy" if cfg.copy else "symlink",
        "seed": run.seed,
        **written,
    }
    scored = f" {common.score_text(results)}" if y is not None else ""
    common.finish(
        run,
        results,
        f"cluster_images {_printable(image_dir.name)}: {len(paths)} images ({len(unreadable)} unreadable) "
        f"-> K={len(sizes)} sizes {sizes.tolist()} silhouette={'n/a' if sil is None else f'{sil:.3f}'}{scored} "
        f"-> {_printable(out)}",
    )


def plot_silhouettes(scores: dict, k: int, path: Path, what: str) -> None:
    """plots/choose_k.png of --n_clusters=auto: the mean silhouette by K (NaN where undefined), the K kept named."""
    ks = sorted(scores)
    values = [np.nan if scores[j] is None else scores[j] for j in ks]
    plots.k_curves(ks, {"mean silhouette": values}, path, title=f"{what}: K={k} has the best silhouette")


if __name__ == "__main__":
    common.run_main(main)
