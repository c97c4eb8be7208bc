r"""Self-organizing map side by side: jaxcluster (online and batch) vs MiniSom, same data, same run.

  pip install -e '.[bench]'   # minisom
  JAXCLUSTER_DATA=../shared/datasets python -m bench.som_vs_minisom
  python -m bench.som_vs_minisom --n_samples=5000 --n_steps=5000 --repeats=1   # a quick look

MNIST, all 70,000 images (train then test; --split), pixels in [0, 1]. Every
method starts from the same codebook, `som.initial_codebook` (--init, "pca" by
default: MiniSom's pca_weights_init up to the sign of the axes), copied into
MiniSom's weights. Online: the same grid, sigma, learning rate, number of steps
and MiniSom's default schedules (asymptotic decay of both); MiniSom runs
`train_random`, ours `som.fit(mode="online")`, each drawing its own random
sample order per seed. Ours in batch mode runs --n_epochs epochs of the batch
SOM from the same start with the same sigma.

Times are medians over --repeats seeds. Ours: compilation is timed apart, on
the first call; the fit time includes its final pass over all samples (winners,
quantization and topographic error), whose time alone is reported as "eval s".
"us / update" is the fit time per sample update: per step online, per
sample x epoch in batch. Quantization and topographic error are computed for
every method by the same function (`som.quantization_error`,
`som.topographic_error`) on the same data.

Writes results/som_vs_minisom.md and .csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import numpy as np

from research import data, report
from research.cluster import som


def run_ours(x, init, args, seed, first, mode):
    kwargs = {"sigma": args.sigma, "learning_rate": args.learning_rate, "init": init, "mode": mode}
    kwargs |= {"n_steps": args.n_steps} if mode == "online" else {"n_epochs": args.n_epochs}
    key = jax.random.key(seed)
    if first:  # the first call compiles: time it apart
        t = som.fit_timed(key, x, init.shape[:2], **kwargs)
        return t.out.codebook_hwd, t.run_seconds, t.compile_seconds
    t0 = time.perf_counter()
    res = jax.block_until_ready(som.fit(key, x, init.shape[:2], **kwargs))
    return res.codebook_hwd, time.perf_counter() - t0, None


def run_minisom(x, init, args, seed, first):
    from minisom import MiniSom

    h, w, d = init.shape
    m = MiniSom(h, w, d, sigma=args.sigma, learning_rate=args.learning_rate, random_seed=seed)
    m._weights = np.array(init, np.float64)  # MiniSom keeps float64 weights
    t0 = time.perf_counter()
    m.train_random(x, args.n_steps)
    return m.get_weights(), time.perf_counter() - t0, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--split", default="all")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--n_samples", type=int, default=0, help="use a random subset of this size (0: all)")
    ap.add_argument("--grid", default="16,16", help="rows,cols")
    ap.add_argument("--n_steps", type=int, default=140_000, help="online steps (one sample each)")
    ap.add_argument("--n_epochs", type=int, default=10, help="our batch mode's epochs")
    ap.add_argument("--sigma", type=float, default=4.0)
    ap.add_argument("--learning_rate", type=float, default=0.5)
    ap.add_argument("--init", default="pca", choices=["pca", "sample", "random"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="ours-online,ours-batch,minisom")
    ap.add_argument("--out", default="results/som_vs_minisom")
    args = ap.parse_args()

    ds = data.load(args.dataset, args.split, args.data_dir)
    x = np.ascontiguousarray(ds.x, np.float32)
    if 0 < args.n_samples < len(x):
        x = x[np.sort(np.random.default_rng(0).choice(len(x), args.n_samples, replace=False))]
    grid = tuple(int(v) for v in args.grid.split(","))
    init = np.asarray(som.initial_codebook(jax.random.key(0), x, grid, args.init))

    t0 = time.perf_counter()
    jax.block_until_ready(som.topographic_error(init, x))  # compiles
    t0 = time.perf_counter()
    jax.block_until_ready(som.topographic_error(init, x))
    eval_seconds = time.perf_counter() - t0

    methods = {
        "ours-online": lambda *a: run_ours(*a, mode="online"),
        "ours-batch": lambda *a: run_ours(*a, mode="batch"),
        "minisom": run_minisom,
    }
    rows = []
    for name in args.methods.split(","):
        fn = methods[name]
        times, qes, tes, compile_s = [], [], [], None
        for seed in range(args.repeats):
            codebook, secs, comp = fn(x, init, args, seed, seed == 0)
            compile_s = comp if comp is not None else compile_s
            qe = float(som.quantization_error(codebook, x))
            te = float(som.topographic_error(codebook, x))
            times.append(secs)
            qes.append(qe)
            tes.append(te)
            print(f"{name:12s} seed={seed} {secs:8.2f}s QE={qe:.4f} TE={te:.4f}", flush=True)
        updates = args.n_steps if name != "ours-batch" else args.n_epochs * len(x)
        fit = statistics.median(times)
        rows.append(
            {
                "method": name,
                "steps_or_epochs": args.n_steps if name != "ours-batch" else args.n_epochs,
                "sample_updates": updates,
                "fit_seconds_median": fit,
                "compile_seconds": compile_s,
                "eval_seconds": eval_seconds if name.startswith("ours") else None,
                "us_per_update": fit / updates * 1e6,
                "quantization_error_median": statistics.median(qes),
                "topographic_error_median": statistics.median(tes),
                "repeats": args.repeats,
            }
        )
    write(rows, args, ds, x, grid)


def write(rows, args, ds, x, grid):
    out = report.write_csv(rows, args.out)
    ref = next((r for r in rows if r["method"] == "minisom"), None)
    lines = [
        (
            f"SOM {grid[0]}x{grid[1]} on {ds.name}/{args.split} ({x.shape[0]}x{x.shape[1]}); sigma={args.sigma}, "
            f"learning_rate={args.learning_rate}, asymptotic decay, init={args.init} (the same start for all); "
            f"{report.cpu_name()}, {os.cpu_count()} cores; median of {args.repeats} seeds; jax {jax.__version__} on "
            f"{jax.default_backend()}."
        ),
        "",
        (
            "| method | steps / epochs | fit s (median) | compile s | eval s | us / update | speed-up vs MiniSom | QE | "
            "QE / MiniSom | TE |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = f"{ref['us_per_update'] / r['us_per_update']:.1f}x" if ref else ""
        ratio = f"{r['quantization_error_median'] / ref['quantization_error_median']:.4f}" if ref else ""
        comp = f"{r['compile_seconds']:.2f}" if r["compile_seconds"] is not None else "-"
        ev = f"{r['eval_seconds']:.2f}" if r["eval_seconds"] is not None else "-"
        unit = "epochs" if r["method"] == "ours-batch" else "steps"
        lines.append(
            f"| {r['method']} | {r['steps_or_epochs']} {unit} | {r['fit_seconds_median']:.2f} | {comp} | {ev} | "
            f"{r['us_per_update']:.2f} | {speed} | {r['quantization_error_median']:.4f} | {ratio} | "
            f"{r['topographic_error_median']:.4f} |"
        )
    cmd = (
        f"python -m bench.som_vs_minisom --split={args.split} --n_samples={args.n_samples} --grid={args.grid} "
        f"--n_steps={args.n_steps} --n_epochs={args.n_epochs} --sigma={args.sigma} "
        f"--learning_rate={args.learning_rate} --init={args.init} --repeats={args.repeats}"
    )
    lines += ["", f"Command: `{cmd}`"]
    report.write_markdown(lines, out)


if __name__ == "__main__":
    main()
