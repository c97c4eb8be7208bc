r"""DEC and IDEC clustering stages: jaxcluster vs ClustPy (PyTorch) on the same autoencoder weights and settings.

  pip install -e '.[bench-clustpy]'   # a venv of its own: clustpy + the CUDA torch 2.14.1; '.[bench]' stays light
  python -m bench.deep_vs_clustpy --clustpy_python=<that venv>/bin/python --seeds=0,1 --ae_epochs=20   # digits
  JAXCLUSTER_DATA=../shared/datasets python -m bench.deep_vs_clustpy --dataset=mnist --clustpy_python=... \
      --pretrained='checkpoints/autoencoder/mnist-dec-sgd-seed{seed}'

Per seed one d-500-500-2000-10 autoencoder (pretrained here, or --pretrained) is copied into ClustPy's
FeedforwardAutoencoder (in another process); both stages start from k-means (20 restarts, timed with the stage),
batch 256; DEC: SGD lr 0.01 momentum 0.9; IDEC: Adam lr 0.001, gamma 0.1. Ours in the DEC paper's mode
(--targets=full) recomputes P on all samples every 140 steps and stops below 0.1% changed labels; ClustPy has
neither (each batch is its own target), so it runs as many steps as that took. Ours with ClustPy's rule
(--targets=batch: dec.DECConfig(target="batch", tol=0)) runs those same steps with each batch its own target and
no pass over the data until the final labels. Table: stage seconds min / median / max and mean ± std over seeds,
ours' compile apart, steps/s, the share of this machine's float32 matmul rate that the steps reach, ACC / NMI;
below it the per-seed rows and every setting that differs.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from bench import common
from research import data, metrics, nets, report, timing
from research.cluster import kmeans
from research.deep import dec, pretrain
from research.nets.mlp import MLPAutoencoder

MODULE = "bench.deep_vs_clustpy"
SIDE = Path(__file__).with_name("_clustpy_side.py")
# The DEC paper's and the IDEC paper's clustering settings (experiments/configs/{dec,idec}_mnist.flags).
METHODS = {
    "dec": {"name": "DEC", "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9, "gamma": None},
    "idec": {"name": "IDEC", "optimizer": "adam", "learning_rate": 1e-3, "momentum": 0.9, "gamma": 0.1},
}
OURS, OURS_BATCH, PEER = "jaxcluster", "jaxcluster, batch P", "ClustPy"
IMPLS = {"full": OURS, "batch": OURS_BATCH}
CHECK_ROWS = 1024  # samples whose codes both networks compute, to show the weights arrived intact


def autoencoder(args, seed: int, x: np.ndarray, ds: data.Dataset):
    """(model, params, spec, pretraining seconds or None) for this seed: --pretrained's, or pretrained now."""
    if args.pretrained:
        path = args.pretrained.format(seed=seed)
        model, params, spec = pretrain.load_model(path)
        if spec["input_dim"] != x.shape[1]:
            raise SystemExit(f"--pretrained={path} encodes {spec['input_dim']} features; {ds.name} has {x.shape[1]}.")
        if not isinstance(model, MLPAutoencoder):
            raise SystemExit(f"--pretrained={path} is a {spec['arch']} network; ClustPy's side takes dense ones.")
        return model, params, spec, None
    model = nets.build("dec", x.shape[1])
    spec = {"arch": "dec", "input_dim": int(x.shape[1]), "image_shape": None, "activation": "relu"}
    spec |= {"init": "glorot", "loss": "mse", "dataset": ds.name, "split": "all"}
    wd = args.ae_workdir.format(seed=seed) if args.ae_workdir else None
    cfg = pretrain.PretrainConfig(epochs=args.ae_epochs)  # Adam lr 1e-3, MSE, batch 256: experiments.autoencoder's
    t0 = time.perf_counter()
    params = pretrain.pretrain(jax.random.key(seed), model, x, cfg, workdir=wd, config={**spec, "seed": seed})
    seconds = time.perf_counter() - t0
    if wd is not None:
        pretrain.save_model(wd, spec, params, overwrite=True)
    return model, params, spec, seconds


def export(params) -> dict:
    """Flax params -> {"enc_0.kernel": [in, out] float32, ...} for the npz ClustPy's side reads."""
    return {
        f"{layer}.{name}": np.asarray(v, np.float32) for layer, p in params["params"].items() for name, v in p.items()
    }


