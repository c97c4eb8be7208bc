r"""Regenerates a paper's table from runs of the experiment binaries: runs what is missing, reuses what is done.

  python -m experiments.reproduce --table=dec_mnist --seeds=0,1,2,3,4   # MNIST-70k, DEC paper Table 2 + IDEC
  python -m experiments.reproduce --table=dec_mnist --quick             # the same pipeline on digits, ~1 minute
  python -m experiments.reproduce --table=dec_imbalanced                # DEC paper section 5.2
  python -m experiments.reproduce --table=dec_num_clusters              # DEC paper section 5.3 (K = 3..20)
  python -m experiments.reproduce --table=dec_num_clusters --figure_from_csv  # its figure, from its CSV alone
  python -m experiments.reproduce --table=manifold_mnist --seeds=0,1,2  # beyond DEC: N2D-style manifold clustering

The manifold table's top row, the best recipe, is one run of experiments.pipeline with configs/best.flags.

Every cell is a run of a binary in <root>/<experiment>/<name>-seed<s>: a finished one is read, any other is
(re)started and resumes from its checkpoints; a seed's rows share one pretrained autoencoder. Tables (mean ±
std over seeds, wall time, the published figure beside each row): <out>/<table>[_quick].{md,csv}; each run's
output in <workdir>.log. Hours and what reuses what: docs/reproducing.md.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from absl import flags, logging

from experiments import references
from research import cli, report

FLAGS = flags.FLAGS
TABLES = ("dec_mnist", "dec_imbalanced", "dec_num_clusters", "manifold_mnist")
flags.DEFINE_enum("table", "dec_mnist", list(TABLES), "Which table.")
flags.DEFINE_bool("quick", False, "The same pipeline on digits with a small autoencoder: a check in a minute.")
flags.DEFINE_list("seeds", None, "Seeds. Default: 0-4 (MNIST), 0-1 (--quick).")
flags.DEFINE_string("root", "checkpoints", "Root of the runs' workdirs.")
flags.DEFINE_string("out", "results", "Folder of the tables.")
flags.DEFINE_string("data_dir", None, "Passed to every binary (else they look in $JAXCLUSTER_DATA and the cache).")
flags.DEFINE_list("min_retention", ["0.1", "0.3", "0.5", "0.7", "0.9"], "dec_imbalanced: the r_min values.")
flags.DEFINE_integer("jobs", None, "Seeds run side by side. Default: 2 with --quick, else 1.")
flags.DEFINE_list("ks", [str(k) for k in range(3, 21)], "dec_num_clusters: the K values.")
flags.DEFINE_bool(
    "figure_from_csv",
    False,
    "dec_num_clusters: redraw <out>/<table>.png from the sweep's <out>/<table>.csv alone, running nothing.",
)
cli.only_when(["figure_from_csv"], "table", lambda t: t == "dec_num_clusters", "with --table=dec_num_clusters")
cli.only_when(
    ["seeds", "ks", "jobs", "root", "data_dir"], "figure_from_csv", lambda v: not v, "to runs (not --figure_from_csv)"
)
cli.list_of("seeds", int, lambda s: s >= 0, ">= 0, e.g. 0,1,2")
cli.list_of("ks", int, lambda k: k >= 2, ">= 2, e.g. 3,4,5", nonempty=True)
cli.list_of("min_retention", float, lambda r: 0 < r <= 1, "in (0, 1]", nonempty=True)
cli.at_least("jobs", 1)

METRICS = ("acc", "nmi", "ari")


class Row(NamedTuple):
    """One row of a table: `experiment` run with `args` (+ the seed's autoencoder when `pretrained`)."""

    name: str
    experiment: str
    tag: str  # the workdir name before -seed<s>
    args: tuple
    pretrained: bool = False
    published: str = "-"
    augmented: bool = False  # built on the setup's autoencoder pretrained on moved and turned images


class Setup(NamedTuple):
    """One pipeline: the dataset, each binary's flags, and the workdir names (<tag>-seed<s>)."""

    dataset: str
    tag: str  # the rows built on the autoencoder
    kmeans_tag: str
    ae_tag: str
    ae_args: tuple
    kmeans_args: tuple
    dec_args: tuple
    idec_args: tuple
    tsne_args: tuple = ()
    manifold_args: tuple = ()
    aug_tag: str = ""  # the rows built on the autoencoder pretrained with augmentation (DEC-DA's)
    aug_ae_tag: str = ""
    aug_ae_args: tuple = ()
    best_args: tuple = ()  # experiments.pipeline: the best recipe from raw data (stage 1: aug_ae_tag's run)


BEST = "--flagfile=experiments/configs/best.flags"


def setup(quick: bool) -> Setup:
    if quick:
        small = ("--update_interval=30", "--max_iter=1200", "--n_init=10")
        return Setup(
            dataset="digits",
            tag="digits-quick",
            kmeans_tag="digits-quick",
            ae_tag="digits-quick",
            ae_args=("--dataset=digits", "--arch=mlp:256-128-10", "--weight_init=fan_in_uniform", "--epochs=60"),
            kmeans_args=("--dataset=digits", "--n_init=10"),
            dec_args=("--dataset=digits", *small),
            idec_args=("--dataset=digits", "--mode=idec", *small),
            tsne_args=("--dataset=digits", "--n_iter=500", "--sweep_perplexities="),
            manifold_args=("--dataset=digits", "--n_epochs=200"),
            aug_tag="digits-quick-affine",
            aug_ae_tag="digits-quick-affine",
            aug_ae_args=(
                "--dataset=digits",
                "--arch=mlp:256-128-10",
                "--weight_init=fan_in_uniform",
                "--epochs=60",
                "--augment=affine",
            ),
            best_args=(BEST, "--dataset=digits", "--arch=mlp:256-128-10", "--epochs=60", "--n_epochs=200"),
        )
    return Setup(
        dataset="mnist",
        tag="mnist-sgd",  # the autoencoder of the SGD (Keras DEC) recipe
        kmeans_tag="mnist",
        ae_tag="mnist-dec-sgd",
        ae_args=("--flagfile=experiments/configs/autoencoder_mnist_keras_dec.flags",),
        kmeans_args=("--flagfile=experiments/configs/kmeans_mnist.flags",),
        dec_args=("--flagfile=experiments/configs/dec_mnist.flags",),
        idec_args=("--flagfile=experiments/configs/idec_mnist.flags",),
        tsne_args=("--dataset=mnist",),
        manifold_args=("--dataset=mnist",),
        aug_tag="mnist-affine",
        aug_ae_tag="mnist-dec-adam-fanin-affine100",
        aug_ae_args=("--flagfile=experiments/configs/autoencoder_mnist_affine.flags",),
        best_args=(BEST, "--dataset=mnist"),
    )


# Each row's key into experiments.references: its published figures, else the peers' measured on this machine.
REFERENCE_KEYS = {
    "k-means (pixels)": "kmeans",
    "AE + k-means": "ae_kmeans",
    "DEC w/o backprop": "dec mode=frozen",
    "DEC": "dec",
    "IDEC": "idec",
    "t-SNE + HDBSCAN (pixels)": "tsne_dbscan",
    "neighbour embedding + GMM (pixels)": "manifold_cluster features=raw",
    "AE + neighbour embedding + GMM": "manifold_cluster features=pretrained",
    "AE (augmented) + neighbour embedding + GMM": "manifold_cluster features=pretrained augment=affine",
    "DEC-DA": "dec mode=dec-da",
}


def _published(s: Setup, name: str) -> str:
    return references.lookup(s.dataset, REFERENCE_KEYS[name], measured=True)


def dec_rows(s: Setup, extra: tuple = (), suffix: str = "") -> list[Row]:
    """The five rows of the DEC table; `extra` flags and a workdir `suffix` make variants (e.g. a subset)."""
    deep = f"{s.tag}{suffix}"
    rows = [
        Row("k-means (pixels)", "kmeans", f"{s.kmeans_tag}{suffix}", (*s.kmeans_args, *extra)),
        Row("AE + k-means", "ae_kmeans", deep, (f"--dataset={s.dataset}", *extra), True),
        Row("DEC w/o backprop", "dec", f"{deep}-frozen", (*s.dec_args, "--mode=frozen", *extra), True),
        Row("DEC", "dec", deep, (*s.dec_args, *extra), True),
        Row("IDEC", "idec", deep, (*s.idec_args, *extra), True),
    ]
    return [r._replace(published="-" if extra else _published(s, r.name)) for r in rows]


def manifold_rows(s: Setup) -> list[Row]:
    """Beyond DEC: the best recipe first (experiments.pipeline: augmented pretraining, then the N2D recipe on its
    codes, in one command), the DEC and IDEC rows for reference, t-SNE + HDBSCAN, the N2D recipe on pixels and on
    the seed's autoencoder codes, and DEC-DA."""
    rows = [Row("AE (augmented) + neighbour embedding + GMM", "pipeline", s.aug_tag, s.best_args)]
    rows += [r for r in dec_rows(s) if r.name in ("DEC", "IDEC")] + [
        Row("t-SNE + HDBSCAN (pixels)", "tsne_dbscan", s.kmeans_tag, s.tsne_args),
        Row("neighbour embedding + GMM (pixels)", "manifold_cluster", s.kmeans_tag, s.manifold_args),
        Row("AE + neighbour embedding + GMM", "manifold_cluster", f"{s.tag}-ae", s.manifold_args, True),
        Row("DEC-DA", "dec", f"{s.aug_tag}-da", (*s.dec_args, "--augment=affine"), True, augmented=True),
    ]  # fmt: skip
    return [r._replace(published=_published(s, r.name)) for r in rows]


# --- running ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """What main() reads from the flags: the table, its seeds, where the runs and the tables go."""

    table: str
    quick: bool
    seeds: tuple[int, ...]
    root: Path
    out: Path
    data_dir: str | None = None
    min_retention: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)  # dec_imbalanced
    ks: tuple[int, ...] = tuple(range(3, 21))  # dec_num_clusters
    jobs: int = 1  # seeds run side by side
    command: str = "python -m experiments.reproduce"  # shown under the table

    @property
    def name(self) -> str:
        """The table's file name, <table>[_quick]."""
        return self.table + ("_quick" if self.quick else "")


