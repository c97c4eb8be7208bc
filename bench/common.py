"""What every bench script shares: its usual flags, timed repeats, medians, the machine line and the table.

  ap = common.parser(__doc__, "results/kmeans_vs_peers")        # --dataset --data_dir --repeats --out
  rep = common.repeat(run_ours, args.repeats, x, k, label="ours")   # run_ours(x, k, seed, first)
  common.write_table(rows, columns, args.out, "bench.kmeans_vs_peers", caption="k-means on mnist ...")

Ours is timed with its compilation apart on the first repeat (`fit_timed`) and by wall clock after;
a peer by wall clock. Every table ends with the line "Machine: <cpu, cores, jax>; device: <n> x <kind>. Command: `...`".
JAX is imported on first use, so that a peer's worker process (bench.minibatch_kmeans) does not map it.
What each table measures and why: docs/design/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple


def parser(doc: str, out: str, *, dataset: str | None = "mnist", repeats: int | None = 3) -> argparse.ArgumentParser:
    """An argument parser with the module docstring as help and the flags every bench takes: --dataset (unless
    None), --data_dir, --repeats (unless None) and --out (the tables' path without suffix)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if dataset is not None:
        ap.add_argument("--dataset", default=dataset)
    ap.add_argument("--data_dir", default=None)
    if repeats is not None:
        ap.add_argument("--repeats", type=int, default=repeats, help="timed runs per method (seeds 0..repeats-1)")
    ap.add_argument("--out", default=out, help="the table: <out>.md and <out>.csv")
    return ap


def timed(fit_timed, fit, first: bool, *args, **kwargs) -> tuple[Any, float, float | None]:
    """(result, run seconds, compile seconds or None) of one of our fits: compilation timed apart on the
    `first` call (`fit_timed`), the wall time of a compiled `fit` after."""
    import jax

    if first:
        t = fit_timed(*args, **kwargs)
        return t.out, t.run_seconds, t.compile_seconds
    t0 = time.perf_counter()
    out = jax.block_until_ready(fit(*args, **kwargs))
    return out, time.perf_counter() - t0, None


def clock(fn: Callable, *args, **kwargs) -> tuple[Any, float, None]:
    """(fn(*args, **kwargs), its wall seconds, None): a peer's fit, timed like `timed`'s later calls."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, None


def twice(fn: Callable, *args) -> tuple[Any, float, float]:
    """(fn(*args), run seconds, compile seconds) for a jitted pipeline without `fit_timed`: called twice, the
    second call's wall time is the run; the compilation is what JAX reports spending on it in the first call."""
    from research import timing

    with timing.CompileClock() as compiled:
        timing.wall(fn, *args)
    out, run_s = timing.wall(fn, *args)
    return out, run_s, compiled.seconds


class Repeated(NamedTuple):
    outs: list  # each repeat's result
    seconds: list[float]
    compile_seconds: float | None  # ours: from the first repeat

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def repeat(run: Callable[..., tuple], repeats: int, *args, label: str = "", describe=None) -> Repeated:
    """Calls run(*args, seed, first) for seeds 0..repeats-1 (first: seed 0); each returns (result, seconds,
    compile seconds or None). Prints a line per repeat: the label, the seed, the seconds and `describe(result)`.
    """
    outs, seconds, compile_s = [], [], None
    for seed in range(repeats):
        out, secs, comp = run(*args, seed, seed == 0)
        compile_s = comp if comp is not None else compile_s
        outs.append(out)
        seconds.append(secs)
        print(f"{label:14s} seed={seed} {secs:8.2f}s {describe(out) if describe else ''}".rstrip(), flush=True)
    return Repeated(outs, seconds, compile_s)


def ratio(numerator, denominator, fmt: str = ".1f", suffix: str = "x") -> str:
    """'3.3x': numerator / denominator as a cell (a speed-up or a quality ratio); '' when either is missing."""
    if numerator is None or denominator is None:
        return ""
    return f"{numerator / denominator:{fmt}}{suffix}"


def data_name(name: str) -> str:
    """A dataset's name as captions print it: "MNIST" for mnist (the committed tables' wording), else the name."""
    return "MNIST" if name == "mnist" else name


def device() -> str:
    """'<count> x <kind>' of JAX's devices, e.g. '1 x cpu' or '1 x NVIDIA H100 80GB HBM3'."""
    import jax

    return f"{jax.device_count()} x {jax.devices()[0].device_kind}"


def machine_line(module: str, argv: Sequence[str] | None = None) -> str:
    """'Machine: <cpu>, <n> cores; jax <v> on <backend>; device: <n> x <kind>. Command: `python -m <module> <args>`.'"""
    from research import report

    return f"Machine: {report.machine()}; device: {device()}. Command: `{report.command(module, argv)}`."


def write_table(
    rows: list[dict], columns: Sequence, out, module: str, *, caption: str, notes: Iterable[str] = ()
) -> Path:
    """report.write_table with the machine line as the last note; <out>.csv holds every field of `rows`."""
    from research import report

    return report.write_table(rows, columns, out, caption=caption, notes=[*notes, machine_line(module)])