def dec_config(method: str, k: int, args, loss: str) -> dec.DECConfig:
    m = METHODS[method]
    return dec.DECConfig(
        n_clusters=k,
        max_iter=args.max_iter,
        n_init=args.n_init,
        batch_size=256,
        update_interval=140,
        tol=1e-3,
        optimizer=m["optimizer"],
        learning_rate=m["learning_rate"],
        momentum=m["momentum"],
        gamma=m["gamma"],
        loss=loss,
    )


def step_flops(params, method: str, batch_size: int) -> float:
    """Matmul FLOPs of one training step: 2 per weight and sample forward, twice that backward, less the input
    gradient of the first layer (the data need none); DEC trains the encoder, IDEC the whole autoencoder."""
    kernels = [p["kernel"].shape for name, p in params["params"].items() if method == "idec" or name.startswith("enc_")]
    first = params["params"]["enc_0"]["kernel"].shape
    return 2.0 * batch_size * (3 * sum(a * b for a, b in kernels) - first[0] * first[1])


def matmul_gflops(size: int = 2048, reps: int = 20) -> float:
    """This machine's float32 matmul rate through XLA: a size x size jnp.dot, repeated (GFLOP/s)."""
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    dot = jax.jit(lambda m: m @ m)
    jax.block_until_ready(dot(a))
    t0 = time.perf_counter()
    for _ in range(reps):
        out = dot(a)
    jax.block_until_ready(out)
    return 2.0 * size**3 * reps / (time.perf_counter() - t0) / 1e9


def warm_up(model, params, x, cfg) -> float:
    """Compiles our stage for these shapes (a fit of one target interval); returns the seconds spent compiling."""
    with timing.CompileClock() as cc:
        dec.fit(jax.random.key(0), model, params, x, cfg._replace(max_iter=min(cfg.update_interval, cfg.max_iter)))
    return cc.seconds


def run_ours(model, params, x, cfg, seed: int) -> dict:
    """Our stage, called in-process as experiments.dec calls it (no y: no metrics at each update). With
    cfg.target="batch" (tol 0) it runs exactly cfg.max_iter steps, ClustPy's rule."""
    key = jax.random.fold_in(jax.random.key(seed), 1)  # experiments.dec's key for the stage
    with timing.CompileClock() as cc:
        t0 = time.perf_counter()
        res = dec.fit(key, model, params, x, cfg)
        stage = time.perf_counter() - t0
    load = os.getloadavg()[0]
    # The first lines of fit again, alone: codes and k-means (compiled by now), to split the stage's time.
    t0 = time.perf_counter()
    z0 = dec.embed(model, {"ae": params}, x)
    jax.block_until_ready(kmeans.fit(jax.random.split(key)[0], z0, cfg.n_clusters, n_init=cfg.n_init))
    init = time.perf_counter() - t0
    return {
        "labels": np.asarray(res.labels),
        "init_labels": np.asarray(res.init_labels),
        "steps": res.n_iter,
        "stopped": "tol" if res.converged else ("full P's steps" if cfg.target == "batch" else "max_iter"),
        "stage_s": stage,
        "init_s": init,
        "train_s": stage - init,  # steps, the updates every 140 steps (full P) and the final labels
        "compile_in_stage_s": cc.seconds,
        "load_1m": load,
        # The steps alone, without the updates between stretches: the median stretch's rate.
        "loop_steps_per_s": statistics.median(h["samples_per_s"] for h in res.history[1:]) / cfg.batch_size,
    }


