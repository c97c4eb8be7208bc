"""Flags and chores shared by every experiment binary.

A binary defines its own flags and, in main() only, turns them into frozen configs:
`run = common.run_config("kmeans")` (the shared flags and the workdir), its own dataclass for the rest.
Everything below main() takes those configs, never FLAGS:

    run = common.run_config("kmeans")
    wd = common.prepare_workdir(run)          # config.json; refuses a finished run without --overwrite
    ds = common.load_dataset(run)             # and plots/preview.png when the data are images
    ...                                       # fit with run.key()
    common.finish(run, results, summary)      # results.json and the one summary line

Binaries end with `common.run_main(main)`: a user error is one `error:` line and exit status 2 (research.cli).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np
from absl import flags, logging

from research import checkpointing, cli, data, distributed, metrics, plots, runlog
from research.data import images, tabular

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "dataset",
    "digits",
    "Dataset: mnist, fashion_mnist, kmnist, usps, cifar10, stl10, 20newsgroups (downloaded once, checksummed, "
    "cached; docs/data.md), digits, idx:<dir>, npy:<path>, csv:<path> or images:<dir> (a folder of PNG/JPEG/... "
    "files, labels from its class sub-folders). digits is bundled and works offline; blobs (synthetic "
    "Gaussian blobs) is drawn as the --blobs_* flags say.",
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
flags.DEFINE_string(
    "csv_encoding", "utf-8", "csv: the file's text encoding (e.g. latin-1, cp1252); nothing is guessed."
)
flags.DEFINE_integer(
    "image_size",
    images.DEFAULT_SIZE,
    "images:<dir> (and cluster_images): every image is resized to image_size x image_size pixels.",
)
flags.DEFINE_enum(
    "color",
    "gray",
    list(images.COLORS),
    "images:<dir> (and cluster_images): convert the images to gray (1 channel, image shape (H, W)) or RGB (3).",
)
cli.at_least("image_size", 1)
_IMAGES_WHATEVER_DATASET = []  # holds True in a binary that reads images whatever --dataset is (cluster_images)
cli.only_when(
    ["image_size", "color"],
    "dataset",
    lambda d: bool(_IMAGES_WHATEVER_DATASET) or str(d).startswith("images:"),
    "with --dataset=images:<dir>",
)
flags.DEFINE_bool("overwrite", False, "Replace the outputs of a finished run in --workdir.")
flags.DEFINE_integer(
    "num_devices",
    None,
    "The devices a run is split over, data-parallel (the first N visible ones): each batch of the training "
    "(autoencoder, DEC, IDEC; --batch_size stays the global batch), and the rows of the kmeans and gmm fits. "
    "Default: all visible devices. docs/scaling.md.",
)
cli.at_least("num_devices", 1)
flags.DEFINE_string(
    "coordinator_address",
    None,
    "Many processes, one run (jax.distributed): host:port of process 0, the same in every process (e.g. "
    "127.0.0.1:12355 on one machine), or 'auto' to let JAX read the cluster's environment (SLURM, Open MPI, "
    "Cloud TPU). Each process holds its own rows; process 0 writes the outputs. Binaries: kmeans, gmm, dec, "
    "autoencoder. docs/scaling.md.",
)
flags.DEFINE_integer("num_processes", None, "With --coordinator_address host:port: how many processes run.")
flags.DEFINE_integer(
    "process_id", None, "With --coordinator_address host:port: this process's index, 0 to --num_processes - 1."
)
flags.DEFINE_integer(
    "distributed_timeout",
    120,
    "With --coordinator_address: seconds to wait for every process to join, and after which a process that "
    "stopped answering counts as dead (the others then end, naming it).",
)
cli.at_least("num_processes", 1)
cli.at_least("process_id", 0)
cli.at_least("distributed_timeout", 1)
cli.only_when(
    ["num_processes", "process_id"],
    "coordinator_address",
    lambda a: a is not None and a != distributed.AUTO,
    "with --coordinator_address=<host:port> ('auto' reads them from the cluster)",
)
# The binaries that run over several processes (the experiments they record: dec runs as "idec" with
# --mode=idec); the others refuse --coordinator_address.
MULTI_PROCESS = ("kmeans", "gmm", "dec", "idec", "autoencoder")
flags.DEFINE_float(
    "min_retention",
    None,
    "Imbalanced subset (DEC paper, section 5.2): keep each sample of the k-th of C classes with probability "
    "r + (1 - r) k / (C - 1), r this value; the draw depends on --seed only. Default: all samples.",
)
cli.check("min_retention", lambda r: 0 < r <= 1, "must be in (0, 1]: the retention rate of the smallest class")
flags.DEFINE_integer("blobs_n_samples", 500, "blobs: the number of points, shared out evenly among the blobs.")
flags.DEFINE_integer("blobs_centers", 3, "blobs: the number of Gaussian blobs (the true classes).")
flags.DEFINE_float("blobs_cluster_std", 1.0, "blobs: each blob's standard deviation; centres lie in [-10, 10]^dim.")
flags.DEFINE_integer("blobs_dim", 2, "blobs: the number of features (2 draws in the plane).")
flags.DEFINE_integer(
    "blobs_seed", 0, "blobs: the seed of the draw, apart from --seed: runs of several seeds cluster the same points."
)
for _name in ("blobs_n_samples", "blobs_centers", "blobs_dim"):
    cli.at_least(_name, 1)
cli.at_least("blobs_seed", 0)
cli.positive_finite("blobs_cluster_std")
BLOBS_FLAGS = ("blobs_n_samples", "blobs_centers", "blobs_cluster_std", "blobs_dim", "blobs_seed")  # data.Blobs order
cli.only_when(list(BLOBS_FLAGS), "dataset", lambda name: name == "blobs", "with --dataset=blobs")

# What the runs of the binaries write into their workdir, and so what --overwrite may remove (nothing else).
RUN_OUTPUTS = (
    "results.json",
    "config.json",
    "metrics.jsonl",
    "labels.npy",
    "kmeans_history.npy",
    tabular.STATE_FILE,
    "embedding.npy",
    "winners.npy",
    "decision_scores.npy",
)
RUN_FOLDERS = ("ckpt", "model", "train_ckpt", "tensorboard")


def run_main(main) -> None:
    """`cli.run_main(main)`, this process first joined to the run's others when --coordinator_address is
    given (jax.distributed, before any JAX work)."""

    def joined(argv):
        cluster = cluster_from_flags()
        if cluster is not None:
            distributed.initialize(cluster)
        return main(argv)

    cli.run_main(joined)


def cluster_from_flags() -> distributed.Cluster | None:
    """The --coordinator_address, --num_processes, --process_id and --distributed_timeout flags as a Cluster
    (None without --coordinator_address: one process). A config builder: reads FLAGS."""
    if FLAGS.coordinator_address is None:
        return None
    return distributed.Cluster(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, FLAGS.distributed_timeout
    )


def read_images_whatever_dataset() -> None:
    """Call at the import of a binary that reads images whatever --dataset is (cluster_images, from --image_dir):
    its --image_size and --color then always apply instead of only with --dataset=images:<dir>."""
    _IMAGES_WHATEVER_DATASET.append(True)


def validate_n_clusters_flag() -> None:
    """Refuses --n_clusters under 2 when the flags are parsed (None, its default, means the class count); call
    right after a binary defines it. 0 once silently meant the default."""
    cli.at_least("n_clusters", 2, "leave it unset for the number of classes")


_COMMON_MODULE = __name__
_STARTED = time.perf_counter()  # imported first thing by every binary: its wall time counts from here


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What every run shares: the experiment, its data, its seed and its workdir.

    `flags` holds every flag value of the binary (written to config.json); nothing reads it to decide anything.
    """

    experiment: str
    workdir: Path
    dataset: str = "digits"
    split: str = "all"
    seed: int = 0
    data_dir: str | None = None
    label_column: str | None = None
    drop_columns: tuple[str, ...] = ()
    csv_encoding: str = "utf-8"
    image_size: int = images.DEFAULT_SIZE
    color: str = "gray"
    min_retention: float | None = None
    blobs: data.Blobs | None = None  # --dataset=blobs: its --blobs_* flags (None: the defaults)
    overwrite: bool = False
    num_devices: int | None = None  # training's data-parallel devices (None: all visible)
    flags: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def key(self):
        """The root key of the run: jax.random.key(seed)."""
        return jax.random.key(self.seed)

    def load(self, split: str | None = None) -> data.Dataset:
        """This run's dataset (another `split` of it when given), without the imbalanced subsetting."""
        return data.load(
            self.dataset,
            split or self.split,
            self.data_dir,
            label_column=self.label_column,
            drop_columns=self.drop_columns,
            csv_encoding=self.csv_encoding,
            **self.image_options(),
            blobs=self.blobs,
        )

    def image_options(self) -> dict:
        """data.load's image_size and color for an images:<dir> dataset; nothing for the others."""
        return {"image_size": self.image_size, "color": self.color} if self.dataset.startswith("images:") else {}


