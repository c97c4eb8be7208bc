r"""Regenerates a paper's table from runs of the experiment binaries: runs what is missing, reuses what is done.

  python -m experiments.reproduce --table=dec_mnist --seeds=0,1,2,3,4   # MNIST-70k, DEC paper Table 2 + IDEC
  python -m experiments.reproduce --table=dec_mnist --quick             # the same pipeline on digits, ~1 minute
  python -m experiments.reproduce --table=dec_imbalanced                # DEC paper section 5.2
  python -m experiments.reproduce --table=dec_num_clusters              # DEC paper section 5.3 (K = 3..20)
  python -m experiments.reproduce --table=manifold_mnist --seeds=0,1,2  # beyond DEC: N2D-style manifold clustering

Every cell is a run of a binary in its own workdir, <root>/<experiment>/<name>-seed<s>: a workdir with a
results.json is read as it is; any other is (re)started, and a binary resumes from its own checkpoints, so an
interrupted reproduction picks up where it stopped. The rows of one seed share one pretrained autoencoder
(those marked augmented another, pretrained on moved and turned images).
Each binary's output goes to <workdir>.log. The table goes to <out>/<table>[_quick].md and .csv: mean ±
standard deviation over the seeds of ACC, NMI and ARI, the mean wall time of one run, and the published figure
beside each row with its source.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from absl import app, flags, logging

from research import report

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


def setup(quick: bool) -> Setup:
    if quick:
        small = ("--update_interval=30", "--maxiter=1200", "--n_init=10")
        return Setup(
            dataset="digits",
            tag="digits-quick",
            kmeans_tag="digits-quick",
            ae_tag="digits-quick",
            ae_args=("--dataset=digits", "--arch=mlp:256-128-10", "--weight_init=fan_in_uniform", "--epochs=60"),
            kmeans_args=("--dataset=digits", "--n_init=10"),
            dec_args=("--dataset=digits", *small),
            idec_args=("--dataset=digits", *small),
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
    )


# Published ACC (%) on MNIST-70k.
DEC_PAPER = "Xie et al. 2016, Table 2"
PUBLISHED_MNIST = {
    "k-means (pixels)": f"53.49 ({DEC_PAPER})",
    "AE + k-means": "81.84 (DEC paper, Table 3); 87.93 (Keras DEC, mean of 10 trials)",
    "DEC w/o backprop": f"79.82 ({DEC_PAPER})",
    "DEC": f"84.30 ({DEC_PAPER}, best of 9 settings); 91.20 (Keras DEC, mean of 10 trials)",
    "IDEC": "88.06, NMI 86.72 (Guo et al. 2017, Table 2)",
}


def dec_rows(s: Setup, extra: tuple = (), suffix: str = "") -> list[Row]:
    """The five rows of the DEC table; `extra` flags and a workdir `suffix` make variants (e.g. a subset)."""
    pub = PUBLISHED_MNIST if s.dataset == "mnist" and not extra else {}
    deep = f"{s.tag}{suffix}"
    rows = [
        Row("k-means (pixels)", "kmeans", f"{s.kmeans_tag}{suffix}", (*s.kmeans_args, *extra)),
        Row("AE + k-means", "ae_kmeans", deep, (f"--dataset={s.dataset}", *extra), True),
        Row("DEC w/o backprop", "dec", f"{deep}-frozen", (*s.dec_args, "--frozen", *extra), True),
        Row("DEC", "dec", deep, (*s.dec_args, *extra), True),
        Row("IDEC", "idec", deep, (*s.idec_args, *extra), True),
    ]
    return [r._replace(published=pub.get(r.name, "-")) for r in rows]


PUBLISHED_MANIFOLD = {
    "neighbour embedding + GMM (pixels)": (
        "umap-learn (10-D, 20 neighbours, min_dist 0) + GMM: 97.3 cosine, 96.9 Euclidean (this machine)"
    ),
    "AE + neighbour embedding + GMM": "97.9, NMI 94.2 (N2D, McConville et al. 2021, Table 2)",
    "t-SNE + DBSCAN (pixels)": "openTSNE 2-D + GMM: 87.4 to 95.4 (this machine, 3 runs)",
    "AE (augmented) + neighbour embedding + GMM": "97.9 (N2D, without augmentation)",
    "DEC-DA": "98.5, NMI 96.0: the best DEC-DA variant (Guo et al. 2018, their code's README)",
}


def manifold_rows(s: Setup) -> list[Row]:
    """Beyond DEC: the DEC and IDEC rows for reference, t-SNE + DBSCAN, and the N2D recipe on pixels and on
    the seed's autoencoder codes."""
    pub = PUBLISHED_MANIFOLD if s.dataset == "mnist" else {}
    rows = [r for r in dec_rows(s) if r.name in ("DEC", "IDEC")] + [
        Row("t-SNE + DBSCAN (pixels)", "tsne_dbscan", s.kmeans_tag, s.tsne_args),
        Row("neighbour embedding + GMM (pixels)", "manifold_cluster", s.kmeans_tag, s.manifold_args),
        Row("AE + neighbour embedding + GMM", "manifold_cluster", f"{s.tag}-ae", s.manifold_args, True),
        Row("AE (augmented) + neighbour embedding + GMM", "manifold_cluster", f"{s.aug_tag}-ae", s.manifold_args,
            True, augmented=True),
        Row("DEC-DA", "dec", f"{s.aug_tag}-da", (*s.dec_args, "--dec_augment"), True, augmented=True),
    ]  # fmt: skip
    return [r._replace(published=pub.get(r.name, r.published)) for r in rows]


