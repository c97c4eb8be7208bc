r"""Runs every benchmark at sizes fit for the machine; tables go to results/<device>/, one folder per device kind.

  python -m bench.run_all                                  # --size=auto: full on a GPU or TPU, ci on a CPU
  JAXCLUSTER_DATA=../shared/datasets python -m bench.run_all --size=full      # the committed tables' sizes
  python -m bench.run_all --size=ci --out_dir=/tmp/bench   # tiny: digits, 1 repeat; what CI runs (--no_peers)
  python -m bench.run_all --only=kmeans_vs_peers,pretrain_vs_torch --dry_run  # print the commands only

Each table of BENCHES runs as its own process (`python -m <module> <its size's flags> --out=<out_dir>/<table>`),
so one failure stops no other; the summary lists each one's seconds and status, the exit status is 1 if any
failed. --out_dir defaults to results/<device kind>, e.g. results/cpu or results/nvidia-h100-80gb-hbm3; its
README.md lists the tables with the device, the date, this command and what was left out: peers that are not
installed (pip install -e '.[bench]'), bench.deep_vs_clustpy unless --with_clustpy, entries without a ci size.
At --size=full the README also checks the targets set for one H100 (TARGETS). Sizes and why:
docs/design/benchmarks.md#running-every-benchmark-benchrun_allpy.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "pip install -e '.[bench]'"
PIP = {"faiss": "faiss-cpu", "umap": "umap-learn", "openTSNE": "openTSNE", "minisom": "minisom", "torch": "torch"}


class Bench(NamedTuple):
    module: str  # run as python -m <module>
    ci: str | None  # its flags at --size=ci (None: full size only)
    full: str  # its flags at --size=full: those of the committed results/<table>.md
    # (the flag that picks its methods, {each default method: the module it needs, None for ours / scikit-learn})
    methods: tuple[str, dict] | None = None
    note: str = ""  # why an entry is left out at some size, or what it measures beyond its table


# Every table, ci and full sizes side by side. ci: scikit-learn's digits (1797 x 64, offline), 1 repeat,
# the least work that still runs every code path of the script; full: the committed tables' commands.
BENCHES = {
    "kmeans_vs_peers": Bench(
        "bench.kmeans_vs_peers",
        ci="--dataset=digits --n_init=10 --repeats=1",
        full="--dataset=mnist --n_init=1,10 --repeats=3",
        methods=("--peers", {"sklearn": None, "faiss": "faiss"}),
    ),
    "spherical_kmeans": Bench(
        "bench.spherical_kmeans",
        ci="--dataset=digits --n_init=3 --repeats=1",
        full="--dataset=mnist --n_init=10 --repeats=3",
    ),
    "minibatch_kmeans": Bench(
        "bench.minibatch_kmeans",
        ci="--dataset=digits --n_rows=4000 --check_rows=1000 --check_n_init=2 --n_init=1 --max_iter=5 --repeats=1",
        full="--dataset=mnist --n_rows=2000000 --batch_size=1024 --n_init=3 --repeats=2",
        note="full: writes a 6.3 GB file in the temporary folder",
    ),
    "gmm_vs_sklearn": Bench(
        "bench.gmm_vs_sklearn",
        ci="--dataset=digits --pca_components=10 --max_iter=20 --repeats=1",
        full="--dataset=mnist --repeats=3",
    ),
    "som_vs_minisom": Bench(
        "bench.som_vs_minisom",
        ci="--dataset=digits --grid=4,4 --n_steps=500 --n_epochs=2 --repeats=1",
        full="--dataset=mnist --split=all --n_samples=0 --grid=16,16 --n_steps=140000 --n_epochs=10 --sigma=4.0 "
        "--learning_rate=0.5 --init=pca --repeats=3",
        methods=("--methods", {"ours-online": None, "ours-batch": None, "minisom": "minisom"}),
    ),
    "probe_vs_sklearn": Bench(
        "bench.probe_vs_sklearn",
        ci="--dataset=digits --n_train=500 --max_iter=20 --augment=none,shift --repeats=1",
        full="--dataset=mnist --n_train=60000 --repeats=3 --augment=none,shift",
    ),
    "embed_vs_peers": Bench(
        "bench.embed_vs_peers",
        ci="--dataset=digits --n_samples=200 --tsne_iter=30",
        full="--dataset=mnist",
        methods=("--methods", {"ours-umap": None, "umap-learn": "umap", "ours-tsne": None, "openTSNE": "openTSNE"}),
    ),
    "embed_vs_peers_cosine": Bench(
        "bench.embed_vs_peers",
        ci=None,
        full="--dataset=mnist",
        methods=("--methods", {"ours-umap-cosine": None, "umap-learn-cosine": "umap"}),
        note="full size only: at ci size the script runs as embed_vs_peers, and the cosine pair differs only in "
        "its input rows",
    ),
    "dbscan_vs_sklearn": Bench(
        "bench.dbscan_vs_sklearn",
        ci="--dataset=digits --n_samples=200 --tsne_iter=30 --methods=auto,scikit-learn --repeats=1",
        full="--dataset=mnist",
    ),
    "pretrain_vs_torch": Bench(
        "bench.pretrain_vs_torch",
        ci="--dataset=digits --n_samples=512 --epochs=2",
        full="--dataset=mnist --epochs=4",
        methods=(
            "--methods",
            {"ours (jitted scan)": None, "ours (plain jitted step)": None, "pytorch": "torch"},
        ),
    ),
    "scale_out": Bench(
        "bench.scale_out",
        ci=None,
        full="--rows=10000000 --dim=64",
        note="full size only: writes a 2.6 GB file and runs two processes side by side (tests/test_multi_process.py "
        "runs the same binaries over two processes in CI)",
    ),
    "dec_pipeline": Bench(
        "bench.dec_pipeline",
        ci=None,
        full="--dataset=mnist --ae_epochs=300",
        note="full size only: pretraining then DEC on MNIST-70k, about 1.5 hours on a 2-core CPU (an H100 target)",
    ),
    "deep_vs_clustpy": Bench(
        "bench.deep_vs_clustpy",
        ci="--dataset=digits --seeds=0 --ae_epochs=1 --max_iter=280 --n_init=2",
        full="--dataset=mnist --seeds=0,1,2 --ae_epochs=50 --ae_workdir=checkpoints/deep_vs_clustpy/mnist-seed{seed}",
        note="only with --with_clustpy: ClustPy needs a venv of its own (pip install -e '.[bench-clustpy]' there, "
        "its python in $CLUSTPY_PYTHON)",
    ),
}


class Target(NamedTuple):
    table: str  # where its figure is read (check_targets)
    what: str


# Set for one H100 (issue 23); checked against the tables of a --size=full run. The CPU reference is the
# committed results/pretrain_vs_torch.csv (AMD EPYC, 2 cores).
TARGETS = [
    Target("kmeans_vs_peers", "k-means on MNIST-70k, n_init=10: under 0.3 s"),
    Target("pretrain_vs_torch", "DEC autoencoder pretraining: at least 20x this CPU's samples/s"),
    Target("dec_pipeline", "the whole DEC MNIST pipeline, pretraining included: under 10 minutes"),
]


# ---------------------------------------------------------------------------------------------- the machine


def device_info() -> dict:
    """platform, kind, count and the machine line of JAX's first device, asked of a fresh process: this one
    starts no JAX backend, which on a GPU would take memory from the benchmarks."""
    code = (
        "import json, jax; from research import report; d = jax.devices()[0]; "
        "print(json.dumps({'platform': d.platform, 'kind': d.device_kind, 'count': jax.device_count(), "
        "'machine': report.machine()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"error: could not start JAX to find the device:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def slug(kind: str) -> str:
    """A folder name for a device kind: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3', 'cpu' -> 'cpu'."""
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or "unknown"


