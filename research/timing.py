"""Wall-clock timing of jitted calls with compilation reported apart.

`compile_and_run(jitted, *args, **static)` compiles ahead of time, then runs once: Timed(out,
compile_seconds, run_seconds). `fit_timed(fit, prepare, jitted, *args, **kwargs)` is every
algorithm module's `fit_timed`: `fit`'s checks and defaults, then `compile_and_run`.
"""

from __future__ import annotations

import inspect
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


def keyword_arguments(fit, kwargs: dict) -> dict:
    """Every keyword-only argument of `fit`, in its order: `kwargs`, else the parameter's default.

    A name `fit` does not take raises TypeError, as calling `fit` would.
    """
    params = [p for p in inspect.signature(fit).parameters.values() if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - {p.name for p in params})
    if unknown:
        raise TypeError(f"{fit.__module__}.{fit.__qualname__}() got unexpected keyword arguments {unknown}.")
    return {p.name: kwargs.get(p.name, p.default) for p in params}


def fit_timed(fit, prepare, jitted, *args, post=None, **kwargs) -> Timed:
    """`fit(*args, **kwargs)` with compilation and the run timed apart.

    For a `fit` written as `a, static = prepare(*args, **keyword_arguments(fit, kwargs))`
    then `jitted(*a, **static)`: the same checks, then `compile_and_run`. `post`
    maps the jitted output to what `fit` returns (e.g. drops auxiliary outputs).
    """
    a, static = prepare(*args, **keyword_arguments(fit, kwargs))
    t = compile_and_run(jitted, *a, **static)
    return t if post is None else t._replace(out=post(t.out))


def wall(fn, *args, **kwargs) -> tuple[Any, float]:
    """(fn(*args, **kwargs), seconds until every output is ready): the wall time of one call, compilation included."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


class CompileClock:
    """Seconds JAX spent tracing, lowering and compiling while the `with` block ran (jax.monitoring events):

    with timing.CompileClock() as cc:
        out = fit(x)              # cc.seconds: the compilation inside, however the call is built
    """

    def __enter__(self):
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def _listen(self, event, duration, **_):
        if event.startswith("/jax/core/compile/"):
            self.seconds += duration

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)
