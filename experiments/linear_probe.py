r"""Linear probe: logistic regression on features, trained on the train split, scored on the test split.

  python -m experiments.linear_probe --dataset=digits
  python -m experiments.linear_probe --dataset=mnist --data_dir=../shared/datasets --C=10 --augment=shift
  python -m experiments.linear_probe --dataset=mnist --positive_class=5      # the "is it a 5" detector
  python -m experiments.linear_probe --dataset=csv:titanic.csv --label_column=Survived \
      --drop_columns=PassengerId,Name,Ticket,Cabin --categorical_columns=Pclass --test_fraction=0.2

Features: pixels (a table's columns), PCA or a pretrained encoder's codes. --positive_class=P (implied for a
two-class dataset: its second class): a binary "is it P" probe. Stratified cross-validation on the training
rows (--cv_folds), the "is it P" probe's with curves and the always-"no" baseline; a table without a test split
holds out --test_fraction of its rows. Splits, outputs, flags: docs/experiments.md#linear_probe, docs/flags.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from absl import app, flags, logging

from experiments import common, features
from research import checkpointing, data, plots, probe, runlog
from research.data import tabular

FLAGS = flags.FLAGS
flags.DEFINE_float("C", 10.0, "Inverse L2 strength (scikit-learn's C): loss = C * sum CE + ||W||^2 / 2.")
flags.DEFINE_enum("solver", "lbfgs", list(probe.SOLVERS), "lbfgs (optax L-BFGS, zoom linesearch) or adam.")
flags.DEFINE_integer("max_iter", None, "Solver iterations at most. Default: 100 for lbfgs, 1000 for adam.")
flags.DEFINE_float("tol", 1e-4, "Stop when max |gradient| of the mean objective is <= tol (scikit-learn's gtol).")
flags.DEFINE_float("learning_rate", 1e-2, "adam only: step size.")
flags.DEFINE_bool("standardize", False, "Scale each feature to zero mean, unit variance (training statistics).")
flags.DEFINE_enum("features", "pixels", list(features.KINDS), "Raw pixels (a table's columns) or PCA of them.")
flags.DEFINE_integer("pca_components", 50, "--features=pca: number of components.")
flags.DEFINE_integer(
    "positive_class",
    None,
    "One-vs-rest: a binary probe for this class (csv: its index in the sorted label values) against all others. "
    "Default: the second class of a two-class dataset, else none (multinomial).",
)
flags.DEFINE_enum("augment", "none", ["none", "shift"], "shift: add 1-pixel shifted copies of the training images.")
flags.DEFINE_integer(
    "cv_folds", 3, "Stratified folds for cross-validation on the training rows, before the final fit (0: skip)."
)
flags.DEFINE_float(
    "test_fraction",
    None,
    "Datasets without a test split (csv:, npy:): hold out this stratified fraction of the rows as the test set. "
    "Default: none (cross-validation only).",
)
flags.DEFINE_list(
    "categorical_columns", [], "csv: columns to one-hot encode although their values are numbers (e.g. Pclass)."
)
flags.DEFINE_float(
    "target_precision", 0.9, "Binary probe: report the lowest threshold whose cross-validated precision reaches this."
)
common.cli.positive_finite("C")
common.cli.at_least("max_iter", 1)
common.cli.positive_finite("tol", allow_zero=True)
common.cli.positive_finite("learning_rate")
common.cli.at_least("pca_components", 1)
common.cli.check("cv_folds", lambda v: v == 0 or v >= 2, "must be 0 (no cross-validation) or >= 2")
common.cli.check("test_fraction", lambda v: 0 < v < 1, "must be in (0, 1): the share of rows held out for testing")
common.cli.check("target_precision", lambda v: 0 < v <= 1, "must be in (0, 1]: a precision to reach")


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings (the flags of the same names): probe.fit's keywords, the features and the protocol."""

    C: float
    solver: str
    max_iter: int | None
    tol: float
    learning_rate: float
    standardize: bool
    features: str
    pca_components: int
    pretrained: str | None
    positive_class: int | None
    augment: str
    cv_folds: int
    test_fraction: float | None
    categorical_columns: tuple[str, ...]
    target_precision: float


