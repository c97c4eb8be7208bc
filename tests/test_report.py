"""research.report: the table writer (Markdown + CSV, number formatting) and the committed tables it wrote.

The bench tables in results/ are re-made from their own CSV through each script's columns, so a change to
the writer or to a script's formatting that would alter a committed table fails here.
"""

import ast
import csv
import importlib
from pathlib import Path

import pytest

from research import report

ROOT = Path(__file__).resolve().parent.parent


def test_write_table_writes_markdown_and_every_field_to_csv(tmp_path, capsys):
    rows = [
        {"method": "ours", "seconds": 1.23456, "compile": 0.5, "converged": True, "n": 3, "hidden": "x"},
        {"method": "peer", "seconds": 12.0, "compile": None, "converged": False, "n": 30},
    ]
    columns = [
        "method",  # a key alone is its header too
        report.Column("fit s", "seconds", ".2f"),
        ("compile s", "compile", ".2f"),
        ("converged", "converged"),
        ("n", "n"),
        ("per item", lambda r: f"{r['seconds'] / r['n']:.3f}"),
    ]
    out = report.write_table(rows, columns, tmp_path / "sub" / "t", caption="Caption.", notes=["Note 1.", "Note 2."])
    assert out == tmp_path / "sub" / "t"
    assert (tmp_path / "sub" / "t.md").read_text() == (
        "Caption.\n\n"
        "| method | fit s | compile s | converged | n | per item |\n"
        "|---|---|---|---|---|---|\n"
        "| ours | 1.23 | 0.50 | yes | 3 | 0.412 |\n"
        "| peer | 12.00 | - | no | 30 | 0.400 |\n"
        "\nNote 1.\n\nNote 2.\n"
    )
    assert "| ours | 1.23 |" in capsys.readouterr().out
    with open(tmp_path / "sub" / "t.csv") as f:
        got = list(csv.DictReader(f))
    assert got[0] == {
        "method": "ours",
        "seconds": "1.23456",
        "compile": "0.5",
        "converged": "True",
        "n": "3",
        "hidden": "x",
    }
    assert got[1]["hidden"] == "" and got[1]["compile"] == ""


def test_csv_rows_may_differ_from_the_markdown_rows(tmp_path):
    runs = [{"seed": 0, "acc": 0.5}, {"seed": 1, "acc": 0.7}]
    summary = [{"acc": report.mean_std([r["acc"] for r in runs])}]
    report.write_table(summary, [("ACC", "acc")], tmp_path / "t", csv_rows=runs)
    assert (tmp_path / "t.md").read_text() == "| ACC |\n|---|\n| 0.6000 ± 0.1414 |\n"
    assert (tmp_path / "t.csv").read_text().splitlines() == ["seed,acc", "0,0.5", "1,0.7"]


def test_spread_is_min_median_max():
    assert report.spread([0.9, 0.5, 0.7, 0.6]) == "0.5000 / 0.6500 / 0.9000"
    assert report.spread([0.25], 2) == "0.25" and report.spread([]) == "-"


def test_cells_and_command():
    assert [report.cell(v, ".3g") for v in (None, True, "text", 1234.5678, 7)] == ["-", "yes", "text", "1.23e+03", "7"]
    assert report.cell([1.5, 2.0]) == "[1.5, 2.0]"
    assert report.command("bench.x", ["--n=1", "--data_dir=/d", "--m"]) == "python -m bench.x --n=1 --m"
    assert report.command("bench.x", []) == "python -m bench.x"


def _parse(value: str):
    """A CSV cell back to the Python value csv.DictWriter wrote: None, bool, int, float, list or text."""
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return ast.literal_eval(value) if value.startswith("[") else value


BENCH_TABLES = [
    ("kmeans_vs_peers", "kmeans_vs_peers"),
    ("spherical_kmeans", "spherical_kmeans"),
    ("probe_vs_sklearn", "probe_vs_sklearn"),
    ("gmm_vs_sklearn", "gmm_vs_sklearn"),
    ("som_vs_minisom", "som_vs_minisom"),
    ("embed_vs_peers", "embed_vs_peers"),
    ("embed_vs_peers", "embed_vs_peers_cosine"),
    ("pretrain_vs_torch", "pretrain_vs_torch"),
    ("minibatch_kmeans", "minibatch_kmeans"),
    ("scale_out", "scale_out"),
    ("scale_out", "scale_out_stream"),
]


@pytest.mark.parametrize("script, table", BENCH_TABLES)
def test_bench_tables_come_back_from_their_csv(script, table):
    mod = importlib.import_module(f"bench.{script}")
    with open(ROOT / "results" / f"{table}.csv") as f:
        rows = [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(f)]
    columns = mod.table_columns(rows) if hasattr(mod, "table_columns") else mod.COLUMNS
    committed = [line for line in (ROOT / "results" / f"{table}.md").read_text().splitlines() if line.startswith("|")]
    assert report.markdown_table(rows, columns) == committed
