"""Runs experiment binaries as a user does (`python -m experiments.x --flags`), for the end-to-end tests.

Every run of a test session shares one persistent XLA compilation cache (a temporary folder removed
at exit), so binaries that jit the same functions on the same shapes compile them once.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One cache for the whole session: pytest's first process makes it (and removes it at exit); its xdist workers,
# started after, find it in their environment.
_CACHE_ENV = "JAXCLUSTER_TEST_XLA_CACHE"
_CACHE = os.environ.get(_CACHE_ENV)
if not _CACHE:
    _CACHE = os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="jaxcluster-test-xla-cache-")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


# The binaries under test run on tiny data, so their time is mostly compilation: XLA's cheapest backend
# optimisation level cuts it by about 40% (numbers may differ from the default level in the last bits, so a
# test compares binaries' outputs only with other runs made under this environment).
SMOKE_XLA_FLAGS = "--xla_backend_optimization_level=0"


def with_smoke_flags(xla_flags: str) -> str:
    """`xla_flags` with SMOKE_XLA_FLAGS appended unless they are there already."""
    return xla_flags if SMOKE_XLA_FLAGS in xla_flags else f"{xla_flags} {SMOKE_XLA_FLAGS}".strip()


def without_smoke_flags(xla_flags: str) -> str:
    """`xla_flags` without SMOKE_XLA_FLAGS: XLA's default optimisation level, the one users run at."""
    return " ".join(flag for flag in xla_flags.split() if flag != SMOKE_XLA_FLAGS)


def env(smoke: bool = True, **extra) -> dict:
    """The environment of a binary under test: CPU only, the shared compilation cache, XLA's cheapest
    optimisation level (after any XLA_FLAGS of the caller's; `smoke=False`: the default level), plus `extra`."""
    xla_flags = os.environ.get("XLA_FLAGS", "")
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": _CACHE,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "XLA_FLAGS": with_smoke_flags(xla_flags) if smoke else without_smoke_flags(xla_flags),
        **extra,
    }


def command(args) -> list[str]:
    """`python -m <args...>` with this interpreter."""
    return [sys.executable, "-m", *map(str, args)]


def run(args, cwd, ok: bool = True, timeout: float = 600, smoke: bool = True, **extra_env):
    """Runs `python -m <args>` in cwd; with ok, asserts it succeeded and shows the end of its stderr if not.
    `smoke=False` runs it at XLA's default optimisation level (for the few tests of bits at the users' level)."""
    out = subprocess.run(
        command(args),
        cwd=cwd,
        env=env(smoke, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if ok:
        assert out.returncode == 0, out.stderr[-4000:]
    return out


def start(args, cwd, **popen_kw) -> subprocess.Popen:
    """Starts `python -m <args>` in cwd without waiting (for runs that are killed, or overlap)."""
    return subprocess.Popen(command(args), cwd=cwd, env=popen_kw.pop("env", env()), **popen_kw)


def kill_at_first_checkpoint(args, cwd, workdir, ckpt_dir, timeout: float = 120, smoke: bool = True) -> int:
    """Starts `python -m <args>`, SIGKILLs it as soon as a step folder appears in `ckpt_dir`, checks that it
    had not finished (no results.json in `workdir`) and returns the newest step left in `ckpt_dir`, the one a
    resumed run must start from: the first half of every kill-and-resume test."""
    proc = start(args, cwd, env=env(smoke), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = Path(ckpt_dir)
    deadline = time.time() + timeout
    while time.time() < deadline and not steps_in(ckpt_dir):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (Path(workdir) / "results.json").exists(), "the run finished before it could be killed"
    assert steps_in(ckpt_dir), f"no checkpoint appeared in {ckpt_dir} within {timeout} s"
    return max(steps_in(ckpt_dir))


def steps_in(ckpt_dir) -> list[int]:
    """The committed checkpoint steps in a Checkpointer directory (Orbax's temporary folders excluded)."""
    ckpt_dir = Path(ckpt_dir)
    return [int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()] if ckpt_dir.is_dir() else []


def run_on_host_devices(code: str, n_devices: int = 2, timeout: float = 300) -> None:
    """Runs the Python snippet `code` (dedented) in a fresh process that sees `n_devices` CPU devices (the count
    is fixed when JAX starts, hence the process) and asserts that it succeeded and printed "ok" last."""
    import textwrap

    xla = f"{SMOKE_XLA_FLAGS} --xla_force_host_platform_device_count={n_devices}"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env(XLA_FLAGS=xla),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def run_processes(args, cwd, n_processes: int = 2, devices_each: int = 2, timeout: float = 300, per_process=None):
    """Runs `python -m <args>` as one run of `n_processes` processes (jax.distributed on 127.0.0.1, gloo
    collectives), each seeing `devices_each` CPU devices; per_process(i) -> extra args of process i. Returns
    [(exit status, stdout, stderr)] per process; every process is killed at `timeout` (and the test fails)."""
    from research import distributed

    port = distributed.free_port()
    xla = f"{SMOKE_XLA_FLAGS} --xla_force_host_platform_device_count={devices_each}"
    procs = []
    for i in range(n_processes):
        cluster = [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={n_processes}", f"--process_id={i}"]
        extra = list(per_process(i)) if per_process else []
        procs.append(
            start(
                [*args, *cluster, *extra],
                cwd,
                env=env(XLA_FLAGS=xla),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.time() + timeout
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.time()))
            outs.append((p.returncode, out, err))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the processes did not all end within {timeout} s: a hang") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs
