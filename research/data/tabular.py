"""CSV files -> a float32 feature matrix, for clustering users' own tables.

A column is numeric when every non-missing cell parses as a float; it is then
median-imputed and standardized. Every other column is categorical:
most-frequent-imputed and one-hot encoded. Clustering is distance-based, so
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

import numpy as np

# Cells that count as missing (compared after stripping and lower-casing).
MISSING = frozenset({"", "na", "nan"})


def load_csv(
    path, label_column: str | None = None, drop_columns=(), encoding: str = "utf-8"
) -> tuple[np.ndarray, np.ndarray | None, list]:
    """Reads a CSV file with a header row into (x, y, feature_names).

    Args:
      path: the CSV file (comma-separated, first row = column names).
      label_column: a column to take out of the features and return as labels,
        encoded to 0..C-1 in sorted order of its values (numerically sorted when
        every value is a number, so "2" < "10").
      drop_columns: column names to ignore (ids, timestamps, free text).
      encoding: the file's text encoding (Python's name: "utf-8", "latin-1", "cp1252", ...). UTF-8 is read
        with or without a byte-order mark. Nothing is guessed: a file that does not decode is refused with
        its name, the offending byte's position and what to pass instead.

    Returns:
      x: [N, D] float32, standardized numeric columns then one-hot columns.
      y: [N] int64, or None without `label_column`.
      feature_names: D names; a one-hot column is named "column=value".

    Raises ValueError for an empty file, ragged rows, unknown or duplicate
    column names, a missing label, an all-missing column, infinite values, or
    bytes that are not text in `encoding`.
    """
    if isinstance(drop_columns, str):
        drop_columns = [drop_columns]
    header, rows = _read_rows(path, encoding)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    for name in [*drop_columns, *([label_column] if label_column is not None else [])]:
        if name not in columns:
            raise ValueError(f"{path}: no column named {name!r}; the header is {header}.")
    y = _encode_labels(columns.pop(label_column), path, label_column) if label_column is not None else None
    for name in drop_columns:
        columns.pop(name, None)
    if not columns:
        raise ValueError(f"{path}: no feature columns left after removing the label and drop_columns.")
    x, names = _features(columns, path)
    return x, y, names


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


def _encode_labels(cells: list[str], path, column: str) -> np.ndarray:
    """Maps label values to 0..C-1 in sorted order (numeric order for numbers)."""
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
    return np.asarray([index[k] for k in keys], dtype=np.int64)


def _features(columns: dict[str, list[str]], path) -> tuple[np.ndarray, list[str]]:
    """Splits columns into numeric / categorical and runs the scikit-learn transform."""
    numeric, categorical, infinite = {}, {}, []
    for name, cells in columns.items():
        if all(_is_missing(cell) for cell in cells):
            raise ValueError(f"{path}: column {name!r} has no values (every cell is missing); drop it.")
        floats = [math.nan if _is_missing(cell) else _as_float(cell) for cell in cells]
        if all(v is not None for v in floats):
            numeric[name] = floats
            infinite += [name] if any(map(math.isinf, floats)) else []
        else:
            categorical[name] = [None if _is_missing(cell) else cell for cell in cells]
    if infinite:
        raise ValueError(f"{path}: infinite values in columns {infinite}; replace them or mark them missing (empty).")
    # Numeric columns first: the transformer's output order is numeric then one-hot.
    table = np.empty((len(next(iter(columns.values()))), len(columns)), dtype=object)
    for j, col in enumerate([*numeric.values(), *categorical.values()]):
        table[:, j] = col
    transform = _column_transformer(len(numeric), len(categorical))
    x = transform.fit_transform(table).astype(np.float32)
    names = list(numeric)
    if categorical:
        names += [str(n) for n in transform.named_transformers_["cat"].get_feature_names_out(list(categorical))]
    return x, names


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