def dataset_tag(name: str) -> str:
    """A folder-safe short name for a dataset spec, e.g. 'csv:/data/my table.csv' -> 'csv-my_table'."""
    kind, _, path = name.partition(":")
    if not path:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", kind)
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path.rstrip("/")).stem or "data")


def default_workdir(experiment: str, dataset: str, seed: int, variant: str = "", min_retention=None) -> Path:
    """checkpoints/<experiment>/<dataset>[-rmin<r>][-<variant>]-seed<seed> (variant: e.g. the architecture)."""
    variant = "-" + re.sub(r"[^A-Za-z0-9_.-]", "_", variant) if variant else ""
    subset = f"-rmin{min_retention:g}" if min_retention is not None else ""
    return Path("checkpoints") / experiment / f"{dataset_tag(dataset)}{subset}{variant}-seed{seed}"


def experiment_flags(values: flags.FlagValues) -> dict:
    """The flags of `values` defined by experiments/ (this binary's and the shared ones), absl's own and aliases
    left out: what config.json records."""
    out = {}
    for module, fl in values.flags_by_module_dict().items():
        if (
            module in (_COMMON_MODULE, sys.argv[0], "__main__")
            or module.startswith("experiments.")
            or ("/experiments/" in module)
        ):
            out.update({f.name: f.value for f in fl if not type(f).__name__.endswith("FlagAlias")})
    return dict(sorted(out.items()))


