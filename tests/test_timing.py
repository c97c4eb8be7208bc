"""Compilation timed apart from running: timing.compile_and_run and timing.CompileClock."""

import jax
import jax.numpy as jnp

from research import timing


def test_compile_clock_sees_a_compilation_and_nothing_when_cached():
    f = jax.jit(lambda x: jnp.sin(x) @ x.T + 1.5)
    x = jnp.ones((17, 5))
    with timing.CompileClock() as first:
        f(x).block_until_ready()
    with timing.CompileClock() as again:
        f(x).block_until_ready()
    with timing.CompileClock() as other_shape:
        f(jnp.ones((9, 5))).block_until_ready()
    assert first.seconds > 0 and other_shape.seconds > 0
    assert again.seconds == 0.0


def test_compile_and_run_times_the_two_apart():
    t = timing.compile_and_run(jax.jit(lambda x: x * 2.0), jnp.arange(4.0))
    assert t.compile_seconds > 0
    assert t.out.tolist() == [0.0, 2.0, 4.0, 6.0]