class Splits(NamedTuple):
    """The rows a run trains and tests on. test: None for cross-validation only. A table's also carry its
    feature_names, the label values its class indices stand for (classes), its imputation's fill_values and its
    whole preprocessing as data (table: `tabular.transform_state`, which predicting on new tables applies)."""

    train: data.Dataset
    test: data.Dataset | None
    feature_names: list | None = None
    classes: list | None = None
    fill_values: dict | None = None
    table: dict | None = None


def main(argv):
    del argv
    if FLAGS["split"].present:
        raise app.UsageError(
            "--split is not used by linear_probe: it trains on the train split and scores on the test split "
            "(a table: on --test_fraction of its rows)."
        )
    cfg = common.config_from_flags(Config, categorical_columns=tuple(FLAGS.categorical_columns))
    run = common.run_config("linear_probe", variant(cfg))
    splits = load_splits(run, cfg)  # before the workdir: a bad dataset leaves nothing behind
    wd = common.prepare_workdir(run)
    if splits.train.image_shape is not None:
        common.save_preview(run, splits.train)
    results, text, timed = train_and_evaluate(run, cfg, splits)
    common.finish(
        run,
        results,
        f"linear_probe {splits.train.name} {text} (C={cfg.C:g}, {cfg.solver}, {results['n_iter']} iters"
        f"{'' if results['converged'] else ', not converged'}) fit {timed.run_seconds:.2f}s "
        f"(compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


def variant(cfg: Config) -> str:
    """The default workdir's tag, so that the softmax, shifted and "is it P" runs of a dataset keep apart:
    'is5', 'shift', 'is5-shift' or ''."""
    parts = ([] if cfg.positive_class is None else [f"is{cfg.positive_class}"]) + ["shift"] * (cfg.augment == "shift")
    return "-".join(parts)


def load_splits(run: common.RunConfig, cfg: Config) -> Splits:
    """The run's Splits, checked against cfg: a dataset's own train/test split, else its rows with --test_fraction
    of them held out (stratified), else all of them for cross-validation alone."""
    if run.dataset.startswith("csv:"):
        splits = table_splits(run, cfg)
    else:
        if cfg.categorical_columns:
            raise ValueError("--categorical_columns applies to csv:<path> datasets only; leave it unset.")
        splits = image_splits(run, cfg)
    train, test = splits.train, splits.test
    if train.y is None:
        raise ValueError(f"dataset {run.dataset!r} has no labels; a linear probe needs them.")
    if test is None and not cfg.cv_folds:
        raise ValueError(
            f"dataset {run.dataset!r} has no test split and --cv_folds=0 leaves nothing to score: pass "
            "--test_fraction (e.g. 0.2) for a stratified hold-out and/or --cv_folds >= 2."
        )
    logging.info("train %s, test %s", train.x.shape, None if test is None else test.x.shape)
    if cfg.pretrained:
        features.load_encoder(cfg.pretrained, input_dim=train.x.shape[1])  # fails now, not after the work
    probe.check_split_labels(train.y, train.y if test is None else test.y, cfg.positive_class)
    if cfg.augment == "shift" and train.image_shape is None:
        raise ValueError(f"--augment=shift needs images; dataset {train.name!r} has no image shape.")
    return splits


def holdout_key(run: common.RunConfig):
    """The key that draws the --test_fraction rows (apart from the features' and the folds' key)."""
    return jax.random.fold_in(run.key(), 1)


def image_splits(run: common.RunConfig, cfg: Config) -> Splits:
    """A dataset's own train/test split, or (npy:) its rows split by --test_fraction."""
    try:
        train, test = run.load("train"), run.load("test")
    except ValueError as e:
        if "unknown split" not in str(e):
            raise
    else:
        if cfg.test_fraction is not None:
            raise ValueError(f"--test_fraction: dataset {run.dataset!r} has its own test split; leave it unset.")
        return Splits(train, test)
    ds = run.load("all")
    if cfg.test_fraction is None or ds.y is None:
        return Splits(ds, None)
    held = probe.stratified_holdout(holdout_key(run), ds.y, cfg.test_fraction)
    return Splits(*(data.Dataset(ds.x[rows], ds.y[rows], ds.image_shape, ds.name) for rows in (~held, held)))


def table_splits(run: common.RunConfig, cfg: Config) -> Splits:
    """A CSV table's rows, --test_fraction of them held out; its preprocessing (imputation, scaling, one-hot) is
    fitted on the training rows alone, so no test row shapes it."""
    path = Path(run.dataset.partition(":")[2]).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"dataset {run.dataset!r}: no such file {path}; give the path of a CSV file.")
    table = tabular.read_table(path, run.label_column, run.drop_columns, run.csv_encoding, cfg.categorical_columns)
    if table.y is None:
        raise ValueError(
            f"dataset {run.dataset!r}: a linear probe needs labels; name their column with --label_column."
        )
    held = np.zeros(len(table.y), bool)
    if cfg.test_fraction is not None:
        held = probe.stratified_holdout(holdout_key(run), table.y, cfg.test_fraction)
    transform = tabular.fit_transform(table, ~held)

    def part(rows):
        return data.Dataset(tabular.transform_rows(transform, table, rows), table.y[rows], None, run.dataset)

    return Splits(
        part(~held),
        part(held) if held.any() else None,
        tabular.feature_names(transform, table),
        list(table.classes),
        tabular.fill_values(transform, table),
        tabular.transform_state(transform, table, run.label_column),
    )