def run_config(experiment: str, variant: str = "") -> RunConfig:
    """The shared flags as a RunConfig (call from main() only). Workdir: --workdir, else the default one."""
    if jax.process_count() > 1 and experiment not in MULTI_PROCESS:
        raise ValueError(
            f"--coordinator_address: {experiment} runs in one process; the binaries that run over several are "
            "kmeans, gmm, dec (all modes) and autoencoder (docs/scaling.md)."
        )
    if FLAGS.num_devices is not None and FLAGS.num_devices > jax.device_count():
        raise ValueError(
            f"--num_devices={FLAGS.num_devices} asks for more devices than the {jax.device_count()} visible; give at "
            f"most {jax.device_count()} (default: all of them)."
        )
    wd = (
        Path(FLAGS.workdir)
        if FLAGS.workdir
        else default_workdir(experiment, FLAGS.dataset, FLAGS.seed, variant, FLAGS.min_retention)
    )
    return RunConfig(
        experiment=experiment,
        workdir=wd,
        dataset=FLAGS.dataset,
        split=FLAGS.split,
        seed=FLAGS.seed,
        data_dir=FLAGS.data_dir,
        label_column=FLAGS.label_column,
        drop_columns=tuple(FLAGS.drop_columns),
        csv_encoding=FLAGS.csv_encoding,
        image_size=FLAGS.image_size,
        color=FLAGS.color,
        min_retention=FLAGS.min_retention,
        blobs=data.Blobs(*(FLAGS[name].value for name in BLOBS_FLAGS)) if FLAGS.dataset == "blobs" else None,
        overwrite=FLAGS.overwrite,
        num_devices=FLAGS.num_devices,
        flags=experiment_flags(FLAGS),
    )