# ---------------------------------------------------------------------------------------------- the plan


class Job(NamedTuple):
    table: str
    argv: list[str]  # python -m <module> <flags>


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def plan(args, out_dir: Path) -> tuple[list[Job], list[str]]:
    """(the runs, the lines saying what was left out and why)."""
    jobs, left_out = [], []
    for table, b in BENCHES.items():
        if args.only and table not in args.only:
            continue
        if table == "deep_vs_clustpy" and not args.with_clustpy:
            left_out.append(f"{table}: {b.note}.")
            continue
        flags = b.ci if args.size == "ci" else b.full
        if flags is None:
            left_out.append(f"{table}: {b.note}.")
            continue
        argv = ["-m", b.module, *shlex.split(flags), f"--out={out_dir / table}"]
        if args.data_dir:
            argv.append(f"--data_dir={args.data_dir}")
        if b.methods:
            flag, methods = b.methods
            absent = [m for m, mod in methods.items() if mod and (args.no_peers or not installed(mod))]
            for m in absent:
                why = "--no_peers" if args.no_peers else f"{PIP[methods[m]]} is not installed ({INSTALL})"
                left_out.append(f"{table}: {m} left out: {why}.")
            argv.append(f"{flag}={','.join(m for m in methods if m not in absent)}")
        jobs.append(Job(table, argv))
    return jobs, left_out