def run_clustpy(args, x, params, spec, seed: int, runs: list[dict], threads: int) -> tuple[np.ndarray, dict, dict]:
    """ClustPy's side in its own process: (its codes of x[:CHECK_ROWS], its info, labels by name)."""
    meta = {
        "seed": seed,
        "threads": threads,
        "n_clusters": runs[0]["n_clusters"],
        "n_init": args.n_init,
        "batch_size": 256,
        "alpha": 1.0,
        "widths": [int(p["kernel"].shape[1]) for n, p in sorted(params["params"].items()) if n.startswith("enc_")],
        "activation": spec["activation"],
        "loss": spec["loss"],
        "check_rows": CHECK_ROWS,
        "runs": runs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = f"{tmp}/in.npz", f"{tmp}/out.npz"
        np.savez(src, x=x, meta=json.dumps(meta), **export(params))
        subprocess.run([args.clustpy_python, str(SIDE), src, dst], check=True)
        with np.load(dst) as f:
            return f["codes"], json.loads(str(f["info"])), {k: f[k] for k in f.files if "labels" in k}


def score(y, labels) -> dict:
    return {"acc": metrics.acc(y, labels), "nmi": metrics.nmi(y, labels)}


def main():
    ap = common.parser(__doc__, "results/deep_vs_clustpy", dataset="digits", repeats=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n_samples", type=int, default=0, help="the first n samples only (0: all)")
    ap.add_argument("--ae_epochs", type=float, default=50, help="pretraining epochs when --pretrained is not given")
    ap.add_argument("--pretrained", default=None, help="autoencoder workdir to reuse; '{seed}' becomes the seed")
    ap.add_argument("--ae_workdir", default=None, help="save the autoencoders pretrained here ('{seed}' as above)")
    ap.add_argument("--max_iter", type=int, default=20000, help="our step cap (DEC and IDEC papers: 20000)")
    ap.add_argument("--n_init", type=int, default=20, help="k-means restarts for the initial centroids, both sides")
    ap.add_argument("--methods", default="dec,idec")
    ap.add_argument(
        "--targets", default="full,batch", help="ours' target P: full (the DEC paper), batch (ClustPy's rule); both"
    )
    ap.add_argument("--clustpy_python", default=os.environ.get("CLUSTPY_PYTHON", sys.executable))
    args = ap.parse_args()
    methods = args.methods.split(",")
    if unknown := set(methods) - set(METHODS):
        raise SystemExit(f"--methods: unknown {sorted(unknown)}; choose from {sorted(METHODS)}.")
    targets = args.targets.split(",")
    if "full" not in targets or set(targets) - set(IMPLS):
        raise SystemExit(f"--targets={args.targets}: give full, or full,batch (batch runs full's number of steps).")
    ds = data.load(args.dataset, "all", args.data_dir)
    x, y = ds.x[: args.n_samples or None], ds.y[: args.n_samples or None]
    k = len(np.unique(y))
    threads = len(os.sched_getaffinity(0))  # XLA's CPU pool uses every core it may run on; torch gets as many
    rows, compile_s, versions = [], {}, {}
    peak = matmul_gflops()
    print(f"float32 matmul (2048 x 2048, XLA): {peak:.0f} GFLOP/s", flush=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        model, params, spec, ae_s = autoencoder(args, seed, x, ds)
        source = f"pretrained in {ae_s:.1f} s" if ae_s is not None else f"from {args.pretrained.format(seed=seed)}"
        print(f"seed {seed}: autoencoder {source}", flush=True)
        runs = []
        flops = {method: step_flops(params, method, 256) for method in methods}
        for method in methods:
            steps = None
            for target in targets:
                cfg = dec_config(method, k, args, spec["loss"])
                if target == "batch":  # ClustPy's rule, for the steps the full target took
                    cfg = cfg._replace(target="batch", tol=0.0, max_iter=steps)
                if (method, target) not in compile_s:
                    compile_s[method, target] = warm_up(model, params, x, cfg)
                r = run_ours(model, params, x, cfg, seed)
                steps = steps or r["steps"]
                rows.append(
                    _row(method, IMPLS[target], seed, r, y, compile_s=compile_s[method, target], flops=flops[method])
                )
                print(
                    f"{IMPLS[target]} {method} seed={seed}: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in _numbers(rows[-1])),
                    flush=True,
                )
            runs.append({"method": method, "steps": steps, "n_clusters": k, **METHODS[method]})
        codes, info, labels = run_clustpy(args, x, params, spec, seed, runs, threads)
        diff = float(np.max(np.abs(codes - pretrain.encode(model, params, x[:CHECK_ROWS]))))
        print(f"seed {seed}: codes of {len(codes)} samples, ours vs ClustPy's network: max |difference| {diff:.2e}")
        versions = {"torch": info["torch"], "clustpy": info["clustpy"], "threads": info["threads"]}
        versions["torch_matmul_gflops"] = info.get("matmul_gflops")
        for i, run in enumerate(info["runs"]):
            r = {
                "labels": labels[f"labels_{i}"],
                "init_labels": labels[f"init_labels_{i}"],
                "steps": run["steps"],
                "stopped": "ours' steps",
                **{f"{p}_s": run[f"{p}_seconds"] for p in ("stage", "init", "predict", "fit")},
                "train_s": run["stage_seconds"] - run["init_seconds"],  # as ours: the steps and the final labels
                "loop_s": run["train_seconds"],  # the steps alone
                "loop_steps_per_s": run["steps"] / run["train_seconds"],
                "loader_ms_per_step": run["loader_ms_per_step"],
                "warmup_s": run["warmup_seconds"],
                "centers_dtype": run["centers_dtype"],
                "load_1m": run["load_1m"],
            }
            rows.append(_row(run["method"], PEER, seed, r, y, code_diff=diff, flops=flops[run["method"]]))
    for row in rows:
        row["matmul_share"] = row["loop_steps_per_s"] * row["flops"] / 1e9 / peak
    summary = _summarise(rows, methods, [IMPLS[t] for t in targets])
    _write(args, ds, x, k, spec["arch"], rows, summary, threads, versions, peak)


def summary_flops(rows) -> str:
    per = {r["method"]: r["flops"] for r in rows}
    return ", ".join(f"{m} {f / 1e9:.2f} GFLOP" for m, f in per.items())


def _numbers(row):
    return [(k, v) for k, v in row.items() if isinstance(v, float | int) and k != "seed"]


def _row(method, impl, seed, r, y, **extra) -> dict:
    row = {"row": "seed", "method": METHODS[method]["name"], "impl": impl, "seed": seed}
    row |= {k: v for k, v in r.items() if "labels" not in k}
    row |= score(y, r["labels"]) | {f"init_{m}": v for m, v in score(y, r["init_labels"]).items()}
    row["steps_per_s"] = r["steps"] / r["train_s"]
    return row | extra


def _summarise(rows, methods, ours) -> list[dict]:
    out = []
    for method in [METHODS[m]["name"] for m in methods]:
        group = {impl: [r for r in rows if r["method"] == method and r["impl"] == impl] for impl in (*ours, PEER)}
        peer_median = statistics.median(r["stage_s"] for r in group[PEER])
        peer_by_seed = {r["seed"]: r["stage_s"] for r in group[PEER]}  # the same steps as ours on that seed
        for impl, rs in group.items():
            t, acc = [r["stage_s"] for r in rs], [r["acc"] for r in rs]
            per_seed = [peer_by_seed[r["seed"]] / r["stage_s"] for r in rs]
            out.append(
                {
                    "row": "summary",
                    "method": method,
                    "impl": impl,
                    "seeds": len(rs),
                    "steps_median": statistics.median(r["steps"] for r in rs),
                    "stage_s_min_median_max": report.spread(t, 2),
                    "stage_s_mean_std": report.mean_std(t, 2),
                    "stage_s_median": statistics.median(t),
                    "steps_per_s_median": statistics.median(r["steps_per_s"] for r in rs),
                    "loop_steps_per_s_median": statistics.median(r["loop_steps_per_s"] for r in rs),
                    "matmul_share_median": statistics.median(r["matmul_share"] for r in rs),
                    "compile_s": rs[0].get("compile_s"),
                    "acc_mean_std": report.mean_std(acc),
                    "acc_min_median_max": report.spread(acc),
                    "nmi_mean_std": report.mean_std([r["nmi"] for r in rs]),
                    "speedup_vs_clustpy": peer_median / statistics.median(t),
                    "speedup_per_seed": report.spread(per_seed, 2),
                    "speedup_all_seeds": sum(peer_by_seed[r["seed"]] for r in rs) / sum(t),
                }
            )
    return out


SETTINGS = (
    "Settings: both DEC: SGD lr 0.01 momentum 0.9; IDEC: Adam lr 0.001 (eps 1e-8), gamma 0.1 on the KL, the "
    "reconstruction a per-element mean squared error; batch 256; alpha 1; float32 network."
)
DIFFERENCES = (
    (
        "- Target P: ours (jaxcluster) recomputes it on all n samples every 140 steps (one full encoding pass, as in "
        "the DEC paper); ClustPy computes it from each minibatch's own Q at every step (batch cluster frequencies), "
        'and so does ours in the rows "jaxcluster, batch P" (same loss gradient: P held constant).'
    ),
    (
        "- Stopping: ours (full P) stops when fewer than 0.1% of labels changed between two updates, or at "
        "--max_iter; ClustPy trains a fixed number of epochs. It is given one epoch of a sampler that draws exactly "
        "the full-P run's number of steps (fresh permutations back to back), through its custom_dataloaders "
        "argument; ours with batch P runs that number of steps too (tol 0: no labelling pass before the end)."
    ),
    "- Epochs: ours cuts floor(n / 256) batches per permutation; ClustPy's sampler lets batches straddle two.",
    (
        "- k-means init: ours is jaxcluster's k-means (k-means++, --n_init restarts); ClustPy's is scikit-learn's "
        "KMeans(n_init=--n_init) on float64 codes, so its centroids, and with them its DEC cluster layer, are float64."
    ),
    (
        "- IDEC's reconstruction loss: ClustPy's default sums squared errors over features; it is given ours "
        "(mean over features, as the IDEC paper's Keras code), so gamma weighs the same thing."
    ),
    (
        "- ClustPy's fit() ends by re-clustering the codes with KMeans (its labels_): left out of its stage time "
        "(fit_s in the CSV includes it); ACC here is of its DEC labels (dec_labels_), argmax Q as ours."
    ),
)
SUMMARY_COLUMNS = [
    ("method", "method"),
    ("implementation", "impl"),
    ("steps (median)", "steps_median", ".0f"),
    ("stage s: min / median / max", "stage_s_min_median_max"),
    ("stage s: mean ± std", "stage_s_mean_std"),
    ("steps/s (median)", "steps_per_s_median", ".1f"),
    ("steps/s, steps alone", "loop_steps_per_s_median", ".1f"),
    ("steps alone: share of matmul rate", "matmul_share_median", ".0%"),
    ("compile s", "compile_s", ".2f"),
    ("ACC: mean ± std", "acc_mean_std"),
    ("ACC: min / median / max", "acc_min_median_max"),
    ("NMI: mean ± std", "nmi_mean_std"),
    ("speed vs ClustPy (median stage)", lambda r: common.ratio(r["speedup_vs_clustpy"], 1.0, ".2f")),
    ("speed vs ClustPy, same seed: min / median / max", "speedup_per_seed"),
    ("speed vs ClustPy, all seeds (summed stage s)", lambda r: common.ratio(r["speedup_all_seeds"], 1.0, ".2f")),
]
SEED_COLUMNS = [
    ("method", "method"),
    ("implementation", "impl"),
    ("seed", "seed"),
    ("steps", "steps"),
    ("stopped by", "stopped"),
    ("stage s", "stage_s", ".2f"),
    ("k-means init s", "init_s", ".2f"),
    ("steps/s", "steps_per_s", ".1f"),
    ("steps/s, steps alone", "loop_steps_per_s", ".1f"),
    ("share of matmul rate", "matmul_share", ".0%"),
    ("compile inside stage s", "compile_in_stage_s", ".2f"),
    ("ACC", "acc", ".4f"),
    ("NMI", "nmi", ".4f"),
    ("k-means init ACC", "init_acc", ".4f"),
    ("codes max abs diff", "code_diff", ".1e"),
    ("load after", "load_1m", ".1f"),
]


def _write(args, ds, x, k, arch, rows, summary, threads, versions, peak) -> None:
    peer = f"ClustPy {versions['clustpy']} (torch {versions['torch']}, {versions['threads']} threads)"
    source = f"--pretrained={args.pretrained}" if args.pretrained else f"pretrained here, {args.ae_epochs:g} epochs"
    caption = (
        f"DEC and IDEC clustering stage on {ds.name} ({x.shape[0]}x{x.shape[1]}), K = {k}, "
        f"seeds {args.seeds}; the same autoencoder ({arch}) per seed ({source}) in both; jaxcluster vs "
        f"{peer}, one after the other on {threads} cores. Stage = codes + k-means ({args.n_init} restarts) + "
        "training + final labels; each side warmed up first in its process (ours: compiled, compile s apart; ClustPy: a "
        "10-step fit); ClustPy's final re-clustering left out."
    )
    notes = [
        (
            "Per seed. steps/s: steps over the stage less its k-means init (ours' includes its target updates); "
            "steps alone: ours' median stretch of 140 steps, ClustPy's training loop. Load after: the 1-minute load "
            "average when the stage ended; above the core count the CPUs were shared and the times are not comparable."
        ),
        (
            f"Share of matmul rate: the steps alone at {summary_flops(rows)} of matmul per step (weights only: "
            "2 FLOPs per weight and sample forward, 4 backward, no input gradient for the first layer), over this "
            f"machine's float32 rate for a 2048 x 2048 matmul through XLA, {peak:.0f} GFLOP/s"
            + (
                f" (torch's in ClustPy's process: {versions['torch_matmul_gflops']:.0f} GFLOP/s)."
                if versions.get("torch_matmul_gflops")
                else "."
            )
            + " The smaller matmuls of a 256-sample step run below it, so 100% is out of reach; the share bounds how "
            "much faster a step can get, and the ratio of two shares is the ratio of the step rates."
        ),
        "\n".join(report.markdown_table(rows, SEED_COLUMNS)),
        SETTINGS,
        "Not matched exactly (ClustPy cannot express them):",
        *DIFFERENCES,
        f"Date: {datetime.date.today().isoformat()}.",
        common.machine_line(MODULE),
    ]
    report.write_table(summary, SUMMARY_COLUMNS, args.out, caption=caption, notes=notes, csv_rows=rows + summary)


if __name__ == "__main__":
    main()
