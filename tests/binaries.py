"""Runs experiment binaries as a user does (`python -m experiments.x --flags`), for the end-to-end tests.

Every run of a test session shares one persistent XLA compilation cache (a temporary folder removed
at exit), so binaries that jit the same functions on the same shapes compile them once.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

_CACHE = tempfile.mkdtemp(prefix="jaxcluster-test-xla-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


def env(**extra) -> dict:
    """The environment of a binary under test: CPU only, the shared compilation cache, plus `extra`."""
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": _CACHE,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        **extra,
    }


def command(args) -> list[str]:
    """`python -m <args...>` with this interpreter."""
    return [sys.executable, "-m", *map(str, args)]


def run(args, cwd, ok: bool = True, timeout: float = 600, **extra_env) -> subprocess.CompletedProcess:
    """Runs `python -m <args>` in cwd; with ok, asserts it succeeded and shows the end of its stderr if not."""
    out = subprocess.run(
        command(args), cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if ok:
        assert out.returncode == 0, out.stderr[-4000:]
    return out


def start(args, cwd, **popen_kw) -> subprocess.Popen:
    """Starts `python -m <args>` in cwd without waiting (for runs that are killed, or overlap)."""
    return subprocess.Popen(command(args), cwd=cwd, env=popen_kw.pop("env", env()), **popen_kw)
