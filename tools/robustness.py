"""Robustness of the MNIST pipelines to what differs between machines: 5 seeds x (the plain run and 3
perturbations that change only rounding), min / median / max ACC over the 20 runs.

  python tools/robustness.py --study=pixels --commands   # the runs: manifold_cluster on pixels
  python tools/robustness.py --study=pixels              # results/manifold_robustness.{md,csv}
  python tools/robustness.py --study=deep --commands     # a 50-epoch autoencoder per seed, then manifold_cluster
                                                         # on its codes, DEC and IDEC (paper flagfiles) on it
  python tools/robustness.py --study=deep                # results/deep_robustness.{md,csv}

Options: --root=checkpoints/robustness (the runs' folders and the 1-ulp file), --data_dir=../shared/datasets.

The perturbations: `ulp` every nonzero pixel moved one float32 ulp up or down at random (a file written by
--write_ulp); `opt0` XLA's backend optimisation level 0; `onethread` one core and Eigen's single-threaded
contractions. In the deep study each seed's autoencoder is pretrained once, as it runs (base), and shared by the
seed's 12 runs: the perturbations act on the stage after pretraining (codes, kNN graph, embedding, mixture; DEC's
and IDEC's k-means start and training). The pixel study keeps each run's embedding.npy and fits the mixture to it
again with the binary's own key (`jax.random.split(key(seed), 4)[2]`) at each --n_inits, so the 10 column repeats
the run's own labels.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import common
import jax
import numpy as np

from research import data, metrics, report
from research.cluster import gmm

SEEDS = range(5)
PERTURBATIONS = {  # (environment, dataset flags)
    "base": ("", "--dataset=mnist --split=all"),
    "ulp": ("", "--dataset=npy:{root}/mnist_ulp.npy"),
    "opt0": ("XLA_FLAGS=--xla_backend_optimization_level=0 ", "--dataset=mnist --split=all"),
    "onethread": ("XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 ", "--dataset=mnist --split=all"),
}
AUTOENCODER = "python -m experiments.autoencoder --dataset=mnist --split=all --seed={seed} --epochs=50 --workdir={ae}"
DEEP = {  # the runs on each seed's autoencoder {ae}
    "codes": "python -m experiments.manifold_cluster {dataset} --pretrained={ae} --seed={seed} --workdir={wd}",
    "dec": (
        "python -m experiments.dec --flagfile=experiments/configs/dec_mnist.flags {dataset} --pretrained={ae} "
        "--seed={seed} --workdir={wd}"
    ),
    "idec": (
        "python -m experiments.dec --flagfile=experiments/configs/idec_mnist.flags {dataset} --pretrained={ae} "
        "--seed={seed} --workdir={wd}"
    ),
}
NAMES = {
    "pixels": "manifold_cluster, pixels",
    "codes": "manifold_cluster, codes",
    "dec": "DEC",
    "idec": "IDEC",
}


def write_ulp(root: Path, data_dir) -> None:
    """MNIST-70k with every nonzero pixel moved one float32 ulp up or down (seeded), and its labels."""
    ds = data.load("mnist", "all", data_dir)
    x, rng = ds.x.copy(), np.random.default_rng(123)
    up, nonzero = rng.random(x.shape) < 0.5, x > 0
    x[nonzero & up] = np.nextafter(x[nonzero & up], np.float32(np.inf))
    x[nonzero & ~up] = np.nextafter(x[nonzero & ~up], np.float32(-np.inf))
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "mnist_ulp.npy", x.reshape(-1, 28, 28))
    np.save(root / "mnist_ulp_labels.npy", ds.y)


def workdir(root: Path, pipeline: str, perturbation: str, seed: int) -> Path:
    return root / f"{pipeline}-{perturbation}-seed{seed}"


def commands(study: str, root: Path) -> list[str]:
    """The shell commands of the study's runs, in the order to run them (a seed's autoencoder before its runs)."""
    out = []
    for s in SEEDS:
        ae = root / f"ae-seed{s}"
        if study == "deep":
            out.append(AUTOENCODER.format(seed=s, ae=ae))
        for pipeline in DEEP if study == "deep" else ["pixels"]:
            for p, (env, dataset) in PERTURBATIONS.items():
                args = {"dataset": dataset.format(root=root), "ae": ae, "seed": s}
                wd = workdir(root, pipeline, p, s)
                if study == "deep":
                    out.append(env + DEEP[pipeline].format(wd=wd, **args))
                else:
                    out.append(
                        f"{env}python -m experiments.manifold_cluster {args['dataset']} --seed={s} --gmm_n_init=10 "
                        f"--workdir={wd}"
                    )
    return out


def finished(wd: Path, command: str) -> dict:
    """The results.json of a finished run, or exit naming the command that makes it."""
    if not (wd / "results.json").is_file():
        raise SystemExit(f"{wd} holds no finished run; run: {command}")
    return json.loads((wd / "results.json").read_text())


def summary(rows: list[dict], pipelines, below: float | None = None) -> list[str]:
    """Per (pipeline, ACC column): ACC min / median / max and mean ± std over its runs, how far the minimum lies
    below the median, the widest spread among one seed's runs (what the machine alone moves, the seed held fixed),
    NMI's spread where the rows hold it, and with `below` the runs under that ACC."""
    header = "| pipeline | runs | ACC min / median / max | ACC mean ± std | median - min | widest spread within a seed "
    header += "| NMI min / median / max |" + (f" runs below {below} |" if below is not None else "")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for name, col in pipelines:
        rs = [r for r in rows if r["pipeline"] == name]
        accs = [r[col] for r in rs]
        within = max(
            max(r[col] for r in rs if r["seed"] == s) - min(r[col] for r in rs if r["seed"] == s)
            for s in {r["seed"] for r in rs}
        )
        gap = statistics.median(accs) - min(accs)
        nmi = report.spread([r["nmi"] for r in rs]) if "nmi" in rs[0] else "-"
        line = f"| {name} | {len(rs)} | {report.spread(accs)} | {report.mean_std(accs)} | {gap:.4f} | {within:.4f} "
        line += f"| {nmi} |" + (f" {sum(a < below for a in accs)} |" if below is not None else "")
        lines.append(line)
    return lines


