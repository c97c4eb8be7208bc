r"""Linear probe: logistic regression on features, trained on the train split, scored on the test split.

  python -m experiments.linear_probe --dataset=digits
  python -m experiments.linear_probe --dataset=mnist --data_dir=../shared/datasets --C=10 --augment=shift
  python -m experiments.linear_probe --dataset=mnist --positive_class=5      # the "is it a 5" detector

Features: pixels, PCA or a pretrained encoder's codes; --positive_class=P: a one-vs-rest "is it P" probe,
cross-validated on the train split first. Splits, outputs, flags: docs/experiments.md#linear_probe, docs/flags.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import app, flags, logging

from experiments import common, features
from research import plots, probe

FLAGS = flags.FLAGS
flags.DEFINE_float("C", 10.0, "Inverse L2 strength (scikit-learn's C): loss = C * sum CE + ||W||^2 / 2.")
flags.DEFINE_enum("solver", "lbfgs", list(probe.SOLVERS), "lbfgs (optax L-BFGS, zoom linesearch) or adam.")
flags.DEFINE_integer("max_iter", None, "Solver iterations at most. Default: 100 for lbfgs, 1000 for adam.")
flags.DEFINE_float("tol", 1e-4, "Stop when max |gradient| of the mean objective is <= tol (scikit-learn's gtol).")
flags.DEFINE_float("learning_rate", 1e-2, "adam only: step size.")
flags.DEFINE_bool("standardize", False, "Scale each feature to zero mean, unit variance (training statistics).")
flags.DEFINE_enum("features", "pixels", list(features.KINDS), "Raw pixels or PCA of them.")
flags.DEFINE_integer("pca_components", 50, "--features=pca: number of components.")
flags.DEFINE_integer("positive_class", None, "One-vs-rest: a binary probe for this class against all others.")
flags.DEFINE_enum("augment", "none", ["none", "shift"], "shift: add 1-pixel shifted copies of the training images.")
flags.DEFINE_integer("cv_folds", 5, "One-vs-rest: stratified folds for cross-validation on the train split (0: skip).")
common.cli.positive_finite("C")
common.cli.at_least("max_iter", 1)
common.cli.positive_finite("tol", allow_zero=True)
common.cli.positive_finite("learning_rate")
common.cli.at_least("pca_components", 1)
common.cli.check("cv_folds", lambda v: v == 0 or v >= 2, "must be 0 (no cross-validation) or >= 2")


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


def main(argv):
    del argv
    if FLAGS["split"].present:
        raise app.UsageError(
            "--split is not used by linear_probe: it always trains on the train split and scores on the test split."
        )
    cfg = common.config_from_flags(Config)
    run = common.run_config("linear_probe")
    train, test = load_splits(run, cfg)  # before the workdir: a bad dataset leaves nothing behind
    wd = common.prepare_workdir(run)
    results, text, timed = train_and_evaluate(run, cfg, train, test)
    common.finish(
        run,
        results,
        f"linear_probe {train.name} {text} (C={cfg.C:g}, {cfg.solver}, {results['n_iter']} iters"
        f"{'' if results['converged'] else ', not converged'}) fit {timed.run_seconds:.2f}s "
        f"(compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


def load_splits(run: common.RunConfig, cfg: Config):
    """(train, test) Datasets, checked against cfg; a dataset without a train/test split or labels is refused."""
    try:
        train, test = run.load("train"), run.load("test")
    except ValueError as e:
        if "unknown split" not in str(e):
            raise
        raise ValueError(f"dataset {run.dataset!r} has no train/test split (mnist, digits and idx:<dir> do).") from None
    if train.y is None or test.y is None:
        raise ValueError(f"dataset {run.dataset!r} has no labels; a linear probe needs them.")
    logging.info("train %s, test %s", train.x.shape, test.x.shape)
    if cfg.pretrained:
        features.load_encoder(cfg.pretrained, input_dim=train.x.shape[1])  # fails now, not after the work
    probe.check_split_labels(train.y, test.y, cfg.positive_class)
    if cfg.augment == "shift" and train.image_shape is None:
        raise ValueError(f"--augment=shift needs images; dataset {train.name!r} has no image shape.")
    return train, test


def train_and_evaluate(run: common.RunConfig, cfg: Config, train, test):
    """Fits the probe to the train split's features, scores it on the test split's: (results, text, Timed)."""
    extractor = {"key": run.key(), "pca_components": cfg.pca_components, "pretrained": cfg.pretrained}
    z_train, y_train, z_test, info = features.train_test(
        cfg.features, train, test, shift=cfg.augment == "shift", standardized=cfg.standardize, **extractor
    )
    pos, fit_kwargs, ovr = cfg.positive_class, common.keyword_args(probe.fit, cfg), {}
    if pos is not None:
        ovr = {"positive_class": pos, "train_positive_fraction": float(np.mean(y_train == pos))}
        if cfg.cv_folds:  # on the originals (the first rows) and, with --augment=shift, their shifted copies
            ovr["cv"] = cross_validate(run, cfg, fit_kwargs, train.name, z_train, (train.y == pos).astype(np.int64))
    timed, scores = probe.evaluate(z_train, y_train, z_test, test.y, positive_class=pos, **fit_kwargs)
    acc = scores["test_accuracy"]
    if pos is None:
        names, title = scores["classes"], f"linear probe, {train.name} test"
        text = f"test acc={acc:.4f} macro_f1={scores['macro_f1']:.4f}"
        logging.info("test scores per class: %s", scores["per_class"])
    else:
        names, title = [f"not {pos}", str(pos)], f"'is it {pos}', {test.name} test"
        base, prec, rec = (scores[f"test_{m}"] for m in ("baseline_never_positive_accuracy", "precision", "recall"))
        text = (
            f"'is it {pos}' test acc={acc:.4f} precision={prec:.4f} recall={rec:.4f} "
            f"(always 'not {pos}': acc={base:.4f})"
        )
    path, title = run.workdir / "plots" / "confusion.png", f"{title}: accuracy {acc:.4f}"
    plots.confusion_matrix(scores["confusion"], path, class_names=names, title=title)
    results = {"dataset": train.name, "seed": run.seed, "n_train": len(train.x), "n_test": len(test.x)}
    results |= {"n_train_fitted": len(z_train), "n_features": int(z_train.shape[1]), **info}
    results |= {"features": "pretrained" if cfg.pretrained else cfg.features}
    results |= {name: getattr(cfg, name) for name in ("augment", "standardize", "C", "solver")}
    results |= {**ovr, **scores, "loss": float(timed.out.loss), **common.fit_fields(timed.out, timed)}
    return results, text, timed


def cross_validate(run: common.RunConfig, cfg: Config, fit_kwargs: dict, name: str, z_train, y01):
    """The one-vs-rest probe's stratified cross-validation on the n training images (y01: [n] 0/1): its results."""
    pos, folds, n = cfg.positive_class, cfg.cv_folds, len(y01)
    shifted = (lambda _: z_train) if cfg.augment == "shift" else None  # a fold trains on the copies of its own
    cv = probe.cross_validate(run.key(), z_train[:n], y01, folds, binary=True, augment=shifted, **fit_kwargs)
    summary, oof = probe.binary_cv_summary(cv, y01), probe.report(y01, cv.predictions_n, 2)
    plots.precision_recall_curve(
        *probe.precision_recall_curve(y01, cv.scores_n),
        run.workdir / "plots" / "precision_recall.png",
        chosen=(oof["precision"][1], oof["recall"][1]),
        title=f"'is it {pos}' on {name} train, {folds}-fold out-of-fold scores",
    )
    print(
        f"cross-validated ({folds} folds) 'is it {pos}': accuracy={summary['accuracy']:.4f} "
        f"precision={summary['precision']:.4f} recall={summary['recall']:.4f} | always 'not {pos}': "
        f"accuracy={summary['baseline_never_positive']['accuracy']:.4f} precision=0 recall=0",
        flush=True,
    )
    return summary


if __name__ == "__main__":
    common.run_main(main)
