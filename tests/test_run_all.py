"""bench/run_all.py: every benchmark at its ci size writes its table with the device line, without the optional
peers (CI has only the test extras) and without MNIST; --dry_run lists one command per table; a failing bench
makes the exit status 1 and stops no other; the H100 targets are read from the tables."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import binaries

from bench import run_all

ROOT = Path(__file__).resolve().parents[1]
# The suite's time is bounded (CI on 2 cores): the ci-size run here takes two of the benches (both with a peer
# to leave out), the run_all code whole; `python -m bench.run_all --size=ci` runs all of them (about 80 s on this
# VM), and every bench's flags are checked below.
CI_TABLES = ["kmeans_vs_peers", "som_vs_minisom"]
DEVICE_LINE = re.compile(r"^Machine: .*; device: 1 x cpu\. Command: `python -m bench\.\w+ .*--out=.*`\.$")


def test_ci_size_writes_every_table_with_the_device_line(tmp_path):
    # As CI runs it: no peer (--no_peers), no MNIST anywhere (ci sizes use scikit-learn's digits), JAX on CPU.
    out = tmp_path / "out"
    only = ",".join([*CI_TABLES, "dec_pipeline", "deep_vs_clustpy"])  # (the last two are left out, and say why)
    args = ["bench.run_all", "--size=ci", "--no_peers", "--jobs=2", f"--out_dir={out}", f"--only={only}"]
    proc = binaries.run(args, cwd=ROOT, JAXCLUSTER_DATA="", XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    for table in CI_TABLES:
        md = (out / f"{table}.md").read_text().splitlines()
        assert (out / f"{table}.csv").read_text().count("\n") >= 2, table  # a header and a row at least
        assert DEVICE_LINE.match(md[-1]), (table, md[-1])
        assert re.search(rf"^{table:24s} +[\d.]+  ok ", proc.stdout, re.MULTILINE), table
    readme = (out / "README.md").read_text()
    assert readme.startswith("# Benchmarks on 1 x cpu\n")
    assert "`python -m bench.run_all --size=ci --no_peers --jobs=2" in readme and "size ci" in readme
    for table in CI_TABLES:
        assert f"| [{table}.md]({table}.md) | " in readme and "| ok |" in readme
    # What was left out, and why: the peers (--no_peers here), the full-size-only entries, ClustPy.
    for line in ("kmeans_vs_peers: faiss left out: --no_peers", "som_vs_minisom: minisom left out: --no_peers"):
        assert line in readme
    assert "- dec_pipeline: full size only" in readme and "- deep_vs_clustpy: only with --with_clustpy" in readme


_PARSE_ONLY = """
import argparse, importlib, shlex, sys
parse = argparse.ArgumentParser.parse_args


def parse_then_stop(self, *args, **kwargs):  # the bench's own parser on its flags, then no run
    parse(self, *args, **kwargs)
    raise SystemExit(0)


argparse.ArgumentParser.parse_args = parse_then_stop
for module, flags in [line.split(" ", 1) for line in sys.stdin.read().splitlines()]:
    sys.argv = [module, *shlex.split(flags), "--out=/nonexistent/x"]
    try:
        importlib.import_module(module).main()
    except SystemExit as e:
        assert e.code in (0, None), (module, e.code)
    else:
        raise AssertionError(f"{module} did not parse its flags")
print("ok")
"""


def test_every_bench_takes_its_ci_flags():
    # Each bench's own parser accepts the flags run_all gives it at ci size (an unknown or ill-typed flag fails).
    lines = [f"{b.module} {b.ci}" for b in run_all.BENCHES.values() if b.ci is not None]
    out = subprocess.run(
        [sys.executable, "-c", _PARSE_ONLY],
        input="\n".join(lines),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_dry_run_lists_one_command_per_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # run_all asks a fresh JAX for the device: results/cpu here
    assert run_all.main(["--dry_run", "--size=full", "--with_clustpy", f"--out_dir={tmp_path}"]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python -m bench.")]
    assert [c.split()[2] for c in commands] == [b.module for b in run_all.BENCHES.values()]
    assert [re.search(r"--out=(\S+)", c).group(1) for c in commands] == [str(tmp_path / t) for t in run_all.BENCHES]
    assert "--dataset=mnist" in commands[0] and not list(tmp_path.iterdir())  # nothing ran, nothing written

    assert run_all.main(["--dry_run", "--size=ci", "--only=kmeans_vs_peers,dec_pipeline", "--no_peers"]) == 0
    out = capsys.readouterr().out
    kmeans = ROOT / "results" / "cpu" / "kmeans_vs_peers"
    assert [line for line in out.splitlines() if line.startswith("python -m")] == [
        f"python -m bench.kmeans_vs_peers --dataset=digits --n_init=10 --repeats=1 --out={kmeans} --peers=sklearn"
    ]
    assert "left out: dec_pipeline: full size only" in out


def test_a_failing_bench_stops_no_other_and_fails_the_run(tmp_path, monkeypatch, capsys):
    # The first cannot start; the second exits 0 but writes no table, which is a failure too.
    no_table = run_all.Bench("json.tool", ci="--help", full="--help")
    monkeypatch.setattr(run_all, "BENCHES", {"broken": run_all.Bench("bench.no_such_bench", "", ""), "quiet": no_table})
    assert run_all.main(["--size=ci", f"--out_dir={tmp_path}"]) == 1
    readme = (tmp_path / "README.md").read_text()
    assert "| broken | " in readme and "FAILED (logs/broken.log)" in readme and "FAILED (logs/quiet.log)" in readme
    assert "No module named bench.no_such_bench" in (tmp_path / "logs" / "broken.log").read_text()
    assert "usage:" in (tmp_path / "logs" / "quiet.log").read_text()  # it ran after the first failed
    out = capsys.readouterr()
    assert "exit 0 but no quiet.md written" in out.out and "failed: broken, quiet" in out.err


def test_targets_are_read_from_the_tables(tmp_path):
    (tmp_path / "kmeans_vs_peers.csv").write_text(
        "method,n_init,fit_seconds_median\njaxcluster,1,0.1\njaxcluster,10,0.25\n"
    )
    (tmp_path / "pretrain_vs_torch.csv").write_text("method,samples_per_s\nours (jitted scan),100000\n")
    (tmp_path / "dec_pipeline.csv").write_text("dataset,wall_seconds\nmnist,612.0\n")
    lines = run_all.check_targets(tmp_path)
    assert len(lines) == 3
    assert "0.250 s, met" in lines[0]
    cpu = run_all.csv_rows(ROOT / "results" / "pretrain_vs_torch.csv")[0]["samples_per_s"]
    assert f"{100000 / float(cpu):.1f}x the CPU's, NOT met" in lines[1]
    assert "612 s, NOT met" in lines[2]


def test_a_bench_over_the_timeout_is_killed_with_its_workers(tmp_path):
    pid_file = tmp_path / "worker.pid"
    worker = "import time; time.sleep(60)"
    code = (
        f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {worker!r}]); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    t0 = time.perf_counter()
    (outcome,) = run_all.run_jobs([run_all.Job("slow", ["-c", code])], tmp_path, 1, timeout=3)
    assert not outcome.ok and 3 <= outcome.seconds < 30 and time.perf_counter() - t0 < 30
    status = Path(f"/proc/{pid_file.read_text()}/status")
    assert not status.exists() or "zombie" in status.read_text()  # the bench's own worker went with it
