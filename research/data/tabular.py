"""CSV files -> a float32 feature matrix, for clustering users' own tables and for linear probes on them.

  x, y, names = tabular.load_csv(path, label_column="Survived", drop_columns=["Name"])   # fitted on all rows
  t = tabular.read_table(path, ...); tf = tabular.fit_transform(t, train_rows)          # fitted on some rows
  x_train, x_test = tabular.transform_rows(tf, t, train_rows), tabular.transform_rows(tf, t, test_rows)

A column is numeric when every non-missing cell parses as a float (unless named
in categorical_columns); it is then median-imputed and standardized. Every other
column is categorical: most-frequent-imputed and one-hot encoded. Clustering is distance-based, so
unscaled columns would let the one with the largest units decide the clusters;
this is why numeric columns are always standardized.

Read with the `csv` module (pandas is deliberately not a dependency); the
transforms are scikit-learn's, so they match what users would write themselves.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

# Cells that count as missing (compared after stripping and lower-casing).
MISSING = frozenset({"", "na", "nan"})
# A run's workdir file holding its table's fitted preprocessing (`transform_state`), for predicting on new tables.
STATE_FILE = "table_transform.json"


class Table(NamedTuple):
    """A CSV file's cells sorted by kind, before any fitting.

    cells: [N, F] object: the numeric columns first (floats, NaN where missing), then the categorical ones
      (strings, None where missing).
    numeric, categorical: the names of those columns, in that order.
    y: [N] int64 labels 0..C-1, or None without a label column.
    classes: the C label values (as written in the file) that y's indices stand for, or None.
    """

    cells: np.ndarray
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    y: np.ndarray | None
    classes: tuple[str, ...] | None


def load_csv(
    path, label_column: str | None = None, drop_columns=(), encoding: str = "utf-8", categorical_columns=()
) -> tuple[np.ndarray, np.ndarray | None, list]:
    """Reads a CSV file with a header row into (x, y, feature_names), the transform fitted on every row.

    Args:
      path: the CSV file (comma-separated, first row = column names).
      label_column: a column to take out of the features and return as labels,
        encoded to 0..C-1 in sorted order of its values (numerically sorted when
        every value is a number, so "2" < "10").
      drop_columns: column names to ignore (ids, timestamps, free text).
      encoding: the file's text encoding (Python's name: "utf-8", "latin-1", "cp1252", ...). UTF-8 is read
        with or without a byte-order mark. Nothing is guessed: a file that does not decode is refused with
        its name, the offending byte's position and what to pass instead.
      categorical_columns: columns to one-hot encode even when their values are numbers (codes such as a
        ticket class 1/2/3).

    Returns:
      x: [N, D] float32, standardized numeric columns then one-hot columns.
      y: [N] int64, or None without `label_column`.
      feature_names: D names; a one-hot column is named "column=value".

    Raises ValueError for an empty file, ragged rows, unknown or duplicate
    column names, a missing label, an all-missing column, infinite values, or
    bytes that are not text in `encoding`.
    """
    table = read_table(path, label_column, drop_columns, encoding, categorical_columns)
    transform = fit_transform(table)
    return transform_rows(transform, table), table.y, feature_names(transform, table)


def read_table(path, label_column=None, drop_columns=(), encoding="utf-8", categorical_columns=()) -> Table:
    """The CSV file as a `Table` (arguments and errors as `load_csv`'s); nothing is fitted yet."""
    drop_columns = [drop_columns] if isinstance(drop_columns, str) else list(drop_columns)
    categorical_columns = [categorical_columns] if isinstance(categorical_columns, str) else list(categorical_columns)
    header, rows = _read_rows(path, encoding)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    for name in [*drop_columns, *categorical_columns, *([label_column] if label_column is not None else [])]:
        if name not in columns:
            raise ValueError(f"{path}: no column named {name!r}; the header is {header}.")
    taken = {*drop_columns, label_column} & set(categorical_columns)
    if taken:
        raise ValueError(f"{path}: columns {sorted(taken)} are the label or dropped; they cannot be categorical too.")
    y, classes = None, None
    if label_column is not None:
        y, classes = _encode_labels(columns.pop(label_column), path, label_column)
    for name in drop_columns:
        columns.pop(name, None)
    if not columns:
        raise ValueError(f"{path}: no feature columns left after removing the label and drop_columns.")
    return _sorted_by_kind(columns, path, set(categorical_columns))._replace(y=y, classes=classes)


def fit_transform(table: Table, rows=None):
    """The scikit-learn ColumnTransformer (median imputation and scaling for numbers, most-frequent imputation
    and one-hot for categories) fitted on table.cells[rows] (default: every row)."""
    cells = table.cells if rows is None else table.cells[rows]
    return _column_transformer(len(table.numeric), len(table.categorical)).fit(cells)


def transform_rows(transform, table: Table, rows=None) -> np.ndarray:
    """table.cells[rows] (default: every row) through a fitted `fit_transform`: [n, D] float32."""
    cells = table.cells if rows is None else table.cells[rows]
    return transform.transform(cells).astype(np.float32)


def feature_names(transform, table: Table) -> list[str]:
    """The D output columns' names: the numeric columns, then "column=value" for each one-hot column."""
    names = list(table.numeric)
    if table.categorical:
        names += [str(n) for n in transform.named_transformers_["cat"].get_feature_names_out(list(table.categorical))]
    return names


def fill_values(transform, table: Table) -> dict:
    """What a fitted `fit_transform` puts in a missing cell of each column: {column: median or most frequent}."""
    out = {}
    for part, names in (("num", table.numeric), ("cat", table.categorical)):
        if names:
            stats = transform.named_transformers_[part][0].statistics_
            out |= {name: float(v) if part == "num" else str(v) for name, v in zip(names, stats)}
    return out


def transform_state(transform, table: Table, label_column: str | None = None) -> dict:
    """A fitted `fit_transform` as plain JSON data, so a saved run can apply it to new tables (`apply_state`):
    the columns by kind, each numeric column's median, mean and scale, each categorical column's fill value and
    categories, and the label column with the label values its indices stand for."""
    state = {"numeric": list(table.numeric), "categorical": list(table.categorical), "label_column": label_column}
    state["classes"] = None if table.classes is None else list(table.classes)
    if table.numeric:
        imputer, scaler = transform.named_transformers_["num"]
        state |= {
            "median": imputer.statistics_.tolist(),
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
        }
    if table.categorical:
        imputer, encoder = transform.named_transformers_["cat"]
        state |= {
            "fill": [str(v) for v in imputer.statistics_],
            "categories": [list(map(str, c)) for c in encoder.categories_],
        }
    return state


def apply_state(state: dict, path, encoding: str = "utf-8") -> tuple[np.ndarray, np.ndarray | None]:
    """A new CSV file through a saved `transform_state`: (x [N, D] float32, y [N] or None).

    The file needs every column the state was fitted on (others are ignored, so ids may stay); numeric ones must
    hold numbers or be missing. Missing cells get the training fill values, numbers the training scaling, and a
    category not seen in training encodes as all zeros (as scikit-learn's handle_unknown="ignore"). Labels, when
    the file has the label column, are encoded as the training run's; an unseen label value is refused.
    """
    header, rows = _read_rows(path, encoding)
    index = {name: i for i, name in enumerate(header)}
    wanted = [*state["numeric"], *state["categorical"]]
    absent = [name for name in wanted if name not in index]
    if absent:
        raise ValueError(
            f"{path}: no column(s) {absent}; the saved run was fitted on columns {wanted}. Give a table with them."
        )
    parts = []
    if state["numeric"]:
        cells = np.empty((len(rows), len(state["numeric"])), np.float64)
        for j, name in enumerate(state["numeric"]):
            for i, row in enumerate(rows):
                cell = row[index[name]]
                value = math.nan if _is_missing(cell) else _as_float(cell)
                if value is None or math.isinf(value):
                    raise ValueError(
                        f"{path}: column {name!r} was numeric in training, but data row {i + 1} holds {cell!r}; "
                        "give a number or leave the cell empty (missing)."
                    )
                cells[i, j] = value
        cells = np.where(np.isnan(cells), np.asarray(state["median"]), cells)
        parts.append((cells - np.asarray(state["mean"])) / np.asarray(state["scale"]))
    for name, fill, categories in zip(state["categorical"], state.get("fill", ()), state.get("categories", ())):
        values = [fill if _is_missing(row[index[name]]) else row[index[name]] for row in rows]
        parts.append(np.asarray([[v == c for c in categories] for v in values], np.float64).reshape(len(rows), -1))
    x = np.concatenate(parts, axis=1).astype(np.float32)
    label = state.get("label_column")
    if label is None or label not in index:
        return x, None
    return x, _encode_as(state["classes"], [row[index[label]] for row in rows], path, label)


def _encode_as(classes: list, cells: list[str], path, column: str) -> np.ndarray:
    """Label cells as the indices of the training run's `classes` (numbers compared as numbers)."""

    def key(value):
        number = _as_float(value)
        return value if number is None else number

    index = {key(c): i for i, c in enumerate(classes)}
    unseen = sorted({cell for cell in cells if key(cell) not in index})
    if unseen:
        raise ValueError(
            f"{path}: label column {column!r} holds values the run never saw: {unseen[:10]}; its classes are "
            f"{classes}. Drop those rows, or leave out the label column to predict without scoring."
        )
    return np.asarray([index[key(c)] for c in cells], np.int64)


def _read_rows(path, encoding: str = "utf-8") -> tuple[list[str], list[list[str]]]:
    """Returns (header, data rows) with cells stripped; blank lines are skipped."""
    lines = [row for row in csv.reader(_decoded_lines(path, encoding)) if any(cell.strip() for cell in row)]
    if not lines:
        raise ValueError(f"{path}: the file is empty; expected a header row and at least one data row.")
    header = [cell.strip() for cell in lines[0]]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate column names {duplicates}; column names must be unique.")
    rows = [[cell.strip() for cell in row] for row in lines[1:]]
    if not rows:
        raise ValueError(f"{path}: the file is empty: it has a header but no data rows.")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(
                f"{path}: data row {i + 1} has {len(row)} fields but the header has {len(header)}; "
                "quote cells that contain commas."
            )
    return header, rows


def _decoded_lines(path, encoding: str) -> list[str]:
    """The file's text lines (line endings kept, as csv.reader wants them), or a ValueError naming the file."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"unknown text encoding {encoding!r} for {path}; use a Python codec name, e.g. latin-1."
        ) from None
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not {encoding} text: byte 0x{data[e.start]:02x} at offset {e.start} does not decode. "
            "Pass its encoding with --csv_encoding (e.g. --csv_encoding=latin-1 or cp1252) or convert the file "
            "to UTF-8."
        ) from None
    return io.StringIO(text, newline="").readlines()


def _is_missing(cell: str) -> bool:
    return cell.lower() in MISSING


def _as_float(cell: str) -> float | None:
    """The cell as a float, or None when it is not a number."""
    try:
        return float(cell)
    except ValueError:
        return None


def _encode_labels(cells: list[str], path, column: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Maps label values to 0..C-1 in sorted order (numeric order for numbers): (codes, the values as written)."""
    missing = [i + 1 for i, cell in enumerate(cells) if _is_missing(cell)]
    if missing:
        raise ValueError(
            f"{path}: label column {column!r} is missing in {len(missing)} rows "
            f"(data rows {missing[:10]}{' ...' if len(missing) > 10 else ''}); drop or fill those rows."
        )
    numbers = [_as_float(cell) for cell in cells]
    keys = numbers if all(v is not None for v in numbers) else cells
    classes = sorted(set(keys))
    index = {value: i for i, value in enumerate(classes)}
    written = dict(zip(keys, cells))  # a number's text as the file writes it (the last spelling of it)
    return np.asarray([index[k] for k in keys], dtype=np.int64), tuple(written[k] for k in classes)


def _sorted_by_kind(columns: dict[str, list[str]], path, categorical_columns: set) -> Table:
    """Sorts columns into numeric and categorical (every name in categorical_columns is one) as a Table."""
    numeric, categorical, infinite = {}, {}, []
    for name, cells in columns.items():
        if all(_is_missing(cell) for cell in cells):
            raise ValueError(f"{path}: column {name!r} has no values (every cell is missing); drop it.")
        floats = [math.nan if _is_missing(cell) else _as_float(cell) for cell in cells]
        if name not in categorical_columns and all(v is not None for v in floats):
            numeric[name] = floats
            infinite += [name] if any(map(math.isinf, floats)) else []
        else:
            categorical[name] = [None if _is_missing(cell) else cell for cell in cells]
    if infinite:
        raise ValueError(f"{path}: infinite values in columns {infinite}; replace them or mark them missing (empty).")
    # Numeric columns first: the transformer's output order is numeric then one-hot.
    cells = np.empty((len(next(iter(columns.values()))), len(columns)), dtype=object)
    for j, col in enumerate([*numeric.values(), *categorical.values()]):
        cells[:, j] = col
    return Table(cells, tuple(numeric), tuple(categorical), None, None)


def _one_hot_name(column, category) -> str:
    return f"{column}={category}"


def _column_transformer(n_numeric: int, n_categorical: int):
    """The ColumnTransformer for a table whose first `n_numeric` columns are numeric."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent", missing_values=None),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False, feature_name_combiner=_one_hot_name),
    )
    parts = []
    if n_numeric:
        parts.append(("num", numeric, list(range(n_numeric))))
    if n_categorical:
        parts.append(("cat", categorical, list(range(n_numeric, n_numeric + n_categorical))))
    return ColumnTransformer(parts, sparse_threshold=0)