# --- running ----------------------------------------------------------------------------------------------------


def ensure(experiment: str, workdir: Path, args) -> dict:
    """results.json of the run in `workdir`, running `python -m experiments.<experiment>` first if needed."""
    done = workdir / "results.json"
    if done.exists():
        logging.info("reusing %s", workdir)
        return json.loads(done.read_text())
    args = [*args, f"--workdir={workdir}"] + ([f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else [])
    log_path = workdir.parent / f"{workdir.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {experiment} -> {workdir} (log: {log_path})", flush=True)
    with open(log_path, "a") as log:
        code = subprocess.run(
            [sys.executable, "-m", f"experiments.{experiment}", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
            check=False,
        ).returncode
    if code != 0 or not done.exists():
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"experiments.{experiment} failed (exit {code}); the end of {log_path}:\n{tail}")
    return json.loads(done.read_text())


def _env() -> dict:
    """The binaries share a persistent XLA compilation cache (<root>/.xla_cache unless one is set already): the
    rows of later seeds, and a rerun, do not compile again."""
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(Path(FLAGS.root).absolute() / ".xla_cache")
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2"}


def autoencoder(s: Setup, seed: int, augmented: bool = False) -> tuple[Path, dict]:
    tag, args = (s.aug_ae_tag, s.aug_ae_args) if augmented else (s.ae_tag, s.ae_args)
    wd = Path(FLAGS.root) / "autoencoder" / f"{tag}-seed{seed}"
    return wd, ensure("autoencoder", wd, [*args, f"--seed={seed}"])


def run_row(row: Row, s: Setup, seed: int) -> dict:
    args = [*row.args, f"--seed={seed}"]
    if row.pretrained:
        args.append(f"--pretrained={autoencoder(s, seed, row.augmented)[0]}")
    wd = Path(FLAGS.root) / row.experiment / f"{row.tag}-seed{seed}"
    res = ensure(row.experiment, wd, args)
    return {"row": row.name, "seed": seed, **{m: res.get(m) for m in METRICS}, **_extras(res), "workdir": str(wd)}


def run_seeds(rows: list[Row], s: Setup, seeds: list[int]) -> list[dict]:
    """Every row for every seed, seed-major. Seeds run side by side in --jobs processes (a seed's rows one
    after another: they share its autoencoder)."""
    jobs = FLAGS.jobs or (2 if FLAGS.quick else 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        per_seed = pool.map(lambda seed: [run_row(r, s, seed) for r in rows], seeds)
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
    }


# --- tables -----------------------------------------------------------------------------------------------------


def _mean(values, digits=1) -> str:
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.{digits}f}" if values else "-"


