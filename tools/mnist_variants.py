"""Writes results/mnist_variants.{md,csv}: the pixel pipeline (manifold_cluster, default flags) on data made from
MNIST that none of its defaults were tuned on, with its metric default (cosine, chosen on MNIST) against Euclidean.

  python tools/mnist_variants.py --write      # <root>/mnist_rot.npy, <root>/mnist_back_rand.npy and their labels
  python tools/mnist_variants.py --commands   # the runs, one command per line
  python tools/mnist_variants.py              # reads the finished runs, writes the table

The variants follow the constructions of Larochelle et al. (2007)'s MNIST variations, made here from all 70000
MNIST images with a fixed seed: `rot` each digit turned by an angle drawn uniformly from [0, 360) degrees (linear
interpolation); `back_rand` every background pixel (value 0) replaced by uniform noise in [0, 1). digits
(scikit-learn's 8x8 digits) runs beside them as a small dataset of another kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import common
import numpy as np

from research import data, report

SEEDS = (0, 1, 2)
VARIANTS = ("rot", "back_rand")
METRICS = {"cosine (default)": "", "euclidean": " --metric=euclidean"}


def write(root: Path, data_dir) -> None:
    """The two variants of MNIST-70k as <root>/mnist_<variant>.npy [N, 28, 28] float32, with _labels.npy."""
    from scipy import ndimage

    ds = data.load("mnist", "all", data_dir)
    images, rng = ds.x.reshape(-1, 28, 28), np.random.default_rng(2007)
    angles = rng.uniform(0.0, 360.0, len(images))
    rot = np.stack([ndimage.rotate(im, a, reshape=False, order=1) for im, a in zip(images, angles)])
    back = np.where(images > 0, images, rng.random(images.shape, dtype=np.float32))
    root.mkdir(parents=True, exist_ok=True)
    for name, x in (("rot", rot), ("back_rand", back)):
        np.save(root / f"mnist_{name}.npy", np.clip(x, 0.0, 1.0).astype(np.float32))
        np.save(root / f"mnist_{name}_labels.npy", ds.y)


def runs(root: Path) -> list[tuple[str, str, int, Path, str]]:
    """(dataset, metric, seed, workdir, command) of every run."""
    out = []
    for name in ("digits", *VARIANTS):
        dataset = "--dataset=digits" if name == "digits" else f"--dataset=npy:{root}/mnist_{name}.npy"
        for metric, flag in METRICS.items():
            for s in SEEDS:
                wd = root / f"{name}-{metric.split()[0]}-seed{s}"
                cmd = f"python -m experiments.manifold_cluster {dataset}{flag} --seed={s} --workdir={wd}"
                out.append((name if name == "digits" else f"mnist_{name}", metric, s, wd, cmd))
    return out


def main(argv=None) -> None:
    parser = common.parser(__doc__, root="checkpoints/mnist_variants", out="results/mnist_variants")
    parser.add_argument("--write", action="store_true", help="write the variants and stop")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if args.write:
        return write(root, args.data_dir)
    if args.commands:
        return print("\n".join(r[-1] for r in runs(root)))
    rows = []
    for dataset, metric, seed, wd, cmd in runs(root):
        if not (wd / "results.json").is_file():
            raise SystemExit(f"{wd} holds no finished run; run: {cmd}")
        res = json.loads((wd / "results.json").read_text())
        rows.append({"dataset": dataset, "metric": metric, "seed": seed, **{k: res[k] for k in ("acc", "nmi", "ari")}})
    stats = ["| dataset | metric | ACC min / median / max | ACC mean ± std | NMI min / median / max |"]
    stats.append("|---|---|---|---|---|")
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for metric in METRICS:
            rs = [r for r in rows if r["dataset"] == dataset and r["metric"] == metric]
            accs = [r["acc"] for r in rs]
            nmi = report.spread([r["nmi"] for r in rs])
            stats.append(f"| {dataset} | {metric} | {report.spread(accs)} | {report.mean_std(accs)} | {nmi} |")
    columns = [("dataset", "dataset"), ("metric", "metric"), ("seed", "seed"), ("ACC", "acc", ".4f")]
    columns += [("NMI", "nmi", ".4f"), ("ARI", "ari", ".4f")]
    notes = [
        f"Over seeds {', '.join(map(str, SEEDS))} (min / median / max; mean ± sample std):\n\n" + "\n".join(stats),
        (
            "Commands: `python tools/mnist_variants.py --write`, the runs of `python tools/mnist_variants.py "
            "--commands`, then `python tools/mnist_variants.py`."
        ),
        f"Machine: {report.machine()}.",
    ]
    caption = (
        "manifold_cluster with its default flags (pixels: 20-neighbour kNN graph, 10-D UMAP-style embedding, full "
        "GMM with 30 restarts) on MNIST made harder (turned digits; noise backgrounds) and on digits, per seed: the "
        "default cosine neighbours against Euclidean ones."
    )
    report.write_table(rows, columns, Path(args.out), caption=caption, notes=notes)


if __name__ == "__main__":
    main()