def config_from_flags(cls, **given):
    """The frozen dataclass `cls`, each field from the flag of its name unless `given` (call from main() only)."""
    return cls(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(cls) if f.name not in given}, **given)


def keyword_args(fn, cfg) -> dict:
    """The fields of the dataclass `cfg` that `fn` (e.g. a library's fit) takes as keyword-only arguments."""
    taken = {p.name for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY}
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name in taken}


def prepare_workdir(run: RunConfig) -> Path:
    """Creates the run's workdir and writes config.json; refuses to replace a finished run unless --overwrite.

    With --overwrite, a finished run, or an unfinished one with other settings, is removed first (only what a
    run writes: RUN_OUTPUTS, RUN_FOLDERS and the plots' .png files), so the new run starts afresh. An unfinished
    run with the same settings resumes.
    """
    wd = run.workdir
    if wd.exists() and not wd.is_dir():
        raise ValueError(f"--workdir={wd} is a file, not a folder; choose another --workdir.")
    finished = (wd / "results.json").exists()
    if finished and not run.overwrite:
        raise ValueError(
            f"{wd} already holds a finished run (results.json). Pass --overwrite to replace its outputs, "
            "or choose another --workdir."
        )
    if run.overwrite and (finished or _other_settings(wd, run)) and runlog.is_writer():
        remove_run_outputs(wd)
    distributed.barrier("workdir checked")  # every process has looked before process 0 writes
    if runlog.is_writer():
        wd.mkdir(parents=True, exist_ok=True)
    runlog.write_json(wd / "config.json", {"experiment": run.experiment, **run.flags})
    distributed.barrier("workdir ready")
    logging.info("workdir: %s", wd)
    return wd


def finished_alike(run: RunConfig) -> bool:
    """Whether run.workdir holds a finished run (results.json) whose config.json records the same settings
    (--overwrite, --workdir and --tensorboard aside): a stage a pipeline may reuse instead of running again."""
    wd = run.workdir
    return (wd / "results.json").is_file() and (wd / "config.json").is_file() and not _other_settings(wd, run)


def _other_settings(wd: Path, run: RunConfig) -> bool:
    """Whether wd/config.json records a run of other settings (--overwrite, --workdir, --tensorboard aside)."""
    if not (wd / "config.json").is_file():
        return False
    try:
        stored = runlog.read_json(wd / "config.json")
    except ValueError:
        return True  # unreadable: nothing to resume from
    current = {"experiment": run.experiment, **run.flags}
    ignored = {"overwrite", "workdir", "tensorboard"} | distributed.PLACEMENT_FLAGS
    return {k: v for k, v in stored.items() if k not in ignored} != {
        k: v for k, v in current.items() if k not in ignored
    }


