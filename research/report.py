"""Tables for results/: a CSV of rows and a Markdown table side by side, and the machine they were measured on."""

from __future__ import annotations

import csv
import os
import platform
import statistics
from pathlib import Path

import jax


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """'<cpu>, <n> cores; jax <version> on <backend>' for a table's caption."""
    return f"{cpu_name()}, {os.cpu_count()} cores; jax {jax.__version__} on {jax.default_backend()}"


def write_csv(rows: list[dict], out) -> Path:
    """Writes rows to <out>.csv; returns `out` as a Path, its folder made.

    Columns: every key of any row, in the order they first appear (rows from runs of different vintages may
    record different fields); a row without a column leaves its cell empty.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return out


def write_markdown(lines: list[str], out) -> None:
    """Writes the table's lines to <out>.md and prints them."""
    text = "\n".join(lines) + "\n"
    Path(out).with_suffix(".md").write_text(text)
    print(text)


def mean_std(values, digits: int = 4) -> str:
    """'0.8123 ± 0.0101' (sample standard deviation) over several values, the value alone for one, '-' for none."""
    values = [float(v) for v in values]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