# ---------------------------------------------------------------------------------------------- the runs


class Outcome(NamedTuple):
    table: str
    seconds: float
    ok: bool
    log: Path


def run_jobs(jobs: list[Job], out_dir: Path, n_parallel: int, timeout: float = 0) -> list[Outcome]:
    """Runs the jobs, n_parallel at a time, each one's output to <out_dir>/logs/<table>.log; a job still running
    after `timeout` seconds (0: no limit) is killed with the processes it started, and counts as failed."""
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pending, running, done = list(jobs), {}, {}
    try:
        while pending or running:
            while pending and len(running) < n_parallel:
                job = pending.pop(0)
                log = logs / f"{job.table}.log"
                print(f"[run_all] {job.table}: {display(job)}", flush=True)
                with open(log, "w") as f:
                    # A session of its own: a timeout kills the bench's own workers too (bench.minibatch_kmeans).
                    proc = subprocess.Popen(
                        [sys.executable, *job.argv],
                        stdout=f,
                        stderr=subprocess.STDOUT,
                        cwd=ROOT,
                        start_new_session=True,
                    )
                running[job.table] = (proc, time.perf_counter(), time.time(), log)
            for table, (proc, t0, wall0, log) in list(running.items()):
                timed_out = timeout and proc.poll() is None and time.perf_counter() - t0 > timeout
                if timed_out:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                if proc.poll() is None:
                    continue
                del running[table]
                md = out_dir / f"{table}.md"
                written = md.exists() and md.stat().st_mtime >= wall0 - 1  # not a table of an earlier run
                ok = proc.returncode == 0 and written and not timed_out
                done[table] = Outcome(table, time.perf_counter() - t0, ok, log)
                why = (
                    f"killed after {timeout:g} s"
                    if timed_out
                    else f"exit {proc.returncode}"
                    if proc.returncode
                    else f"exit 0 but no {md.name} written"
                )
                status = "ok" if ok else f"FAILED ({why}); the end of {log}:"
                print(f"[run_all] {table}: {done[table].seconds:.1f} s, {status}", flush=True)
                if not ok:
                    print("\n".join(log.read_text().splitlines()[-25:]), flush=True)
            time.sleep(0.05)
    finally:  # Ctrl-C or an error here: the benches, in sessions of their own, would outlive us
        for proc, *_ in running.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return [done[j.table] for j in jobs]


def display(job: Job) -> str:
    return "python " + shlex.join(job.argv)


# ---------------------------------------------------------------------------------------------- the README


def csv_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def check_targets(out_dir: Path) -> list[str]:
    """One line per target whose table this run wrote: the figure and whether it met the target."""

    def find(rows, **match):
        return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)

    lines = []
    for t in TARGETS:
        rows = csv_rows(out_dir / f"{t.table}.csv")
        if not rows:
            continue
        if t.table == "kmeans_vs_peers":
            r = find(rows, method="jaxcluster", n_init="10")
            value = r and float(r["fit_seconds_median"])
            figure, met = (f"{value:.3f} s", value < 0.3) if r else ("no n_init=10 row", False)
        elif t.table == "pretrain_vs_torch":
            r = find(rows, method="ours (jitted scan)")
            ref = find(csv_rows(ROOT / "results" / "pretrain_vs_torch.csv"), method="ours (jitted scan)")
            if r and ref:
                ratio = float(r["samples_per_s"]) / float(ref["samples_per_s"])
                figure, met = f"{float(r['samples_per_s']):.0f} samples/s, {ratio:.1f}x the CPU's", ratio >= 20
            else:
                figure, met = "no jitted-scan row here or in results/pretrain_vs_torch.csv", False
        else:
            value = float(rows[0]["wall_seconds"])
            figure, met = f"{value:.0f} s", value < 600
        lines.append(f"- {t.what}: {figure}, {'met' if met else 'NOT met'} ([{t.table}.md]({t.table}.md)).")
    return lines


