"""Tables for results/: a CSV and a Markdown table side by side, and the machine and versions that made them.

  report.write_table(rows, [("method", "method"), ("fit s", "fit_seconds", ".2f")], "results/x",
                     caption="k-means on mnist.", notes=[f"Machine: {report.machine()}."])

writes results/x.csv (every field of every row) and results/x.md (the caption, the table of the
chosen columns, each note after a blank line) and prints the Markdown. A cell is `format(value, fmt)`;
None shows as "-", a bool as yes / no, a string as it is.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax

from research import runlog


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
    """'<cpu>, <n> cores; jax <version> on <backend>; flax <version>, ...' (runlog.LIBRARIES) for a table's note."""
    others = ", ".join(f"{name} {v}" for name, v in runlog.library_versions().items() if name != "jax" and v)
    return f"{cpu_name()}, {os.cpu_count()} cores; jax {jax.__version__} on {jax.default_backend()}; {others}"


def command(module: str, argv: Sequence[str] | None = None) -> str:
    """'python -m <module> <args>': the command line that made a table (argv: sys.argv[1:]), --data_dir left out."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m", module, *(a for a in args if not a.startswith("--data_dir"))])


class Column(NamedTuple):
    """One column of a Markdown table: its header, the row's key (or a function of the row) and a format spec."""

    header: str
    value: str | Callable[[dict], Any]
    fmt: str = ""


def cell(value, fmt: str = "") -> str:
    """A value as a table cell: None -> "-", a bool -> yes / no, a string as it is, else format(value, fmt)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    return format(value, fmt)


def markdown_table(rows: Iterable[dict], columns: Sequence) -> list[str]:
    """The lines of a Markdown table: a header, the separator, one line per row.

    `columns`: Column(header, key or function of the row, format spec), tuples of the same (the format
    spec may be left out), or a key alone, which is also the header.
    """
    columns = [Column(c, c) if isinstance(c, str) else Column(*c) for c in columns]
    lines = ["| " + " | ".join(c.header for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        values = [c.value(row) if callable(c.value) else row.get(c.value) for c in columns]
        lines.append("| " + " | ".join(cell(v, c.fmt) for v, c in zip(values, columns)) + " |")
    return lines


def write_table(
    rows: Sequence[dict],
    columns: Sequence,
    out,
    *,
    caption: str = "",
    notes: Iterable[str] = (),
    csv_rows: Sequence[dict] | None = None,
) -> Path:
    """Writes <out>.csv and <out>.md; returns `out` as a Path (its folder made).

    The CSV holds every field of `csv_rows` (default: `rows`; e.g. one row per run where the Markdown
    has one per setting), the Markdown the caption, the table of `columns` over `rows` and each note,
    blocks separated by a blank line.
    """
    out = write_csv(rows if csv_rows is None else csv_rows, out)
    lines = [caption, ""] if caption else []
    lines += markdown_table(rows, columns)
    for note in notes:
        lines += ["", note]
    write_markdown(lines, out)
    return out


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


def spread(values, digits: int = 4) -> str:
    """'0.8012 / 0.8123 / 0.8302': the min / median / max of several values (what a reader on another machine
    can expect to land within), the value alone for one, '-' for none."""
    values = [float(v) for v in values]
    if len(values) < 2:
        return mean_std(values, digits)
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values)))
