r"""Self-organizing map side by side: jaxcluster (online and batch) vs MiniSom, same data, same run.

  pip install -e '.[bench]'   # minisom
  JAXCLUSTER_DATA=../shared/datasets python -m bench.som_vs_minisom
  python -m bench.som_vs_minisom --n_samples=5000 --n_steps=5000 --repeats=1   # a quick look

MNIST-70k, pixels in [0, 1]. Every method starts from the same codebook (`som.initial_codebook`, --init).
Online: the same grid, sigma, learning rate, steps and MiniSom's default (asymptotic) schedules; MiniSom
runs `train_random`, ours `som.fit(mode="online")`. Ours in batch mode runs --n_epochs epochs. Reported:
median fit time over seeds (ours: compilation apart; the fit includes its final pass, timed alone as
"eval s"), microseconds per sample update, and the quantization and topographic errors, computed by the
same functions for every method. Writes results/som_vs_minisom.md and .csv.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from bench import common
from research import data
from research.cluster import som


def run_ours(mode, x, init, args, seed, first):
    kwargs = {"sigma": args.sigma, "learning_rate": args.learning_rate, "init": init, "mode": mode}
    kwargs |= {"n_steps": args.n_steps} if mode == "online" else {"n_epochs": args.n_epochs}
    res, secs, comp = common.timed(som.fit_timed, som.fit, first, jax.random.key(seed), x, init.shape[:2], **kwargs)
    return res.codebook_hwd, secs, comp


def run_minisom(x, init, args, seed, first):
    from minisom import MiniSom

    h, w, d = init.shape
    m = MiniSom(h, w, d, sigma=args.sigma, learning_rate=args.learning_rate, random_seed=seed)
    m._weights = np.array(init, np.float64)  # MiniSom keeps float64 weights
    _, secs, _ = common.clock(m.train_random, x, args.n_steps)
    return m.get_weights(), secs, None


METHODS = {"ours-online": (run_ours, "online"), "ours-batch": (run_ours, "batch"), "minisom": (run_minisom,)}


def main():
    ap = common.parser(__doc__, "results/som_vs_minisom")
    ap.add_argument("--split", default="all")
    ap.add_argument("--n_samples", type=int, default=0, help="use a random subset of this size (0: all)")
    ap.add_argument("--grid", default="16,16", help="rows,cols")
    ap.add_argument("--n_steps", type=int, default=140_000, help="online steps (one sample each)")
    ap.add_argument("--n_epochs", type=int, default=10, help="our batch mode's epochs")
    ap.add_argument("--sigma", type=float, default=4.0)
    ap.add_argument("--learning_rate", type=float, default=0.5)
    ap.add_argument("--init", default="pca", choices=["pca", "sample", "random"])
    ap.add_argument("--methods", default="ours-online,ours-batch,minisom")
    args = ap.parse_args()

    ds = data.load(args.dataset, args.split, args.data_dir)
    x = np.ascontiguousarray(ds.x, np.float32)
    if 0 < args.n_samples < len(x):
        x = x[np.sort(np.random.default_rng(0).choice(len(x), args.n_samples, replace=False))]
    grid = tuple(int(v) for v in args.grid.split(","))
    init = np.asarray(som.initial_codebook(jax.random.key(0), x, grid, args.init))

    jax.block_until_ready(som.topographic_error(init, x))  # compiles
    t0 = time.perf_counter()
    jax.block_until_ready(som.topographic_error(init, x))
    eval_seconds = time.perf_counter() - t0

    rows = []
    for name in args.methods.split(","):
        fn, *mode = METHODS[name]
        rep = common.repeat(fn, args.repeats, *mode, x, init, args, label=name)
        qes = [float(som.quantization_error(c, x)) for c in rep.outs]
        tes = [float(som.topographic_error(c, x)) for c in rep.outs]
        updates = args.n_steps if name != "ours-batch" else args.n_epochs * len(x)
        rows.append(
            {
                "method": name,
                "steps_or_epochs": args.n_steps if name != "ours-batch" else args.n_epochs,
                "sample_updates": updates,
                "fit_seconds_median": rep.median,
                "compile_seconds": rep.compile_seconds,
                "eval_seconds": eval_seconds if name.startswith("ours") else None,
                "us_per_update": rep.median / updates * 1e6,
                "quantization_error_median": statistics.median(qes),
                "topographic_error_median": statistics.median(tes),
                "repeats": args.repeats,
            }
        )
    caption = (
        f"SOM {grid[0]}x{grid[1]} on {ds.name}/{args.split} ({x.shape[0]}x{x.shape[1]}); sigma={args.sigma}, "
        f"learning_rate={args.learning_rate}, asymptotic decay, init={args.init} (the same start for all); "
        f"median of {args.repeats} seeds."
    )
    common.write_table(rows, table_columns(rows), args.out, "bench.som_vs_minisom", caption=caption)


def table_columns(rows):
    ref = next((r for r in rows if r["method"] == "minisom"), {})
    return [
        ("method", "method"),
        ("steps / epochs", lambda r: f"{r['steps_or_epochs']} {'epochs' if r['method'] == 'ours-batch' else 'steps'}"),
        ("fit s (median)", "fit_seconds_median", ".2f"),
        ("compile s", "compile_seconds", ".2f"),
        ("eval s", "eval_seconds", ".2f"),
        ("us / update", "us_per_update", ".2f"),
        ("speed-up vs MiniSom", lambda r: common.ratio(ref.get("us_per_update"), r["us_per_update"])),
        ("QE", "quantization_error_median", ".4f"),
        (
            "QE / MiniSom",
            lambda r: common.ratio(r["quantization_error_median"], ref.get("quantization_error_median"), ".4f", ""),
        ),
        ("TE", "topographic_error_median", ".4f"),
    ]


if __name__ == "__main__":
    main()