def ensure(experiment: str, workdir: Path, args, cfg: Config) -> dict:
    """results.json of the run in `workdir`, running `python -m experiments.<experiment>` first if needed."""
    done = workdir / "results.json"
    if done.exists():
        logging.info("reusing %s", workdir)
        return json.loads(done.read_text())
    args = [*args, f"--workdir={workdir}"] + ([f"--data_dir={cfg.data_dir}"] if cfg.data_dir else [])
    log_path = workdir.parent / f"{workdir.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {experiment} -> {workdir} (log: {log_path})", flush=True)
    binary = {"idec": "dec"}.get(experiment, experiment)  # IDEC is experiments.dec --mode=idec
    with open(log_path, "a") as log:
        code = subprocess.run(
            [sys.executable, "-m", f"experiments.{binary}", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(cfg.root),
            check=False,
        ).returncode
    if code != 0 or not done.exists():
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        print(f"the end of {log_path}:\n{tail}", file=sys.stderr, flush=True)
        raise SystemExit(f"experiments.{binary} failed (exit {code}); its output is in {log_path}.")
    return json.loads(done.read_text())


def _env(root: Path) -> dict:
    """The binaries share a persistent XLA compilation cache (<root>/.xla_cache unless one is set already): the
    rows of later seeds, and a rerun, do not compile again."""
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(root.absolute() / ".xla_cache")
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2"}


def autoencoder(s: Setup, seed: int, cfg: Config, augmented: bool = False) -> tuple[Path, dict]:
    tag, args = (s.aug_ae_tag, s.aug_ae_args) if augmented else (s.ae_tag, s.ae_args)
    wd = cfg.root / "autoencoder" / f"{tag}-seed{seed}"
    return wd, ensure("autoencoder", wd, [*args, f"--seed={seed}"], cfg)


def run_row(row: Row, s: Setup, seed: int, cfg: Config) -> dict:
    args = [*row.args, f"--seed={seed}"]
    if row.pretrained:
        args.append(f"--pretrained={autoencoder(s, seed, cfg, row.augmented)[0]}")
    if row.experiment == "pipeline":  # its stage 1 is the seed's augmented autoencoder, shared with DEC-DA
        args.append(f"--autoencoder_workdir={cfg.root / 'autoencoder' / f'{s.aug_ae_tag}-seed{seed}'}")
    wd = cfg.root / row.experiment / f"{row.tag}-seed{seed}"
    res = ensure(row.experiment, wd, args, cfg)
    return {"row": row.name, "seed": seed, **{m: res.get(m) for m in METRICS}, **_extras(res), "workdir": str(wd)}


def _pipeline_extras(res: dict) -> dict:
    """A pipeline run's wall time is that of its clustering stage, as the other rows' exclude the pretraining;
    nothing for the other binaries."""
    manifold = (res.get("stages") or {}).get("manifold") or {}
    return {"seconds": manifold["seconds"], "seconds_kind": "wall"} if "seconds" in manifold else {}


def run_seeds(rows: list[Row], s: Setup, cfg: Config) -> list[dict]:
    """Every row for every seed, seed-major. Seeds run side by side in cfg.jobs threads (a seed's rows one
    after another: they share its autoencoder)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        per_seed = pool.map(lambda seed: [run_row(r, s, seed, cfg) for r in rows], cfg.seeds)
        return [x for runs in per_seed for x in runs]


def _extras(res: dict) -> dict:
    keep = ("n_samples", "n_iter", "converged", "generalizability", "loss_train", "loss_validation")
    # Runs made before the binaries recorded their wall time report their fit time instead (marked "fit").
    fit = next((res[k] for k in ("fit_seconds_this_invocation", "fit_seconds", "kmeans_seconds") if k in res), None)
    wall = res.get("wall_seconds_this_invocation")
    return {
        "seconds": wall if wall is not None else fit,
        "seconds_kind": "wall" if wall is not None else "fit",
        **{k: res[k] for k in keep if k in res},
        **_pipeline_extras(res),
    }


# --- tables -----------------------------------------------------------------------------------------------------


class Table(NamedTuple):
    """A table to write: `runs` go to the CSV (one per run), `rows` through `columns` to the Markdown."""

    runs: list[dict]
    rows: list[dict]
    columns: list
    caption: str
    notes: list[str]


def _mean(values, digits=1) -> str:
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.{digits}f}" if values else "-"


def _seeds(cfg: Config) -> str:
    return ",".join(map(str, cfg.seeds))


def _machine(cfg: Config) -> str:
    return f"Machine: {report.machine()}. Command: `{cfg.command}`."


def table_dec(s: Setup, cfg: Config, rows: list[Row] | None = None) -> Table:
    rows = rows or dec_rows(s)
    runs = run_seeds(rows, s, cfg)
    aes = [autoencoder(s, seed, cfg)[1] for seed in cfg.seeds]
    cells = []
    for r in rows:
        mine = [x for x in runs if x["row"] == r.name]
        fit_only = any(x["seconds_kind"] == "fit" for x in mine)
        seconds = _mean(x["seconds"] for x in mine) + "*" * fit_only
        scores = {m: report.mean_std([x[m] for x in mine]) for m in METRICS}
        scores["acc_spread"] = report.spread([x["acc"] for x in mine])
        cells.append({"method": r.name, **scores, "seconds": seconds, "published": r.published})
    notes = [_pretraining_line(s.ae_tag, s.ae_args, aes)]
    notes += [_pipeline_line(r, s) for r in rows if r.experiment == "pipeline"]
    if any(r.augmented for r in rows):
        aug = [autoencoder(s, seed, cfg, augmented=True)[1] for seed in cfg.seeds]
        notes.append(
            _pretraining_line(s.aug_ae_tag, s.aug_ae_args, aug).replace("pretraining", "pretraining, augmented")
        )
    if any(x["seconds_kind"] == "fit" for x in runs):
        notes.append("\\* includes runs made before the binaries recorded their wall time: their fit time is used.")
    caption = (
        f"{s.dataset} ({aes[0]['n_samples']} samples), seeds {_seeds(cfg)}: mean ± standard deviation, and ACC's "
        "min / median / max; ACC after Hungarian matching. Wall time: one run of the binary, mean over seeds, the shared autoencoder pretraining "
        "excluded."
    )
    columns = [("method", "method"), ("ACC", "acc"), ("ACC min / median / max", "acc_spread"), ("NMI", "nmi")]
    columns += [("ARI", "ari"), ("wall time (s)", "seconds")]
    columns.append(("published or reference ACC (%)", "published"))
    return Table(runs, cells, columns, caption, [*notes, _machine(cfg)])


def _pretraining_line(tag: str, args: tuple, aes: list[dict]) -> str:
    pre = _mean(a.get("train_seconds_this_invocation") for a in aes)
    mse = report.mean_std([a["reconstruction_mse"] for a in aes], 5)
    return (
        f"Autoencoder pretraining ({tag}, {' '.join(args)}): reconstruction MSE {mse}; {pre} s, the mean time of "
        "the invocation that finished each run (a run resumed after an interruption counts its last part)."
    )


def _pipeline_line(row: Row, s: Setup) -> str:
    """The note on a pipeline row: its command, and where its stage 1 comes from."""
    return (
        f"{row.name}: `python -m experiments.pipeline {' '.join(row.args)} --seed=<s>`, from raw data to clusters. "
        f"Here its stage 1 is the augmented pretraining below ({s.aug_ae_tag}, the same settings, shared with "
        "DEC-DA: --autoencoder_workdir); its wall time is that of its clustering stage."
    )


def table_imbalanced(s: Setup, cfg: Config) -> Table:
    names = ("k-means (pixels)", "AE + k-means", "DEC")
    runs = []
    for r_min in cfg.min_retention:
        rows = [r for r in dec_rows(s, (f"--min_retention={r_min:g}",), f"-rmin{r_min:g}") if r.name in names]
        runs += [{"min_retention": r_min, **x} for x in run_seeds(rows, s, cfg)]
    headers = {r: f"r_min = {r:g}" for r in cfg.min_retention}
    cells = []
    for name in names:
        mine = [x for x in runs if x["row"] == name]
        acc = {}
        for r, h in headers.items():
            accs = [x["acc"] for x in mine if x["min_retention"] == r]
            acc[h] = report.mean_std(accs) + (f" ({report.spread(accs)})" if len(accs) > 1 else "")
        cells.append({"method": name, **acc})
    caption = (
        f"Imbalanced {s.dataset} (DEC paper, section 5.2): class k kept with probability r_min + (1 - r_min) k / 9. "
        f"ACC, mean ± standard deviation (min / median / max) over seeds {_seeds(cfg)}; the autoencoder is the one pretrained on all "
        "samples."
    )
    columns = [("method", "method")] + [(h, h) for h in headers.values()]
    return Table(runs, cells, columns, caption, [_machine(cfg)])


def table_num_clusters(s: Setup, cfg: Config) -> Table:
    runs = []
    for k in cfg.ks:
        row = Row("DEC", "dec", f"{s.tag}-k{k}-val",
                  (*s.dec_args, f"--n_clusters={k}", "--validation_fraction=0.2"), True)  # fmt: skip
        runs += [{"k": k, **x} for x in run_seeds([row], s, cfg)]
    cells = []
    for k in cfg.ks:
        mine = [x for x in runs if x["k"] == k]
        g = report.mean_std([x["generalizability"] for x in mine], 3)
        cells.append({"k": k, "nmi": report.mean_std([x["nmi"] for x in mine]), "g": g})
    figure = cfg.out / f"{cfg.name}.png"
    crossing = num_clusters_figure(runs, s.dataset, figure)
    caption = (
        f"DEC on {s.dataset} for K = {cfg.ks[0]}..{cfg.ks[-1]} (DEC paper, section 5.3): NMI on the 80% trained on "
        "and the generalizability G = L_train / L_validation on a held-out 20% (L: KL(P || Q) with P from the set's "
        f"own Q). Mean over seeds {_seeds(cfg)}."
    )
    return Table(
        runs,
        cells,
        [("K", "k"), ("NMI", "nmi"), ("G", "g")],
        caption,
        [f"Figure: {figure.name}: {crossing}. {_machine(cfg)}"],
    )


def num_clusters_figure(runs: list[dict], dataset: str, path: Path) -> str:
    """NMI and G of the K sweep's runs (each with k, nmi, generalizability; the means over seeds drawn) on one
    axis, their crossing marked: the DEC paper's figure of section 5.3. Returns a sentence on the crossing."""
    from research import plots

    ks = sorted({int(x["k"]) for x in runs})
    mean = lambda m, k: sum(float(x[m]) for x in runs if int(x["k"]) == k) / sum(int(x["k"]) == k for x in runs)
    nmi, g = [mean("nmi", k) for k in ks], [mean("generalizability", k) for k in ks]
    title = f"DEC on {dataset}: NMI and the generalizability G against K"
    plots.crossing_curves(ks, nmi, g, ("NMI", "G = L_train / L_validation"), path, title=title)
    at = plots.curve_crossings(ks, nmi, g)
    if not at:
        return f"NMI and G do not cross for K = {ks[0]}..{ks[-1]}"
    return "NMI and G cross at K ≈ " + ", ".join(f"{x:.2f}" for x in at)


def figure_from_csv(cfg: Config) -> None:
    """Redraws <out>/<table>.png from the sweep's committed <out>/<table>.csv, running nothing."""
    table = cfg.out / f"{cfg.name}.csv"
    if not table.exists():
        raise SystemExit(f"--figure_from_csv reads {table}, which does not exist: run the sweep first (without it).")
    with open(table, newline="") as f:
        runs = list(csv.DictReader(f))
    missing = {"k", "nmi", "generalizability"} - set(runs[0] if runs else {})
    if missing:
        raise SystemExit(f"{table} lacks the column(s) {', '.join(sorted(missing))}: it is not a K sweep's table.")
    figure = cfg.out / f"{cfg.name}.png"
    print(f"{num_clusters_figure(runs, setup(cfg.quick).dataset, figure)} -> {figure}")


TABLE_BUILDERS = {
    "dec_mnist": table_dec,
    "dec_imbalanced": table_imbalanced,
    "dec_num_clusters": table_num_clusters,
    "manifold_mnist": lambda s, cfg: table_dec(s, cfg, manifold_rows(s)),
}


def main(argv):
    del argv
    seeds = [int(x) for x in FLAGS.seeds] if FLAGS.seeds else ([0, 1] if FLAGS.quick else [0, 1, 2, 3, 4])
    cfg = Config(
        table=FLAGS.table,
        quick=FLAGS.quick,
        seeds=tuple(seeds),
        root=Path(FLAGS.root),
        out=Path(FLAGS.out),
        data_dir=FLAGS.data_dir,
        min_retention=tuple(float(r) for r in FLAGS.min_retention),
        ks=tuple(int(k) for k in FLAGS.ks),
        jobs=FLAGS.jobs or (2 if FLAGS.quick else 1),
        command=report.command("experiments.reproduce"),
    )
    if FLAGS.figure_from_csv:
        return figure_from_csv(cfg)
    t = TABLE_BUILDERS[cfg.table](setup(cfg.quick), cfg)
    report.write_table(t.rows, t.columns, cfg.out / cfg.name, caption=t.caption, notes=t.notes, csv_rows=t.runs)


if __name__ == "__main__":
    cli.run_main(main)
