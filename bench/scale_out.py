r"""Bigger than one process: k-means and GMM on a memory-mapped file, 1 process against 2 (jax.distributed).

  python -m bench.scale_out                                  # 10M rows x 64 float32 (2.6 GB), 1 vs 2 processes
  python -m bench.scale_out --rows=200000 --out=/tmp/so      # a quick look
  python -m bench.scale_out --methods= --stream_rows=120000000 --out=results/scale_out_stream   # a 30.7 GB file

The data: --clusters Gaussian blobs in --dim dimensions (centres in [-10, 10], std 1; seeded), written a chunk
at a time to a float32 .npy (--npy keeps it; never all in memory). Each fit is the binary a user runs
(`python -m experiments.kmeans|gmm --dataset=npy:<file>`): one process holding the whole array, then two on
127.0.0.1 (`--coordinator_address`), each reading only its half of the rows from the mapped file. Every process
is sampled from outside (/proc/<pid>/status): the peak of RssAnon (what it allocated itself; the mapped file's
pages are page cache and not counted) and VmHWM (everything, the mapped pages included). Reported: wall time of
the slowest process (start to exit: imports, the input check, compilation, the fit, the outputs), the fit's
own seconds from results.json, both peaks, and whether the 2-process labels equal the 1-process ones.

--stream_rows adds mini-batch k-means (`--minibatch_size`, one process) on a file of that many rows (120M x 64 is
30.7 GB, more than this 24 GB machine holds): its rows/s through the epoch and its peak anonymous memory.
Writes <out>.md and <out>.csv (default results/scale_out).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common
from bench.minibatch_kmeans import PeakSampler

COLUMNS = [  # (header, field, format)
    ("method", "method"),
    ("processes", "processes"),
    ("rows", "rows"),
    ("array GiB", "array_gib", ".2f"),
    ("wall s", "wall_seconds", ".1f"),
    ("fit s", "fit_seconds", ".1f"),
    ("compile s", "compile_seconds", ".1f"),
    ("peak anon GiB (per process, max)", "peak_anon_gib", ".2f"),
    ("peak RSS GiB (per process, max)", "peak_hwm_gib", ".2f"),
    ("rows/s", "rows_per_s", ".3g"),
    ("labels as 1 process", "labels_equal", ".6f"),
    ("ACC", "acc", ".4f"),
]


def make_file(path: Path, rows: int, dim: int, clusters: int, seed: int = 0, chunk: int = 1 << 20) -> None:
    """Blobs written a chunk at a time (float32 .npy) and their labels beside it (<stem>_labels.npy)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, (clusters, dim)).astype(np.float32)
    labels = np.empty(rows, np.int32)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            y = rng.integers(0, clusters, m)
            labels[start : start + m] = y
            x = centres[y] + rng.standard_normal((m, dim), np.float32)
            f.write(np.ascontiguousarray(x, np.float32).tobytes())
    os.replace(tmp, path)
    np.save(path.with_name(f"{path.stem}_labels.npy"), labels)


def _sampled(procs: list[subprocess.Popen], every: float = 0.1) -> list[dict]:
    """Waits for every process, sampling each one's memory; returns per process {rc, stderr tail, peaks}."""
    samplers = [PeakSampler(every, pid=p.pid) for p in procs]
    for s in samplers:
        s.__enter__()
    outs = []
    for p, s in zip(procs, samplers):
        _, err = p.communicate()
        s.__exit__()
        outs.append({"rc": p.returncode, "err": err[-3000:], **s.peak})
    return outs


def run_binary(method: str, args, npy: Path, workdir: Path, processes: int, extra=()) -> dict:
    """One run of `python -m experiments.<method>` over `processes` processes (one device each); its figures."""
    flags = [
        f"--dataset=npy:{npy}",
        f"--workdir={workdir}",
        f"--n_clusters={args.clusters}",
        "--seed=0",
        "--overwrite",
        *extra,
    ]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    from research import distributed

    port = distributed.free_port()
    procs = []
    t0 = time.perf_counter()
    for i in range(processes):
        cluster = (
            [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}", f"--process_id={i}"]
            if processes > 1
            else []
        )
        cmd = [sys.executable, "-m", f"experiments.{method}", *flags, *cluster]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    outs = _sampled(procs)
    wall = time.perf_counter() - t0
    for i, o in enumerate(outs):
        if o["rc"] != 0:
            raise RuntimeError(f"{method}, {processes} process(es): process {i} failed:\n{o['err']}")
    res = json.loads((workdir / "results.json").read_text())
    return {
        "wall_seconds": wall,
        "fit_seconds": res["fit_seconds"],
        "compile_seconds": res["compile_seconds"],
        "peak_anon_gib": max(o["RssAnon"] for o in outs) / 2**20,
        "peak_hwm_gib": max(o["VmHWM"] for o in outs) / 2**20,
        "acc": res.get("acc"),
        "n_processes": res["n_processes"],
    }