def write_readme(out_dir, info, args, argv, outcomes, left_out, wall) -> Path:
    cmd = "python -m bench.run_all " + " ".join(a for a in argv if not a.startswith("--data_dir"))
    lines = [
        f"# Benchmarks on {info['count']} x {info['kind']}",
        "",
        (
            f"Written by `{cmd.strip()}` on {datetime.date.today().isoformat()}, size {args.size}, in {wall:.0f} s. "
            f"Machine: {info['machine']}; device: {info['count']} x {info['kind']}. What each table measures: "
            "[docs/design/benchmarks.md](../../docs/design/benchmarks.md)."
        ),
        "",
        "| table | seconds | status | command |",
        "|---|---|---|---|",
    ]
    for o, job in outcomes:
        status = "ok" if o.ok else f"FAILED (logs/{o.log.name})"
        name = f"[{o.table}.md]({o.table}.md)" if o.ok else o.table
        lines.append(f"| {name} | {o.seconds:.1f} | {status} | `{display(job).replace(str(out_dir), '<out_dir>')}` |")
    if left_out:
        lines += ["", "Left out:", "", *[f"- {line}" for line in left_out]]
    if args.size == "full":
        targets = check_targets(out_dir)
        if targets:
            lines += ["", "Targets set for one H100 (issue 23):", "", *targets]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------- main


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="auto", choices=["auto", "ci", "full"], help="auto: full on a GPU/TPU, else ci")
    ap.add_argument("--out_dir", default=None, help="default: results/<device kind>")
    ap.add_argument("--only", default="", help=f"comma-separated tables, of {','.join(BENCHES)}")
    ap.add_argument("--data_dir", default=None, help="passed to every bench (MNIST: or set $JAXCLUSTER_DATA)")
    ap.add_argument("--with_clustpy", action="store_true", help="also run bench.deep_vs_clustpy ($CLUSTPY_PYTHON)")
    ap.add_argument("--no_peers", action="store_true", help="ours and scikit-learn only, as if no peer were installed")
    ap.add_argument("--jobs", type=int, default=1, help="benches at a time (timings compare only at 1)")
    ap.add_argument(
        "--timeout", type=float, default=0, help="seconds a bench may run before it is killed (0: no limit)"
    )
    ap.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    args.only = [t for t in args.only.split(",") if t]
    unknown = [t for t in args.only if t not in BENCHES]
    if unknown:
        ap.error(f"--only: unknown table(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}.")
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}.")
    if args.timeout < 0:
        ap.error(f"--timeout must be 0 (no limit) or more, got {args.timeout:g}.")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    info = device_info()
    if args.size == "auto":
        args.size = "ci" if info["platform"] == "cpu" else "full"
    out_dir = Path(args.out_dir or ROOT / "results" / slug(info["kind"])).resolve()
    jobs, left_out = plan(args, out_dir)
    print(f"[run_all] {info['count']} x {info['kind']} ({info['platform']}), size {args.size}, tables to {out_dir}")
    for line in left_out:
        print(f"[run_all] left out: {line}")
    if args.dry_run:
        for job in jobs:
            print(display(job))
        return 0
    t0 = time.perf_counter()
    outcomes = run_jobs(jobs, out_dir, args.jobs, args.timeout)
    readme = write_readme(out_dir, info, args, argv, list(zip(outcomes, jobs)), left_out, time.perf_counter() - t0)
    print(f"\n{'table':24s} {'seconds':>8s}  status  table")
    for o in outcomes:
        print(f"{o.table:24s} {o.seconds:8.1f}  {'ok    ' if o.ok else 'FAILED'}  {out_dir / o.table}.md")
    print(f"\n{readme.read_text()}")
    failed = [o.table for o in outcomes if not o.ok]
    if failed:
        print(f"[run_all] failed: {', '.join(failed)} (logs in {out_dir / 'logs'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