def train_and_evaluate(run: common.RunConfig, cfg: Config, splits: Splits):
    """Cross-validates the probe on the training rows' features, fits it to all of them and scores it on the test
    rows': (results, text, Timed)."""
    train, test = splits.train, splits.test
    extractor = {"key": run.key(), "pca_components": cfg.pca_components, "pretrained": cfg.pretrained}
    z_train, y_train, z_test, info, feature_params = features.train_test(
        cfg.features, train, test or train, shift=cfg.augment == "shift", standardized=cfg.standardize, **extractor
    )
    classes = np.unique(train.y)
    pos = cfg.positive_class if cfg.positive_class is not None or len(classes) != 2 else int(classes[1])
    label = class_label(run, splits, pos)
    fit_kwargs, n_test = common.keyword_args(probe.fit, cfg), None if test is None else len(test.x)
    results = {"dataset": train.name, "seed": run.seed, "n_train": len(train.x), "n_test": n_test}
    results |= {"test_fraction": cfg.test_fraction, "n_train_fitted": len(z_train), "n_features": int(z_train.shape[1])}
    results |= {**info, "features": "pretrained" if cfg.pretrained else cfg.features}
    results |= {name: getattr(cfg, name) for name in ("augment", "standardize", "C", "solver")}
    if splits.classes is not None:
        results |= {"label_classes": splits.classes, "fill_values": splits.fill_values}
    if pos is not None:
        results |= {"positive_class": pos, "train_positive_fraction": float(np.mean(train.y == pos))}
    if cfg.cv_folds:  # on the originals (the first rows) and, with --augment=shift, their shifted copies
        results["cv"] = cross_validate(run, cfg, fit_kwargs, train, z_train, pos, label)
    timed, scores = probe.evaluate(
        z_train, y_train, None if test is None else z_test, None if test is None else test.y,
        positive_class=pos, **fit_kwargs,
    )  # fmt: skip
    results |= {**scores, "loss": float(timed.out.loss), **common.fit_fields(timed.out, timed)}
    save_model(run, cfg, splits, timed.out.params, feature_params, classes, pos)
    if splits.feature_names is not None and cfg.features == "pixels" and not cfg.pretrained:
        results["weights"] = column_weights(timed.out.params, splits, classes)
    confusion_plot(run, results, test is None, classes, pos, label)
    return results, summary_text(results, pos, label, test is None), timed


