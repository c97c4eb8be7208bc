"""Wall-clock timing of jitted calls with compilation reported apart."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax


class Timed(NamedTuple):
    out: Any
    compile_seconds: float
    run_seconds: float


def compile_and_run(jitted, *args, **static) -> Timed:
    """Compiles `jitted` for these arguments ahead of time, then runs it once.

    `static` are the function's static keyword arguments; `args` the traced
    ones. The run is timed until every output is ready, so asynchronous
    dispatch does not hide work.
    """
    t0 = time.perf_counter()
    compiled = jitted.lower(*args, **static).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    return Timed(out, t1 - t0, t2 - t1)


def wall(fn, *args, **kwargs) -> tuple[Any, float]:
    """(fn(*args, **kwargs), seconds until every output is ready): the wall time of one call, compilation included."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0
