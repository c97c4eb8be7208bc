r"""Linear probe: logistic regression on features, trained on the train split, scored on the test split.

  python -m experiments.linear_probe --dataset=digits
  python -m experiments.linear_probe --dataset=mnist --data_dir=../shared/datasets --C=10 --augment=shift
  python -m experiments.linear_probe --dataset=mnist --positive_class=5      # the "is it a 5" detector

Splits are fixed: the probe trains on the dataset's train split and is scored on
its test split (mnist: 60k / 10k; digits: the first 1500 / the other 297;
idx:<dir> as its files); --split is not used and giving it is an error. Datasets
without a train/test split (npy:, csv:) are refused.

Features (--features): the pixels as loaded (in [0, 1]), or PCA fitted on the
training features; --pretrained=<workdir of an experiments.autoencoder run> takes the
encoder's codes instead. --standardize (off by default) scales every feature to zero
mean and unit variance with the training statistics. --augment=shift adds each
training image shifted one pixel up, down, left and right (5x the rows) before the
features are computed; the test set is never augmented.

Multiclass (default): writes accuracy, per-class precision / recall / F1 and the
confusion matrix (plots/confusion.png). One-vs-rest (--positive_class=P): a
binary probe "is it P"; --cv_folds stratified folds on the train split give
cross-validated accuracy, precision and recall next to the always-"not P"
baseline, and the precision-recall curve of the out-of-fold scores
(plots/precision_recall.png); then a probe fitted on the whole train split is
scored on the test split. With --augment=shift a fold trains on the shifted
copies of its training images only (no held-out image leaks in through its copies).

Writes config.json, results.json and plots/ into --workdir.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags, logging

from experiments import common, features
from research import augment, data, plots, probe

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


def load_splits():
    """(train, test) Datasets; a dataset without a train/test split or without labels is refused."""
    kwargs = {"label_column": FLAGS.label_column, "drop_columns": tuple(FLAGS.drop_columns)}
    try:
        train = data.load(FLAGS.dataset, "train", FLAGS.data_dir, **kwargs)
        test = data.load(FLAGS.dataset, "test", FLAGS.data_dir, **kwargs)
    except ValueError as e:
        if "unknown split" not in str(e):
            raise
        raise ValueError(
            f"linear_probe trains on a train split and scores on a test split; dataset {FLAGS.dataset!r} has "
            "none (mnist, digits and idx:<dir> do)."
        ) from None
    if train.y is None or test.y is None:
        raise ValueError(f"dataset {FLAGS.dataset!r} has no labels; a linear probe needs them.")
    logging.info("train %s, test %s", train.x.shape, test.x.shape)
    return train, test


def fit_kwargs():
    return {
        "C": FLAGS.C,
        "solver": FLAGS.solver,
        "max_iter": FLAGS.max_iter,
        "tol": FLAGS.tol,
        "learning_rate": FLAGS.learning_rate,
    }


def fit_summary(timed) -> dict:
    res = timed.out
    return {
        "n_iter": int(res.n_iter),
        "converged": bool(res.converged),
        "loss": float(res.loss),
        "fit_seconds": timed.run_seconds,
        "compile_seconds": timed.compile_seconds,
    }


def multiclass(wd, train, test, z_train, y_train, z_test, classes):
    y_fit = np.searchsorted(classes, y_train)
    y_test = np.searchsorted(classes, test.y)
    timed = probe.fit_timed(z_train, y_fit, n_classes=len(classes), **fit_kwargs())
    pred = np.asarray(probe.predict(timed.out.params, z_test))
    rep = probe.report(y_test, pred, len(classes))
    train_acc = float(np.mean(np.asarray(probe.predict(timed.out.params, z_train)) == y_fit))
    plots.confusion_matrix(
        rep["confusion"],
        wd / "plots" / "confusion.png",
        class_names=classes,
        title=f"linear probe, {train.name} test: accuracy {rep['accuracy']:.4f}",
    )
    results = {
        "test_accuracy": rep["accuracy"],
        "train_accuracy": train_acc,
        "classes": classes,
        "per_class": {
            str(c): {m: float(rep[m][i]) for m in ("precision", "recall", "f1")} | {"support": int(rep["support"][i])}
            for i, c in enumerate(classes)
        },
        "macro_precision": float(np.mean(rep["precision"])),
        "macro_recall": float(np.mean(rep["recall"])),
        "macro_f1": float(np.mean(rep["f1"])),
        "confusion": rep["confusion"],
        **fit_summary(timed),
    }
    lines = ["class precision recall f1 support"] + [
        f"{c:>5} {rep['precision'][i]:.4f} {rep['recall'][i]:.4f} {rep['f1'][i]:.4f} {rep['support'][i]}"
        for i, c in enumerate(classes)
    ]
    logging.info("test scores per class:\n%s", "\n".join(lines))
    return results, f"test acc={rep['accuracy']:.4f} macro_f1={results['macro_f1']:.4f}", timed


def one_vs_rest(wd, train, test, z_train, y_train, z_test):
    """z_train: [n, d], or with --augment=shift [5n, d] with the n originals first (shift_augment's layout)."""
    pos = FLAGS.positive_class
    y01 = (y_train == pos).astype(np.int64)
    y01_test = (test.y == pos).astype(np.int64)
    results = {"positive_class": pos, "train_positive_fraction": float(y01.mean())}
    folds = FLAGS.cv_folds
    if folds:
        n = len(train.x)
        y01_orig = y01[:n]
        cv = probe.cross_validate(
            common.root_key(),
            z_train[:n],
            y01_orig,
            folds,
            binary=True,
            augment=(lambda _: z_train) if FLAGS.augment == "shift" else None,
            **fit_kwargs(),
        )
        oof = probe.report(y01_orig, cv.predictions_n, 2)
        # The always-"not P" classifier: right on every negative, never finds a positive.
        baseline = np.array([1.0 - y01_orig[cv.fold_n == f].mean() for f in range(folds)])
        results["cv"] = {
            "folds": folds,
            "accuracy": float(cv.accuracy.mean()),
            "precision": float(cv.precision.mean()),
            "recall": float(cv.recall.mean()),
            "f1": float(cv.f1.mean()),
            "accuracy_per_fold": cv.accuracy,
            "precision_per_fold": cv.precision,
            "recall_per_fold": cv.recall,
            "baseline_never_positive": {"accuracy": float(baseline.mean()), "precision": 0.0, "recall": 0.0},
            "n_iter_per_fold": cv.n_iter,
            "converged_per_fold": cv.converged,
        }
        prec, rec, thr = probe.precision_recall_curve(y01_orig, cv.scores_n)
        plots.precision_recall_curve(
            prec,
            rec,
            thr,
            wd / "plots" / "precision_recall.png",
            chosen=(oof["precision"][1], oof["recall"][1]),
            title=f"'is it {pos}' on {train.name} train, {folds}-fold out-of-fold scores",
        )
        print(
            f"cross-validated ({folds} folds) 'is it {pos}': accuracy={results['cv']['accuracy']:.4f} "
            f"precision={results['cv']['precision']:.4f} recall={results['cv']['recall']:.4f} | "
            f"always 'not {pos}': accuracy={baseline.mean():.4f} precision=0 recall=0",
            flush=True,
        )
    timed = probe.fit_timed(z_train, y01, binary=True, **fit_kwargs())
    pred = np.asarray(probe.predict(timed.out.params, z_test))
    rep = probe.report(y01_test, pred, 2)
    plots.confusion_matrix(
        rep["confusion"],
        wd / "plots" / "confusion.png",
        class_names=[f"not {pos}", str(pos)],
        title=f"'is it {pos}', {test.name} test: accuracy {rep['accuracy']:.4f}",
    )
    results.update(
        {
            "test_accuracy": rep["accuracy"],
            "test_precision": float(rep["precision"][1]),
            "test_recall": float(rep["recall"][1]),
            "test_f1": float(rep["f1"][1]),
            "test_baseline_never_positive_accuracy": float(1.0 - y01_test.mean()),
            "confusion": rep["confusion"],
            **fit_summary(timed),
        }
    )
    text = (
        f"'is it {pos}' test acc={rep['accuracy']:.4f} precision={rep['precision'][1]:.4f} "
        f"recall={rep['recall'][1]:.4f} (always 'not {pos}': acc={1.0 - y01_test.mean():.4f})"
    )
    return results, text, timed


def main(argv):
    del argv
    if FLAGS["split"].present:
        raise app.UsageError(
            "--split is not used by linear_probe: it always trains on the train split and scores on the test split."
        )
    if FLAGS.cv_folds == 1 or FLAGS.cv_folds < 0:
        raise app.UsageError(f"--cv_folds must be 0 (no cross-validation) or >= 2, got {FLAGS.cv_folds}.")
    train, test = load_splits()  # before the workdir: a bad dataset leaves nothing behind
    if FLAGS.pretrained:
        features.load_encoder(FLAGS.pretrained, input_dim=train.x.shape[1])  # fails now, not after the work
    classes = np.unique(train.y)
    unseen = np.setdiff1d(np.unique(test.y), classes)
    if len(unseen):
        raise ValueError(f"test labels {unseen.tolist()} never occur in the train split.")
    if FLAGS.positive_class is not None and FLAGS.positive_class not in classes:
        raise ValueError(f"--positive_class={FLAGS.positive_class} is not a class of {train.name}: {classes.tolist()}.")
    if FLAGS.augment == "shift" and train.image_shape is None:
        raise ValueError(f"--augment=shift needs images; dataset {train.name!r} has no image shape.")
    wd = common.prepare_workdir("linear_probe")

    x_train, y_train = train.x, train.y
    if FLAGS.augment == "shift":
        x_train, y_train = augment.shift_augment(train.x, train.y, train.image_shape)
        x_train = np.asarray(x_train)
        logging.info("shift augmentation: %d -> %d training rows", len(train.x), len(x_train))
    (z_train, z_test), info = features.compute(
        FLAGS.features,
        x_train,
        test.x,
        pca_components=FLAGS.pca_components,
        pretrained=FLAGS.pretrained,
        key=common.root_key(),
    )
    if FLAGS.standardize:
        z_train, z_test = features.standardize(z_train, z_test)

    if FLAGS.positive_class is None:
        results, text, timed = multiclass(wd, train, test, z_train, y_train, z_test, classes)
    else:
        results, text, timed = one_vs_rest(wd, train, test, z_train, y_train, z_test)
    results = {
        "dataset": train.name,
        "seed": FLAGS.seed,
        "n_train": len(train.x),
        "n_train_fitted": len(z_train),
        "n_test": len(test.x),
        "n_features": int(z_train.shape[1]),
        "features": "pretrained" if FLAGS.pretrained else FLAGS.features,
        "augment": FLAGS.augment,
        "standardize": FLAGS.standardize,
        "C": FLAGS.C,
        "solver": FLAGS.solver,
        **info,
        **results,
    }
    common.finish(
        wd,
        results,
        f"linear_probe {train.name} {text} (C={FLAGS.C:g}, {FLAGS.solver}, {results['n_iter']} iters"
        f"{'' if results['converged'] else ', not converged'}) fit {timed.run_seconds:.2f}s "
        f"(compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    app.run(main)