def table_dec(s: Setup, seeds: list[int], rows: list[Row] | None = None) -> tuple[list[dict], list[str]]:
    rows = rows or dec_rows(s)
    runs = run_seeds(rows, s, seeds)
    aes = [autoencoder(s, seed)[1] for seed in seeds]
    lines = [
        (
            f"{s.dataset} ({aes[0]['n_samples']} samples), seeds {','.join(map(str, seeds))}: mean ± standard "
            "deviation; ACC after Hungarian matching. Wall time: one run of the binary, mean over seeds, the shared "
            "autoencoder pretraining excluded."
        ),
        "",
        "| method | ACC | NMI | ARI | wall time (s) | published or reference ACC (%) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mine = [x for x in runs if x["row"] == r.name]
        cells = " | ".join(report.mean_std([x[m] for x in mine]) for m in METRICS)
        fit_only = any(x["seconds_kind"] == "fit" for x in mine)
        lines.append(f"| {r.name} | {cells} | {_mean(x['seconds'] for x in mine)}{'*' * fit_only} | {r.published} |")
    lines += ["", _pretraining_line(s.ae_tag, s.ae_args, aes)]
    if any(r.augmented for r in rows):
        aug = [autoencoder(s, seed, augmented=True)[1] for seed in seeds]
        lines += [
            "",
            _pretraining_line(s.aug_ae_tag, s.aug_ae_args, aug).replace("pretraining", "pretraining, augmented"),
        ]
    if any(x["seconds_kind"] == "fit" for x in runs):
        lines += ["", "\\* includes runs made before the binaries recorded their wall time: their fit time is used."]
    lines += ["", f"Machine: {report.machine()}. Command: `{_command()}`."]
    return runs, lines


def _pretraining_line(tag: str, args: tuple, aes: list[dict]) -> str:
    pre = _mean(a.get("train_seconds_this_invocation") for a in aes)
    mse = report.mean_std([a["reconstruction_mse"] for a in aes], 5)
    return (
        f"Autoencoder pretraining ({tag}, {' '.join(args)}): reconstruction MSE {mse}; {pre} s, the mean time of "
        "the invocation that finished each run (a run resumed after an interruption counts its last part)."
    )


def table_imbalanced(s: Setup, seeds: list[int]) -> tuple[list[dict], list[str]]:
    rates = [float(r) for r in FLAGS.min_retention]
    names = ("k-means (pixels)", "AE + k-means", "DEC")
    runs = []
    for r_min in rates:
        rows = [r for r in dec_rows(s, (f"--min_retention={r_min:g}",), f"-rmin{r_min:g}") if r.name in names]
        runs += [{"min_retention": r_min, **x} for x in run_seeds(rows, s, seeds)]
    lines = [
        (
            f"Imbalanced {s.dataset} (DEC paper, section 5.2): class k kept with probability r_min + (1 - r_min) k / 9."
            f" ACC, mean ± standard deviation over seeds {','.join(map(str, seeds))}; the autoencoder is the one "
            "pretrained on all samples."
        ),
        "",
        "| method | " + " | ".join(f"r_min = {r:g}" for r in rates) + " |",
        "|---" * (len(rates) + 1) + "|",
    ]
    for name in names:
        cells = [
            report.mean_std([x["acc"] for x in runs if x["row"] == name and x["min_retention"] == r]) for r in rates
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {report.machine()}. Command: `{_command()}`."]
    return runs, lines


def table_num_clusters(s: Setup, seeds: list[int]) -> tuple[list[dict], list[str]]:
    from research import plots

    ks = [int(k) for k in FLAGS.ks]
    runs = []
    for k in ks:
        row = Row("DEC", "dec", f"{s.tag}-k{k}-val",
                  (*s.dec_args, f"--n_clusters={k}", "--validation_fraction=0.2"), True)  # fmt: skip
        runs += [{"k": k, **x} for x in run_seeds([row], s, seeds)]
    lines = [
        (
            f"DEC on {s.dataset} for K = {ks[0]}..{ks[-1]} (DEC paper, section 5.3): NMI on the 80% trained on and "
            "the generalizability G = L_train / L_validation on a held-out 20% (L: KL(P || Q) with P from the set's "
            f"own Q). Mean over seeds {','.join(map(str, seeds))}."
        ),
        "",
        "| K | NMI | G |",
        "|---|---|---|",
    ]
    curve = {"nmi": [], "generalizability": []}
    for k in ks:
        mine = [x for x in runs if x["k"] == k]
        for m, values in curve.items():
            values.append(sum(x[m] for x in mine) / len(mine))
        lines.append(f"| {k} | {report.mean_std([x['nmi'] for x in mine])} | "
                     f"{report.mean_std([x['generalizability'] for x in mine], 3)} |")  # fmt: skip
    plots.k_curves(ks, curve, Path(FLAGS.out) / f"{_name()}.png", title=f"DEC on {s.dataset}: NMI and G against K")
    lines += ["", f"Figure: {_name()}.png. Machine: {report.machine()}. Command: `{_command()}`."]
    return runs, lines


def _name() -> str:
    return FLAGS.table + ("_quick" if FLAGS.quick else "")


def _command() -> str:
    return "python -m experiments.reproduce " + " ".join(a for a in sys.argv[1:] if not a.startswith("--data_dir"))


def main(argv):
    del argv
    s = setup(FLAGS.quick)
    seeds = [int(x) for x in FLAGS.seeds] if FLAGS.seeds else ([0, 1] if FLAGS.quick else [0, 1, 2, 3, 4])
    build = {
        "dec_mnist": table_dec,
        "dec_imbalanced": table_imbalanced,
        "dec_num_clusters": table_num_clusters,
        "manifold_mnist": lambda s, seeds: table_dec(s, seeds, manifold_rows(s)),
    }
    runs, lines = build[FLAGS.table](s, seeds)
    out = report.write_csv(runs, Path(FLAGS.out) / _name())
    report.write_markdown(lines, out)


if __name__ == "__main__":
    app.run(main)
