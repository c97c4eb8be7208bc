"""Writes results/manifold_robustness.{md,csv}: manifold_cluster on MNIST pixels, 5 seeds x (the plain run and 3
perturbations that mimic another machine), with the mixture's restarts at 10 and at 30.

  python tools/manifold_robustness.py --commands      # the 20 runs (and how to make the 1-ulp input file)
  python tools/manifold_robustness.py [--root=checkpoints/robustness] [--data_dir=../shared/datasets]

The perturbations: `ulp` every nonzero pixel moved one float32 ulp up or down at random (a file written by
--write_ulp); `opt0` XLA's backend optimisation level 0; `onethread` one core and Eigen's single-threaded
contractions. Each run's embedding.npy is kept; the mixture step is fitted again on it with the binary's own key
(`jax.random.split(key(seed), 4)[2]`) at each --n_inits, so the 10 column repeats the run's own labels.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import jax
import numpy as np

from research import data, metrics, report
from research.cluster import gmm

SEEDS = range(5)
PERTURBATIONS = {
    "base": ("", "--dataset=mnist --split=all"),
    "ulp": ("", "--dataset=npy:{root}/mnist_ulp.npy"),
    "opt0": ("XLA_FLAGS=--xla_backend_optimization_level=0 ", "--dataset=mnist --split=all"),
    "onethread": ("XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 ", "--dataset=mnist --split=all"),
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="checkpoints/robustness", help="folder of the runs (and the ulp file)")
    parser.add_argument("--data_dir", default=None, help="MNIST's folder (default: $JAXCLUSTER_DATA, or download)")
    parser.add_argument("--n_inits", default="10,30", help="the mixture restarts to compare")
    parser.add_argument("--out", default="results/manifold_robustness", help="path prefix of the .md and .csv")
    parser.add_argument("--commands", action="store_true", help="print the runs' commands and stop")
    parser.add_argument("--write_ulp", action="store_true", help="write <root>/mnist_ulp.npy and stop")
    args = parser.parse_args(argv)
    root, n_inits = Path(args.root), [int(v) for v in args.n_inits.split(",")]
    if args.write_ulp:
        return write_ulp(root, args.data_dir)
    if args.commands:
        for s in SEEDS:
            for p, (env, dataset) in PERTURBATIONS.items():
                print(f"{env}python -m experiments.manifold_cluster {dataset.format(root=root)} --seed={s} "
                      f"--gmm_n_init=10 --workdir={root}/{p}-seed{s}")  # fmt: skip
        return
    y = data.load("mnist", "all", args.data_dir).y
    rows = []
    for p in PERTURBATIONS:
        for s in SEEDS:
            wd = root / f"{p}-seed{s}"
            z = np.load(wd / "embedding.npy")
            own = json.loads((wd / "results.json").read_text())
            key = jax.random.split(jax.random.key(s), 4)[2]
            row = {"perturbation": p, "seed": s, "run_acc": own["acc"]}
            for r in n_inits:
                fit = gmm.fit(key, z, 10, covariance_type="full", n_init=r)
                row |= {f"acc_{r}": metrics.acc(y, np.asarray(fit.labels)), f"lower_bound_{r}": float(fit.lower_bound)}
            rows.append(row)
            print(row, flush=True)
    stats = ["Over the 20 runs (min / median / max; mean ± sample std):", ""]
    stats += ["| gmm_n_init | ACC min / median / max | ACC mean ± std | runs below 0.96 |", "|---|---|---|---|"]
    for r in n_inits:
        accs = [row[f"acc_{r}"] for row in rows]
        spread = f"{min(accs):.4f} / {statistics.median(accs):.4f} / {max(accs):.4f}"
        stats.append(f"| {r} | {spread} | {report.mean_std(accs)} | {sum(a < 0.96 for a in accs)} |")
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
            "Commands: `python tools/manifold_robustness.py --write_ulp`, the runs of `--commands`, then "
            "`python tools/manifold_robustness.py`."
        ),
        f"Machine: {report.machine()}.",
    ]
    caption = (
        "manifold_cluster on MNIST-70k pixels (cosine kNN, 10-D UMAP-style embedding, full-covariance GMM), "
        "5 seeds x 4 conditions: as run (base), inputs moved 1 ulp (ulp), XLA optimisation level 0 (opt0), "
        "one thread (onethread); the mixture fitted to each run's embedding with 10 and 30 restarts."
    )
    report.write_table(rows, columns, Path(args.out), caption=caption, notes=notes)


if __name__ == "__main__":
    main()