def save_model(run: common.RunConfig, cfg: Config, splits: Splits, params, feature_params: dict, classes, pos):
    """ckpt/ (the probe's weights and what makes its features, for research.load and experiments.predict) and,
    for a table, its preprocessing fitted on the training rows (tabular.STATE_FILE)."""
    label_values = None if splits.classes is None else [splits.classes[c] for c in classes]
    config = {
        "features": "pretrained" if cfg.pretrained else cfg.features,
        "pretrained": cfg.pretrained,
        "positive_class": None if pos is None else int(pos),
        # What each logit column stands for: the label values (a table's as written), or "is it P" (False, True).
        "classes": [False, True] if pos is not None else (label_values or [int(c) for c in classes]),
        "label_values": splits.classes,  # a table's: the value each label index stands for
        "C": cfg.C,
    }
    probe_params = {"probe": {"W_dc": np.asarray(params.W_dc), "b_c": np.asarray(params.b_c)}}
    checkpointing.save_pytree(
        run.workdir / "ckpt", probe_params | feature_params, config=config, overwrite=run.overwrite
    )
    if splits.table is not None:
        runlog.write_json(run.workdir / tabular.STATE_FILE, splits.table)


def class_label(run: common.RunConfig, splits: Splits, pos) -> str | None:
    """How the positive class is named in messages: 'Survived=1' for a table's, '5' for an image dataset's."""
    if pos is None:
        return None
    return f"{run.label_column}={splits.classes[pos]}" if splits.classes is not None else str(pos)


def column_weights(params, splits: Splits, classes):
    """The fitted probe's weight of every input column, largest first (`probe.sorted_weights`), printed for a
    binary probe."""
    names = None if splits.classes is None else [splits.classes[c] for c in classes]
    weights = probe.sorted_weights(params, splits.feature_names, names)
    if isinstance(weights, list):
        print("weights of the input columns, largest first:", flush=True)
        print("\n".join(f"  {w:+.4f}  {name}" for name, w in weights), flush=True)
    return weights


def confusion_plot(run: common.RunConfig, results: dict, cv_only: bool, classes, pos, label) -> None:
    """plots/confusion.png: the test rows' confusion matrix, or without them the out-of-fold one."""
    conf, where = (results["cv"]["confusion"], "out-of-fold") if cv_only else (results["confusion"], "test")
    acc = results["cv"]["accuracy"] if cv_only else results["test_accuracy"]
    names, title = (list(classes), "linear probe") if pos is None else ([f"not {label}", label], f"'is it {label}'")
    title = f"{title}, {results['dataset']} {where}: accuracy {acc:.4f}"
    plots.confusion_matrix(np.asarray(conf), run.workdir / "plots" / "confusion.png", class_names=names, title=title)


def summary_text(results: dict, pos, label, cv_only: bool) -> str:
    """The scores of the summary line: the test rows', or without them the cross-validated ones."""
    scores = {k.removeprefix("test_"): v for k, v in results.items() if k.startswith("test_")}
    where = "test"
    if cv_only:
        cv, where = results["cv"], "cross-validated"
        scores = {**cv, "baseline_never_positive_accuracy": cv.get("baseline_never_positive", {}).get("accuracy")}
    if pos is None:
        return f"{where} acc={scores['accuracy']:.4f}" + (f" macro_f1={results['macro_f1']:.4f}" if not cv_only else "")
    return (
        f"'is it {label}' {where} acc={scores['accuracy']:.4f} precision={scores['precision']:.4f} "
        f"recall={scores['recall']:.4f} (always 'not {label}': acc={scores['baseline_never_positive_accuracy']:.4f})"
    )


