r"""Mini-batch k-means on a memory-mapped array: jaxcluster vs scikit-learn MiniBatchKMeans, same run.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.minibatch_kmeans                # 2M rows, 6.3 GB file
  python -m bench.minibatch_kmeans --n_rows=200000 --check_rows=5000 --out=/tmp/mb   # smoke test

The data: MNIST-70k tiled to --n_rows rows with Gaussian noise (--noise), written to a float32 .npy (--npy
keeps it); both methods read it through np.load(mmap_mode="r") with the same settings. Each fit runs in its
own subprocess, so peak memory is per method: VmHWM (counts the file's mapped pages) and the peak of RssAnon
(what the process allocated itself). Wall time covers the whole fit call; ours also reports compilation.
Quality, by the same code for every method: inertia over all rows, ACC/NMI, and the subsample check (the
centroids' inertia on --check_rows rows over full k-means' on them; within 1.02 passes).
Writes <out>.md and <out>.csv (default results/minibatch_kmeans).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHECK_TOLERANCE = 1.02


# ---------------------------------------------------------------------------------------------- the data file


def make_file(path: Path, n_rows: int, noise: float, data_dir, seed: int = 0, dataset: str = "mnist") -> None:
    """The dataset (MNIST-70k) tiled to n_rows rows with noise, written a copy at a time (never all in memory)."""
    from research import data

    ds = data.load(dataset, "all", data_dir)
    base = np.ascontiguousarray(ds.x, np.float32)
    n0, d = base.shape
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n_rows, d)})
        for start in range(0, n_rows, n0):
            m = min(n0, n_rows - start)
            chunk = base[:m] + rng.normal(0.0, noise, (m, d)).astype(np.float32) if noise > 0 else base[:m]
            f.write(np.ascontiguousarray(chunk, np.float32).tobytes())
    os.replace(tmp, path)
    np.save(path.with_name(f"{path.stem}_labels.npy"), np.resize(ds.y, n_rows))


# ---------------------------------------------------------------------------------------------- one fit, measured


class PeakSampler:
    """Samples /proc/<pid>/status in a thread (this process's by default): the peaks of VmRSS, RssAnon,
    RssFile, and VmHWM (KiB). A process that has ended reads as nothing."""

    def __init__(self, every: float = 0.005, pid: int | str = "self"):
        self.peak = {"VmHWM": 0, "VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._every = every
        self._path = f"/proc/{pid}/status"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict:
        try:
            with open(self._path) as f:
                lines = f.readlines()
        except FileNotFoundError:  # the process has ended
            return {}
        fields = (line.split(":", 1)[0] for line in lines)
        return {key: int(line.split()[1]) for key, line in zip(fields, lines) if key in self.peak}

    def _run(self):
        while not self._stop.is_set():
            for k, v in self.sample().items():
                self.peak[k] = max(self.peak[k], v)
            time.sleep(self._every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for k, v in self.sample().items():
            self.peak[k] = max(self.peak[k], v)


def worker(args) -> None:
    """Fits one method on the memory-mapped file and prints one JSON line; centroids go to --centroids_out."""
    x = np.load(args.npy, mmap_mode="r")
    common = {"batch_size": args.batch_size, "n_init": args.n_init, "max_iter": args.max_iter}
    if args.worker == "jaxcluster":
        import jax

        from research.cluster import minibatch_kmeans

        key = jax.random.key(args.seed)
    else:
        from sklearn.cluster import MiniBatchKMeans
    sampler = PeakSampler()
    before = sampler.sample()
    with sampler:
        t0 = time.perf_counter()
        if args.worker == "jaxcluster":
            t = minibatch_kmeans.fit_timed(key, x, args.n_clusters, max_no_improvement=10, **common)
            centroids, steps, compile_s = np.asarray(t.out.centroids), int(t.out.n_iter), t.compile_seconds
            run_s = t.run_seconds
        else:
            km = MiniBatchKMeans(
                args.n_clusters, random_state=args.seed, max_no_improvement=10, reassignment_ratio=0.01, **common
            ).fit(x)
            centroids, steps, compile_s, run_s = km.cluster_centers_, int(km.n_steps_), None, None
        wall = time.perf_counter() - t0
    np.save(args.centroids_out, np.asarray(centroids, np.float32))
    out = {
        "wall_seconds": wall,
        "run_seconds": run_s,
        "compile_seconds": compile_s,
        "n_steps": steps,
        "peak_rss_mib": sampler.peak["VmHWM"] / 1024,
        "peak_anon_mib": sampler.peak["RssAnon"] / 1024,
        "peak_file_mib": sampler.peak["RssFile"] / 1024,  # mapped file pages: the data and the libraries
        "rss_before_fit_mib": before.get("VmRSS", 0) / 1024,
    }
    print("RESULT " + json.dumps(out), flush=True)


def run_worker(method, args, seed, centroids_out) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.minibatch_kmeans",
        f"--worker={method}",
        f"--npy={args.npy}",
        f"--seed={seed}",
        f"--centroids_out={centroids_out}",
        f"--n_clusters={args.n_clusters}",
        f"--batch_size={args.batch_size}",
        f"--n_init={args.n_init}",
        f"--max_iter={args.max_iter}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{method} worker failed:\n{out.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# ---------------------------------------------------------------------------------------------- main


def main():
    from bench import common

    ap = common.parser(__doc__, "results/minibatch_kmeans")
    ap.add_argument("--n_rows", type=int, default=2_000_000)
    ap.add_argument("--npy", default=None, help="where to write the .npy and keep it (reused if it has --n_rows rows)")
    ap.add_argument("--noise", type=float, default=0.02, help="std of the Gaussian noise on each tiled copy")
    ap.add_argument("--n_clusters", type=int, default=10)
    ap.add_argument("--batch_size", type=int, default=1024)
    ap.add_argument("--n_init", type=int, default=3, help="seeding candidates, both methods")
    ap.add_argument("--max_iter", type=int, default=100, help="epochs at most, both methods")
    ap.add_argument("--methods", default="jaxcluster,scikit-learn")
    ap.add_argument("--check_rows", type=int, default=70_000)
    ap.add_argument("--check_n_init", type=int, default=10)
    # Internal: one fit in a subprocess.
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--centroids_out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    with tempfile.TemporaryDirectory(prefix="minibatch_bench_") as tmpdir:
        npy = Path(args.npy) if args.npy else Path(tmpdir) / f"mnist_tiled_{args.n_rows}.npy"
        args.npy = str(npy)
        if not (npy.exists() and np.load(npy, mmap_mode="r").shape[0] == args.n_rows):
            t0 = time.perf_counter()
            make_file(npy, args.n_rows, args.noise, args.data_dir, dataset=args.dataset)
            print(f"wrote {npy} ({npy.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f}s", flush=True)
        rows = bench(args, npy, tmpdir)
        n_features = np.load(npy, mmap_mode="r").shape[1]
    r0 = rows[0]
    source = "MNIST-70k" if args.dataset == "mnist" else args.dataset
    caption = (
        f"Mini-batch k-means on a memory-mapped float32 .npy: {source} tiled to {r0['n_rows']} rows x {n_features} "
        f"(noise std {args.noise}), {r0['array_gib']:.2f} GiB; k={args.n_clusters}, batch {args.batch_size}, "
        f"n_init={args.n_init}, max_iter={args.max_iter} epochs, max_no_improvement=10; median of {args.repeats} "
        "seeds, each fit in its own process."
    )
    check = (
        f"Subsample check: inertia of each method's centroids on {args.check_rows} random rows over the "
        f"inertia of full k-means fitted on them (n_init={args.check_n_init}); pass: at most {CHECK_TOLERANCE} "
        "(worst seed shown). Peak RSS counts the file's pages mapped into the process (page cache, "
        "reclaimable); peak anon is the memory the process allocated itself. Wall time includes the input "
        "check, the seeding, the steps and the labelling pass over all rows; compile is part of it."
    )
    common.write_table(rows, COLUMNS, args.out, "bench.minibatch_kmeans", caption=caption, notes=[check])


def bench(args, npy: Path, tmpdir: str) -> list[dict]:
    import jax

    from research import metrics
    from research.cluster import kmeans, minibatch_kmeans

    x = np.load(npy, mmap_mode="r")
    y = np.load(npy.with_name(f"{npy.stem}_labels.npy"))
    rng = np.random.default_rng(12345)
    sub = np.asarray(x[np.sort(rng.choice(len(x), min(args.check_rows, len(x)), replace=False))], np.float32)
    ref = kmeans.fit(jax.random.key(0), sub, args.n_clusters, n_init=args.check_n_init)
    ref_inertia = float(ref.inertia)
    print(f"full k-means on a {len(sub)}-row subsample: inertia {ref_inertia:.7g}", flush=True)

    rows = []
    for method in args.methods.split(","):
        per = []
        for seed in range(args.repeats):
            path = Path(tmpdir) / f"{method}_{seed}.npy"
            r = run_worker(method, args, seed, path)
            c = np.load(path)
            labels, inertia = minibatch_kmeans.labels_inertia(c, x)
            sub_inertia = minibatch_kmeans.labels_inertia(c, sub)[1]
            r.update(
                inertia=inertia,
                check_ratio=sub_inertia / ref_inertia,
                acc=metrics.acc(y, labels),
                nmi=metrics.nmi(y, labels),
            )
            per.append(r)
            print(
                f"{method:12s} seed={seed} wall {r['wall_seconds']:.2f}s steps {r['n_steps']} "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB anon {r['peak_anon_mib']:.0f} MiB "
                f"inertia {inertia:.7g} check {r['check_ratio']:.4f} acc {r['acc']:.4f}",
                flush=True,
            )
        rows.append(summary(method, per, x, args))
    return rows


def summary(method, per, x, args) -> dict:
    def med(key):
        return statistics.median(p[key] for p in per)

    return {
        "method": method,
        "n_rows": int(x.shape[0]),
        "array_gib": x.nbytes / 2**30,
        "wall_seconds_median": med("wall_seconds"),
        "compile_seconds": per[0]["compile_seconds"],
        "n_steps_median": med("n_steps"),
        "peak_rss_gib_max": max(p["peak_rss_mib"] for p in per) / 1024,
        "peak_anon_gib_max": max(p["peak_anon_mib"] for p in per) / 1024,
        "peak_file_gib_max": max(p["peak_file_mib"] for p in per) / 1024,
        "rss_before_fit_gib": per[0]["rss_before_fit_mib"] / 1024,
        "inertia_median": med("inertia"),
        "check_ratio_max": max(p["check_ratio"] for p in per),
        "check_pass": all(p["check_ratio"] <= CHECK_TOLERANCE for p in per),
        "acc_mean": float(np.mean([p["acc"] for p in per])),
        "nmi_mean": float(np.mean([p["nmi"] for p in per])),
        "repeats": args.repeats,
    }


COLUMNS = [
    ("method", "method"),
    ("wall s (median)", "wall_seconds_median", ".2f"),
    ("compile s", "compile_seconds", ".2f"),
    ("steps", "n_steps_median", ".0f"),
    ("peak RSS GiB", "peak_rss_gib_max", ".2f"),
    ("peak anon GiB", "peak_anon_gib_max", ".2f"),
    ("array GiB", "array_gib", ".2f"),
    ("inertia (all rows)", "inertia_median", ".7g"),
    (
        "subsample inertia / full k-means",
        lambda r: f"{r['check_ratio_max']:.4f} ({'pass' if r['check_pass'] else 'FAIL'})",
    ),
    ("ACC", "acc_mean", ".4f"),
    ("NMI", "nmi_mean", ".4f"),
]


if __name__ == "__main__":
    main()
