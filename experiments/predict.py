r"""A finished run's model on new data: labels (and probabilities or codes) as .npy and .csv.

  python -m experiments.predict --workdir=checkpoints/kmeans/mnist-seed0 --dataset=mnist --split=test \
      --output=predictions/kmeans-test
  python -m experiments.predict --workdir=checkpoints/dec/digits-seed0 --dataset=npy:new.npy --output=new

Writes <output>.npy (labels [n]; an autoencoder run's codes [n, latent]) and <output>.csv (index, label, then
p_<k> per cluster for models with probabilities, or z_<j> per code); an existing file is refused unless
--overwrite. New data must have the training run's features (and image shape, where it recorded one). A csv:
table goes through the training run's own preprocessing (its table_transform.json: medians, scaling, categories
and label values), so even one new row is read as in training; it needs the training columns (others are
ignored). Runs made before that file existed refit the preprocessing on the new table with the run's
--label_column, --drop_columns and --csv_encoding unless given. A photo folder (images:<dir>) is read at the
run's --image_size and --color unless given. A linear_probe run prints its accuracy, other
runs their label metrics, when the new data has labels. The model: research.load (research/saved.py).
Docs: docs/experiments.md#predict.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from absl import flags, logging
from sklearn.pipeline import Pipeline

from experiments import common
from research import data, runlog, saved
from research.data import tabular

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "Path prefix of the outputs: <output>.npy and <output>.csv.")
flags.mark_flags_as_required(["workdir", "output"])
CSV_FLAGS = ("label_column", "drop_columns", "csv_encoding")
IMAGE_FLAGS = ("image_size", "color")  # images:<dir>: taken from the run unless given


def main(argv):
    del argv
    out = output_paths(FLAGS.output, FLAGS.overwrite)
    run = saved.open_run(FLAGS.workdir)
    given = {name: FLAGS[name].value for name in CSV_FLAGS + IMAGE_FLAGS if FLAGS[name].present}
    blobs = data.Blobs(*(FLAGS[name].value for name in common.BLOBS_FLAGS)) if FLAGS.dataset == "blobs" else None
    ds = load_new_data(run, Path(FLAGS.workdir), FLAGS.dataset, FLAGS.split, FLAGS.data_dir, given, blobs)
    columns = predict(run, ds.x)
    write_outputs(out, columns)
    scores = scores_text(run, ds.y, columns)
    print(
        f"predict {run.experiment} of {FLAGS.workdir} on {ds.name}/{FLAGS.split} ({len(ds.x)} rows): {scores} -> "
        f"{out[0]}, {out[1]}",
        flush=True,
    )


def load_new_data(run: saved.SavedRun, workdir: Path, dataset: str, split: str, data_dir, given: dict, blobs=None):
    """The new rows, checked against what the run's model takes (features, image shape, a table's columns). A
    csv: table goes through the run's saved preprocessing, or, for a run made before it was saved, is read with
    the run's label_column, drop_columns and csv_encoding, each unless `given`; an images:<dir> folder is read at
    the run's image_size and color unless given. blobs: --dataset=blobs's settings (data.Blobs)."""
    trained_on = str(run.config.get("dataset", ""))
    if trained_on.startswith("csv:") != dataset.startswith("csv:"):
        raise ValueError(
            f"--dataset={dataset}: the run was trained on {trained_on!r}; a csv: table's columns are imputed, "
            "standardized and one-hot encoded, so a table and other data cannot stand in for each other."
        )
    table = {**{name: run.config.get(name) for name in CSV_FLAGS}, **given} if dataset.startswith("csv:") else given
    given_images = {name: given[name] for name in IMAGE_FLAGS if name in given}
    if dataset.startswith("csv:") and (workdir / tabular.STATE_FILE).is_file():
        return table_with_run_preprocessing(run, workdir, dataset, table.get("csv_encoding") or "utf-8")
    cfg = common.RunConfig(
        "predict",
        workdir,
        dataset=dataset,
        split=split,
        data_dir=data_dir,
        label_column=table.get("label_column"),
        drop_columns=tuple(table.get("drop_columns") or ()),
        csv_encoding=table.get("csv_encoding") or "utf-8",
        blobs=blobs,
        **({name: run.config[name] for name in IMAGE_FLAGS if run.config.get(name) is not None} | given_images),
    )
    ds = cfg.load()
    saved.check_input(run, ds.x, ds.image_shape, f"--dataset={dataset}")
    if run.image_shape and ds.image_shape is None:
        logging.warning("%s has no image shape; its rows are taken as %s images.", dataset, run.image_shape)
    return ds


def table_with_run_preprocessing(run: saved.SavedRun, workdir: Path, dataset: str, encoding: str) -> data.Dataset:
    """A new csv: table through the training run's own preprocessing (its medians, scaling and categories, saved
    in tabular.STATE_FILE), so a row means what it meant in training however few rows the new table has."""
    path = Path(dataset.partition(":")[2]).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--dataset={dataset}: no such file {path}; give the path of a CSV file.")
    x, y = tabular.apply_state(runlog.read_json(workdir / tabular.STATE_FILE), path, encoding)
    saved.check_input(run, x, None, f"--dataset={dataset}")
    return data.Dataset(x, y, None, dataset)


def scores_text(run: saved.SavedRun, y, columns: dict) -> str:
    """What is printed of the predictions: a probe's accuracy, a clustering's label metrics (when the new data
    has labels), else what was written."""
    if "label" not in columns:
        return "codes"
    if y is None:
        return "no labels to score"
    probe = run.model.steps[-1][1] if isinstance(run.model, Pipeline) else run.model
    if isinstance(probe, saved.SavedProbe):
        return f"accuracy={np.mean(columns['label'] == probe.targets(y)):.4f}"
    return common.score_text(common.label_metrics(y, columns["label"]))


def output_paths(prefix: str, overwrite: bool) -> tuple[Path, Path]:
    """(<prefix>.npy, <prefix>.csv); a prefix given with either suffix loses it. Refuses existing files unless
    overwrite, before any work."""
    base = Path(prefix)
    if base.suffix in (".npy", ".csv"):
        base = base.with_suffix("")
    paths = (base.with_name(base.name + ".npy"), base.with_name(base.name + ".csv"))
    for path in paths:
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it, or choose another --output.")
    return paths


def predict(run: saved.SavedRun, x) -> dict:
    """The model's outputs on x: {"label": [n]} and "proba" [n, k] where it has them, else {"codes": [n, d]}."""
    model = run.model
    if not hasattr(model, "predict"):
        return {"codes": np.asarray(model.transform(x), np.float32)}
    out = {"label": np.asarray(model.predict(x))}
    if hasattr(model, "predict_proba"):
        out["proba"] = np.asarray(model.predict_proba(x), np.float32)
    return out


def write_outputs(paths: tuple[Path, Path], columns: dict) -> None:
    """<output>.npy (labels, or codes) and <output>.csv (a row per sample), each written whole then renamed."""
    npy, csv = paths
    npy.parent.mkdir(parents=True, exist_ok=True)
    main_array = columns.get("label", columns.get("codes"))
    n = len(main_array)
    header, cells = ["index"], [np.arange(n).astype(str)]
    if "label" in columns:
        header.append("label")
        cells.append(columns["label"].astype(str))
    for name, prefix in (("proba", "p"), ("codes", "z")):
        if name in columns:
            header += [f"{prefix}_{j}" for j in range(columns[name].shape[1])]
            cells += [np.char.mod("%.6g", col) for col in columns[name].T]
    rows = np.stack(cells, axis=1)
    _replace(npy, lambda f: np.save(f, main_array))
    text = ",".join(header) + "\n" + "".join(",".join(row) + "\n" for row in rows)
    _replace(csv, lambda f: f.write(text.encode()))


def _replace(path: Path, write) -> None:
    """Writes path through a temporary file beside it, renamed over it when complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


if __name__ == "__main__":
    common.run_main(main)