def _ensure(path: Path, rows: int, args) -> None:
    if path.exists() and np.load(path, mmap_mode="r").shape == (rows, args.dim):
        return
    t0 = time.perf_counter()
    make_file(path, rows, args.dim, args.clusters)
    print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f}s", flush=True)


def main():
    ap = common.parser(__doc__, "results/scale_out", dataset=None, repeats=None)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--npy", default=None, help="where to write the --rows file and keep it (reused if it fits)")
    ap.add_argument("--methods", default="kmeans,gmm")
    ap.add_argument("--stream_rows", type=int, default=0, help="> 0: also mini-batch k-means on a file this long")
    ap.add_argument("--stream_npy", default=None, help="where to write the --stream_rows file and keep it")
    ap.add_argument("--batch_size", type=int, default=4096, help="mini-batch k-means' batch")
    args = ap.parse_args()
    method_flags = {
        "kmeans": ["--n_init=1", "--max_iter=100"],
        "gmm": ["--covariance_type=diag", "--n_init=1", "--max_iter=100"],
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="scale_out_") as tmp:
        tmp = Path(tmp)
        npy = Path(args.npy) if args.npy else tmp / f"blobs_{args.rows}x{args.dim}.npy"
        methods = [m for m in args.methods.split(",") if m]  # --methods= : the streaming run alone
        if methods:
            _ensure(npy, args.rows, args)
        gib = npy.stat().st_size / 2**30 if methods else 0.0
        for method in methods:
            labels = {}
            for processes in (1, 2):
                wd = tmp / f"{method}-p{processes}"
                r = run_binary(method, args, npy, wd, processes, method_flags[method])
                labels[processes] = np.load(wd / "labels.npy")
                same = None if processes == 1 else float(np.mean(labels[1] == labels[processes]))
                rows.append(
                    {
                        "method": method,
                        "processes": processes,
                        "rows": args.rows,
                        "array_gib": gib,
                        **r,
                        "rows_per_s": None,
                        "labels_equal": same,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        if args.stream_rows:
            big = Path(args.stream_npy) if args.stream_npy else tmp / f"blobs_{args.stream_rows}x{args.dim}.npy"
            _ensure(big, args.stream_rows, args)
            extra = [f"--minibatch_size={args.batch_size}", "--n_init=3", "--max_iter=1"]
            r = run_binary("kmeans", args, big, tmp / "stream", 1, extra)
            rows.append(
                {
                    "method": f"mini-batch k-means (batch {args.batch_size}, 1 epoch)",
                    "processes": 1,
                    "rows": args.stream_rows,
                    "array_gib": big.stat().st_size / 2**30,
                    **r,
                    "rows_per_s": args.stream_rows / r["wall_seconds"],
                    "labels_equal": None,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    if methods:
        caption = (
            f"k-means (n_init=1) and a diagonal GMM on {args.rows} x {args.dim} float32 blobs ({args.clusters} "
            f"centres), a memory-mapped .npy of {gib:.2f} GiB, K={args.clusters}: the binaries on one process "
            "holding the array against two processes on 127.0.0.1 (jax.distributed, gloo), one CPU device each, "
            "each reading its half of the rows."
        )
    else:
        caption = (
            f"Mini-batch k-means (experiments.kmeans --minibatch_size={args.batch_size}, n_init=3, one epoch at "
            f"most) streaming a memory-mapped float32 .npy of {args.stream_rows} x {args.dim} blobs "
            f"({args.clusters} centres), K={args.clusters}, in one process."
        )
    notes = [
        (
            "Wall: the slowest process from start to exit. Peak anon: the largest RssAnon of any process (its own "
            "allocations); peak RSS: VmHWM (the mapped file's pages counted too). 'labels as 1 process': the share "
            "of rows whose label equals the one-process run's. rows/s: the file's rows over the wall time (the "
            "input check, the seeding, the steps and the labelling pass each read the file)."
        ),
    ]
    common.write_table(rows, COLUMNS, args.out, "bench.scale_out", caption=caption, notes=notes)


if __name__ == "__main__":
    main()