def cross_validate(run: common.RunConfig, cfg: Config, fit_kwargs: dict, train, z_train, pos, label) -> dict:
    """Stratified cross-validation of the probe on the n training rows: its results; saves the out-of-fold
    decision scores (decision_scores.npy) and, for a binary probe, its curves."""
    folds, n, classes = cfg.cv_folds, len(train.y), np.unique(train.y)
    shifted = (lambda _: z_train) if cfg.augment == "shift" else None  # a fold trains on the copies of its own
    x, kwargs = z_train[:n], {"augment": shifted, **fit_kwargs}
    if pos is None:
        y = np.searchsorted(classes, train.y)
        cv = probe.cross_validate(run.key(), x, y, folds, n_classes=len(classes), **kwargs)
        summary = probe.cv_summary(cv, y, len(classes))
        print(
            f"cross-validated ({folds} folds): accuracy={summary['accuracy']:.4f} macro precision="
            f"{summary['precision']:.4f} recall={summary['recall']:.4f} f1={summary['f1']:.4f}",
            flush=True,
        )
    else:
        y01 = (train.y == pos).astype(np.int64)
        cv = probe.cross_validate(run.key(), x, y01, folds, binary=True, **kwargs)
        summary = probe.binary_cv_summary(cv, y01, cfg.target_precision)
        title = f"'is it {label}' on {train.name} train, {folds}-fold out-of-fold scores"
        summary["roc_auc"] = binary_curves(run.workdir / "plots", y01, cv.scores_n, summary, title)
        print(binary_cv_text(summary, folds, label), flush=True)
    np.save(run.workdir / "decision_scores.npy", cv.scores_n)
    return summary


def binary_curves(folder: Path, y01, scores, summary: dict, title: str) -> float:
    """Draws precision and recall against the threshold, the PR curve and the ROC curve of the out-of-fold
    scores into `folder`, the probe's own threshold (0) and the target precision's marked; returns the AUC."""
    precision, recall, thresholds = probe.precision_recall_curve(y01, scores)
    fpr, tpr, _, auc = probe.roc_curve(y01, scores)
    conf = np.asarray(summary["confusion"])
    at = summary.get("at_target_precision") or {}
    marked, points = {"threshold 0": 0.0}, {"threshold 0": (summary["precision"], summary["recall"])}
    roc_points = {"threshold 0": (conf[0, 1] / conf[0].sum(), summary["recall"])}
    if at.get("threshold") is not None:
        name = f"precision >= {at['target']:g}"
        marked[name], points[name] = at["threshold"], (at["precision"], at["recall"])
        roc_points[name] = (float(np.mean(scores[y01 == 0] >= at["threshold"])), at["recall"])
    plots.precision_recall_vs_threshold(
        precision, recall, thresholds, folder / "precision_recall_vs_threshold.png", marked=marked, title=title
    )
    plots.pr_curve(precision, recall, folder / "pr_curve.png", points=points, title=title)
    plots.roc_curve(fpr, tpr, auc, folder / "roc_curve.png", points=roc_points, title=title)
    return auc


def binary_cv_text(summary: dict, folds: int, label: str) -> str:
    """The binary cross-validation's line: the probe's scores, the threshold for the target precision, and
    the always-"no" baseline's."""
    base, at = summary["baseline_never_positive"], summary.get("at_target_precision")
    text = (
        f"cross-validated ({folds} folds) 'is it {label}': accuracy={summary['accuracy']:.4f} "
        f"precision={summary['precision']:.4f} recall={summary['recall']:.4f} f1={summary['f1']:.4f} "
        f"roc_auc={summary['roc_auc']:.4f}"
    )
    if at and at["threshold"] is not None:
        text += (
            f" | precision >= {at['target']:g} from threshold {at['threshold']:.4f}: "
            f"precision={at['precision']:.4f} recall={at['recall']:.4f}"
        )
    elif at:
        text += f" | no threshold reaches precision {at['target']:g}"
    return text + f" | always 'not {label}': accuracy={base['accuracy']:.4f} precision=0 recall=0"


if __name__ == "__main__":
    common.run_main(main)
