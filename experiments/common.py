"""Flags and chores shared by every experiment binary.

A binary imports this module, defines its own flags, and in main() calls
`prepare_workdir(name)`, `load_dataset()` and `root_key()`; it ends with
`finish(workdir, results, summary)`.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import jax
import numpy as np
from absl import flags, logging

from research import checkpointing, data, metrics, plots
from research import logging as runlog

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "dataset",
    "digits",
    "Dataset: mnist, digits, idx:<dir>, npy:<path> or csv:<path>. digits is bundled and works offline.",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Where to look for dataset files first (e.g. ../shared/datasets); then $JAXCLUSTER_DATA, then the cache.",
)
flags.DEFINE_enum(
    "split", "all", ["train", "test", "all"], "Dataset split; `all` is what DEC and its successors report on."
)
flags.DEFINE_integer("seed", 0, "The one seed: every random choice of the run derives from it.")
flags.DEFINE_string("workdir", None, "Output folder. Default: checkpoints/<experiment>/<dataset>-seed<seed>.")
flags.DEFINE_string("label_column", None, "csv: the column holding true labels, used only for evaluation.")
flags.DEFINE_list("drop_columns", [], "csv: identifier columns that must not become features.")
flags.DEFINE_bool("overwrite", False, "Replace the outputs of a finished run in --workdir.")
flags.DEFINE_float(
    "min_retention",
    None,
    "Imbalanced subset (DEC paper, section 5.2): keep each sample of the k-th of C classes with probability "
    "r + (1 - r) k / (C - 1), r this value; the draw depends on --seed only. Default: all samples.",
)

_COMMON_MODULE = __name__
_STARTED = time.perf_counter()  # imported first thing by every binary: its wall time counts from here


def dataset_tag(name: str) -> str:
    """A folder-safe short name for a dataset spec, e.g. 'csv:/data/my table.csv' -> 'csv-my_table'."""
    kind, _, path = name.partition(":")
    if not path:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", kind)
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path.rstrip("/")).stem or "data")


def workdir(experiment: str, variant: str = "") -> Path:
    """--workdir, or checkpoints/<experiment>/<dataset>[-<variant>]-seed<seed> (variant: e.g. the architecture)."""
    if FLAGS.workdir:
        return Path(FLAGS.workdir)
    variant = "-" + re.sub(r"[^A-Za-z0-9_.-]", "_", variant) if variant else ""
    subset = f"-rmin{FLAGS.min_retention:g}" if FLAGS.min_retention is not None else ""
    return Path("checkpoints") / experiment / f"{dataset_tag(FLAGS.dataset)}{subset}{variant}-seed{FLAGS.seed}"


def flag_values() -> dict:
    """The flags defined by experiments/ (this binary's and the shared ones), absl's own left out."""
    out = {}
    for module, fl in FLAGS.flags_by_module_dict().items():
        if (
            module in (_COMMON_MODULE, sys.argv[0], "__main__")
            or module.startswith("experiments.")
            or ("/experiments/" in module)
        ):
            out.update({f.name: f.value for f in fl})
    return dict(sorted(out.items()))


def prepare_workdir(experiment: str, variant: str = "") -> Path:
    """Creates the run's workdir and writes config.json; refuses to replace a finished run unless --overwrite."""
    wd = workdir(experiment, variant)
    if (wd / "results.json").exists() and not FLAGS.overwrite:
        raise SystemExit(
            f"{wd} already holds a finished run (results.json). Pass --overwrite to replace its outputs, "
            "or choose another --workdir."
        )
    wd.mkdir(parents=True, exist_ok=True)
    runlog.write_json(wd / "config.json", {"experiment": experiment, **flag_values()})
    logging.info("workdir: %s", wd)
    return wd


def load_dataset(mmap: bool = False) -> data.Dataset:
    """The --dataset/--split; `mmap`: a float32 .npy stays memory-mapped (for streaming algorithms)."""
    ds = data.load(
        FLAGS.dataset,
        FLAGS.split,
        FLAGS.data_dir,
        label_column=FLAGS.label_column,
        drop_columns=tuple(FLAGS.drop_columns),
        mmap=mmap,
    )
    if FLAGS.min_retention is not None:
        ds = data.imbalanced(ds, FLAGS.min_retention, seed=FLAGS.seed)
    logging.info("dataset %s/%s: x %s, labels %s", ds.name, FLAGS.split, ds.x.shape, ds.y is not None)
    return ds


def root_key():
    return jax.random.key(FLAGS.seed)


def label_metrics(y, labels) -> dict:
    """acc/nmi/ari/purity when the dataset has labels, else nothing."""
    return {} if y is None else metrics.evaluate(y, labels)


def n_clusters(ds: data.Dataset, k: int | None) -> int:
    """K: `k` when given, else the number of classes when the labels are known, else 10."""
    return k or (len(np.unique(ds.y)) if ds.y is not None else 10)


def save_clustering(wd: Path, ds: data.Dataset, labels, params: dict, config: dict, title: str) -> dict:
    """What every clustering binary leaves: labels.npy, ckpt/ (`params` with `config`, Orbax) and, for
    images, plots/clusters.png. Returns the run's first results: dataset, split, seed, n_samples and the
    label metrics (when the labels are known)."""
    labels = np.asarray(labels)
    np.save(wd / "labels.npy", labels)
    checkpointing.save_pytree(wd / "ckpt", params, config=config, overwrite=FLAGS.overwrite)
    if ds.image_shape is not None:
        plots.cluster_grid(
            ds.x, labels, ds.image_shape, wd / "plots" / "clusters.png", seed=FLAGS.seed, y_n=ds.y, title=title
        )
    return {
        "dataset": ds.name,
        "split": FLAGS.split,
        "seed": FLAGS.seed,
        "n_samples": int(ds.x.shape[0]),
        **({} if FLAGS.min_retention is None else {"min_retention": FLAGS.min_retention}),
        **label_metrics(ds.y, labels),
    }


def fit_fields(res, timed) -> dict:
    """The results.json entries every fitted clustering reports: iterations, convergence, fit and compile
    seconds, and for k-means-like results the inertia (best and per restart)."""
    out = {}
    if hasattr(res, "inertia_per_init"):
        out = {"inertia": float(res.inertia), "inertia_per_init": np.asarray(res.inertia_per_init).tolist()}
    return out | {
        "n_iter": int(res.n_iter),
        "converged": bool(res.converged),
        "fit_seconds": timed.run_seconds,
        "compile_seconds": timed.compile_seconds,
    }


def score_text(results: dict) -> str:
    """'acc=0.8123 nmi=0.7456 ari=0.6789', or 'no labels'."""
    return " ".join(f"{m}={results[m]:.4f}" for m in ("acc", "nmi", "ari") if m in results) or "no labels"


def finish(wd: Path, results: dict, summary: str) -> None:
    """Writes results.json (with the process's wall time and the versions) and prints the run's one summary line."""
    wall = round(time.perf_counter() - _STARTED, 1)
    runlog.write_json(
        wd / "results.json", {**results, "wall_seconds_this_invocation": wall, "versions": runlog.versions()}
    )
    print(summary, flush=True)