def pixel_study(root: Path, data_dir, n_inits: list[int], out: Path) -> None:
    y = data.load("mnist", "all", data_dir).y
    rows, cmds = [], iter(commands("pixels", root))
    for s in SEEDS:
        for p in PERTURBATIONS:
            wd = workdir(root, "pixels", p, s)
            own = finished(wd, next(cmds))
            z = np.load(wd / "embedding.npy")
            key = jax.random.split(jax.random.key(s), 4)[2]
            row = {"pipeline": NAMES["pixels"], "perturbation": p, "seed": s, "run_acc": own["acc"]}
            for r in n_inits:
                fit = gmm.fit(key, z, 10, covariance_type="full", n_init=r)
                row |= {f"acc_{r}": metrics.acc(y, np.asarray(fit.labels)), f"lower_bound_{r}": float(fit.lower_bound)}
            rows.append(row)
            print(row, flush=True)
    stats = ["Over the 20 runs, the mixture at each number of restarts (min / median / max; mean ± sample std):", ""]
    for r in n_inits:
        stats += summary(rows, [(NAMES["pixels"], f"acc_{r}")], below=0.96)[(0 if r == n_inits[0] else 2) :]
        stats[-1] = stats[-1].replace(f"| {NAMES['pixels']} |", f"| {NAMES['pixels']}, {r} restarts |")
    columns = [("perturbation", "perturbation"), ("seed", "seed")]
    for r in n_inits:
        columns += [(f"ACC, {r} restarts", f"acc_{r}", ".4f"), (f"lower bound, {r}", f"lower_bound_{r}", ".4f")]
    notes = [
        "\n".join(stats),
        (
            "Every run's embedding holds a mixture of ACC 0.972 to 0.973; what differed was the search for it: with "
            "10 restarts the highest lower bound found varies from run to run, and a lower optimum (ACC 0.83 to 0.97) "
            "is kept. With 30 the highest lower bound is within 3e-4 of 50 restarts' in every run (the label-free "
            "reason for 30, now manifold_cluster's default); docs/design/manifold_clustering.md."
        ),
        (
            "Commands: `python tools/robustness.py --write_ulp`, the runs of `python tools/robustness.py "
            "--study=pixels --commands`, then `python tools/robustness.py --study=pixels`."
        ),
        f"Machine: {report.machine()}.",
    ]
    caption = (
        "manifold_cluster on MNIST-70k pixels (cosine kNN, 10-D UMAP-style embedding, full-covariance GMM), "
        "5 seeds x 4 conditions: as run (base), inputs moved 1 ulp (ulp), XLA optimisation level 0 (opt0), "
        "one thread (onethread); the mixture fitted to each run's embedding with 10 and 30 restarts."
    )
    report.write_table(rows, columns, out, caption=caption, notes=notes)