def remove_run_outputs(wd: Path) -> None:
    """Deletes what a run wrote into wd (RUN_OUTPUTS, RUN_FOLDERS, plots/*.png); a user's other files stay."""
    for name in RUN_OUTPUTS:
        (wd / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (wd / name).is_dir():
            shutil.rmtree(wd / name)
    plots_dir = wd / "plots"
    if plots_dir.is_dir():
        for png in plots_dir.glob("*.png"):
            png.unlink()
        if not any(plots_dir.iterdir()):
            plots_dir.rmdir()
    logging.info("--overwrite: removed the earlier run's outputs from %s", wd)


def load_dataset(run: RunConfig, mmap: bool = False) -> data.Dataset:
    """The run's dataset and split (its imbalanced subset with --min_retention); `mmap`: a float32 .npy stays
    memory-mapped and uint8 images stay uint8 (`data.PixelRows`), read where used (streaming algorithms, the
    processes of a multi-process run)."""
    ds = data.load(
        run.dataset,
        run.split,
        run.data_dir,
        label_column=run.label_column,
        drop_columns=run.drop_columns,
        csv_encoding=run.csv_encoding,
        mmap=mmap,
        **run.image_options(),
        blobs=run.blobs,
    )
    if run.min_retention is not None:
        ds = data.imbalanced(ds, run.min_retention, seed=run.seed)
    if ds.table is not None and run.workdir.is_dir():  # what predicting on new tables needs (experiments.predict)
        runlog.write_json(run.workdir / tabular.STATE_FILE, ds.table)
    if ds.image_shape is not None and runlog.is_writer():
        save_preview(run, ds)
    logging.info("dataset %s/%s: x %s, labels %s", ds.name, run.split, ds.x.shape, ds.y is not None)
    return ds


def save_preview(run: RunConfig, ds: data.Dataset) -> None:
    """plots/preview.png in the run's workdir: 10 x 10 images of the dataset drawn at random (--seed)."""
    n = min(100, len(ds.x))
    plots.image_preview(
        ds.x,
        ds.image_shape,
        run.workdir / "plots" / "preview.png",
        seed=run.seed,
        title=f"{ds.name}/{run.split}: {n} random samples of {len(ds.x)}",
    )


def shard_rows(run: RunConfig, z):
    """(z_g, n, mesh): z [n, ...] split by rows over the run's devices (--num_devices; every device of every
    process in a multi-process run) on an explicit mesh, built from this process's rows only
    (`distributed.global_rows`: a memory-mapped z is read only there; the end padded to a multiple of the
    devices, so the fits take `n_samples=n`), z itself and None on one device. Fit under
    `distributed.using(mesh)`."""
    mesh = distributed.data_mesh(run.num_devices, explicit=True)
    return *distributed.global_rows(z, mesh), mesh


def label_metrics(y, labels) -> dict:
    """acc/nmi/ari/purity when the dataset has labels, else nothing."""
    return {} if y is None else metrics.evaluate(y, labels)


def n_clusters(ds: data.Dataset, k: int | None) -> int:
    """K: `k` when given (at least 2), else the number of classes when the labels are known, else 10."""
    if k is None:
        return len(np.unique(ds.y)) if ds.y is not None else 10
    if isinstance(k, bool) or int(k) != k or k < 2:
        raise ValueError(f"--n_clusters must be a whole number >= 2, got {k!r}; leave it unset for the class count.")
    return int(k)


def run_fields(run: RunConfig, ds: data.Dataset) -> dict:
    """The first entries of every results.json: dataset, split, seed, n_samples (and the imbalanced subset's r)."""
    return {
        "dataset": ds.name,
        "split": run.split,
        "seed": run.seed,
        "n_samples": int(ds.x.shape[0]),
        **({} if run.min_retention is None else {"min_retention": run.min_retention}),
    }


def save_clustering(run: RunConfig, ds: data.Dataset, labels, params: dict, config: dict, title: str) -> dict:
    """What every clustering binary leaves: labels.npy, ckpt/ (`params` with `config`, Orbax) and, for
    images, plots/clusters.png. Returns the run's first results: `run_fields` and the label metrics (when the
    labels are known)."""
    wd = run.workdir
    labels = np.asarray(labels)
    runlog.save_array(wd / "labels.npy", labels)
    checkpointing.save_pytree(wd / "ckpt", params, config=config, overwrite=run.overwrite)
    if ds.image_shape is not None and runlog.is_writer():
        plots.cluster_grid(
            ds.x, labels, ds.image_shape, wd / "plots" / "clusters.png", seed=run.seed, y_n=ds.y, title=title
        )
    return run_fields(run, ds) | label_metrics(ds.y, labels)


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


def finish(run: RunConfig, results: dict, summary: str, started: float | None = None) -> None:
    """Writes results.json (with the process's wall time, the devices and processes it ran on and the versions)
    and prints the run's one summary line. `started`: the time.perf_counter() the wall time counts from, for a
    stage of a longer process (default: the process's start)."""
    wd = run.workdir
    wall = round(time.perf_counter() - (_STARTED if started is None else started), 1)
    runlog.write_json(
        wd / "results.json",
        {**results, "wall_seconds_this_invocation": wall, **distributed.describe(), "versions": runlog.versions()},
    )
    if runlog.is_writer():
        print(summary, flush=True)