def deep_study(root: Path, out: Path) -> None:
    rows, missing = [], []
    for s in SEEDS:
        for pipeline in DEEP:
            for p in PERTURBATIONS:
                wd = workdir(root, pipeline, p, s)
                if not (wd / "results.json").is_file():
                    missing.append(wd.name)
                    continue
                res = json.loads((wd / "results.json").read_text())
                row = {"pipeline": NAMES[pipeline], "perturbation": p, "seed": s, "acc": res["acc"], "nmi": res["nmi"]}
                row |= {"ari": res.get("ari"), "steps": res.get("n_iter"), "lower_bound": res.get("lower_bound")}
                if "lower_bound_per_init" in res:  # restarts that reached the best bound (within 1e-3)
                    bounds = np.asarray(res["lower_bound_per_init"], float)
                    row["restarts_at_best"] = int(np.sum(bounds >= bounds.max() - 1e-3))
                rows.append(row)
    if not rows:
        raise SystemExit(f"no finished run in {root}; the runs: python tools/robustness.py --study=deep --commands")
    stats = ["Over each pipeline's runs (min / median / max; mean ± sample std):", ""]
    stats += summary(rows, [(NAMES[p], "acc") for p in DEEP if any(r["pipeline"] == NAMES[p] for r in rows)])
    columns = [("pipeline", "pipeline"), ("perturbation", "perturbation"), ("seed", "seed"), ("ACC", "acc", ".4f")]
    columns += [("NMI", "nmi", ".4f"), ("DEC steps", "steps"), ("GMM lower bound", "lower_bound", ".4f")]
    columns += [("GMM restarts at the best bound (of 30)", "restarts_at_best")]
    notes = [
        "\n".join(stats),
        f"Not run (yet): {', '.join(missing)}." if missing else "Every run of the study is in the table.",
        (
            "Commands: `python tools/robustness.py --write_ulp`, the runs of `python tools/robustness.py "
            "--study=deep --commands` (each seed's autoencoder first), then `python tools/robustness.py --study=deep`."
        ),
        f"Machine: {report.machine()}.",
    ]
    caption = (
        "MNIST-70k, 5 seeds x 4 conditions: as run (base), inputs moved 1 ulp (ulp), XLA optimisation level 0 "
        "(opt0), one thread (onethread). Per seed one d-500-500-2000-10 autoencoder (experiments.autoencoder "
        "defaults, 50 epochs of Adam), pretrained once and shared by the seed's runs: manifold_cluster on its codes "
        "(defaults: 20-neighbour kNN graph, 10-D UMAP-style embedding, full GMM with 30 restarts), DEC and IDEC "
        "with the papers' flagfiles (experiments/configs/dec_mnist.flags, idec_mnist.flags)."
    )
    report.write_table(rows, columns, out, caption=caption, notes=notes)


def main(argv=None) -> None:
    parser = common.parser(__doc__, root="checkpoints/robustness", out=None)  # --out's default: by --study
    parser.add_argument("--study", choices=["pixels", "deep"], default="pixels", help="which runs to read")
    parser.add_argument("--n_inits", default="10,30", help="pixels: the mixture restarts to compare")
    parser.add_argument("--write_ulp", action="store_true", help="write <root>/mnist_ulp.npy and stop")
    args = parser.parse_args(argv)
    root = Path(args.root)
    out = Path(args.out or {"pixels": "results/manifold_robustness", "deep": "results/deep_robustness"}[args.study])
    if args.write_ulp:
        return write_ulp(root, args.data_dir)
    if args.commands:
        return print("\n".join(commands(args.study, root)))
    if args.study == "pixels":
        return pixel_study(root, args.data_dir, [int(v) for v in args.n_inits.split(",")], out)
    return deep_study(root, out)


if __name__ == "__main__":
    main()
