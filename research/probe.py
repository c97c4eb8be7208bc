"""Linear probes: L2-regularised logistic regression, jitted, for evaluating features.

    r = probe.fit(x_nd, y_n, C=10.0)                 # ProbeResult(params, n_iter, converged, loss)
    labels_n = probe.predict(r.params, x_test); scores = probe.report(y_test, labels_n)

The objective is scikit-learn's, C * sum_i w_i CE_i + ||W||^2 / 2 (multinomial, or binary one-vs-rest), with
its scaling and gradient tolerance. Solvers, each one jitted `lax.while_loop`: `lbfgs` (optax, zoom line
search, one pass over the data per iteration that accepts its first step) and full-batch `adam`. Parameters
start at zero: the same data gives the same bits. Every sum is over the sample axis, so sharded x runs as is.
Protocols: `cross_validate` (stratified k-fold, out-of-fold scores) with `cv_summary` / `binary_cv_summary`,
`threshold_for_precision`, `roc_curve`, `stratified_holdout`, `sorted_weights`.

Design and benchmark: docs/design/linear_probe.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from research import checks, timing

_HIGHEST = lax.Precision.HIGHEST
SOLVERS = ("lbfgs", "adam")
_DEFAULT_MAX_ITER = {"lbfgs": 100, "adam": 1000}


class ProbeParams(NamedTuple):
    """Weights of a linear probe: logits = x @ W_dc + b_c.

    W_dc: [d, c] float32; c = n_classes (multinomial) or 1 (binary: the positive class's logit).
    b_c: [c] float32 intercepts (not penalised).
    """

    W_dc: jax.Array
    b_c: jax.Array


class ProbeResult(NamedTuple):
    """A fitted probe.

    params: ProbeParams.
    n_iter: [] int32, solver iterations taken.
    converged: [] bool, the largest gradient entry of the scaled objective reached `tol`.
    loss: [] float32, C * sum_i w_i CE_i + 0.5 ||W||^2 at `params`.
    """

    params: ProbeParams
    n_iter: jax.Array
    converged: jax.Array
    loss: jax.Array


class CVResult(NamedTuple):
    """Stratified k-fold cross-validation of a probe (host NumPy arrays).

    accuracy, precision, recall, f1: [k] float64 per held-out fold. Binary: of the
      positive class (1). Multinomial: macro averages over the classes.
    fold_n: [n] int, the fold each sample was held out in.
    scores_n: out-of-fold decision_function: [n] (binary) or [n, c].
    predictions_n: [n] int, out-of-fold predictions.
    n_iter, converged: [k] per fold's fit.
    """

    accuracy: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    fold_n: np.ndarray
    scores_n: np.ndarray
    predictions_n: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray


# ---------------------------------------------------------------------------
# Objective


def _logits(params: ProbeParams, x_nd):
    return jnp.dot(x_nd, params.W_dc, precision=_HIGHEST) + params.b_c


def _per_sample_ce(params: ProbeParams, x_nd, y_n, binary: bool):
    z_nc = _logits(params, x_nd)
    if binary:
        z_n = z_nc[:, 0]
        return jnp.logaddexp(0.0, z_n) - y_n.astype(z_n.dtype) * z_n  # log(1 + e^z) - y z
    true_n = jnp.take_along_axis(z_nc, y_n[:, None], axis=1)[:, 0]
    return jax.nn.logsumexp(z_nc, axis=1) - true_n


def _grad_max(grad: ProbeParams):
    return jnp.maximum(jnp.max(jnp.abs(grad.W_dc)), jnp.max(jnp.abs(grad.b_c)))


# ---------------------------------------------------------------------------
# Solvers


def _lbfgs(f, params, tol, max_iter):
    """L-BFGS with the zoom linesearch; returns (params, n_iter, value, grad) at the last iterate."""
    opt = optax.lbfgs(linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=50, initial_guess_strategy="one"))
    value_and_grad = optax.value_and_grad_from_state(f)

    def body(carry):
        params, state, it, _ = carry
        value, grad = value_and_grad(params, state=state)  # the linesearch's, except on the first iteration
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(params, updates), state, it + 1, value

    def cond(carry):
        _, state, it, prev_value = carry
        value = optax.tree.get(state, "value")
        grad = optax.tree.get(state, "grad")
        # value < prev_value: an iteration that cannot lower the objective in float32 ends the run.
        going = (it < max_iter) & (_grad_max(grad) > tol) & (value < prev_value)
        return (it == 0) | going

    carry = (params, opt.init(params), jnp.int32(0), jnp.float32(jnp.inf))
    params, state, it, _ = lax.while_loop(cond, body, carry)
    return params, it, optax.tree.get(state, "value"), optax.tree.get(state, "grad")


def _adam(f, params, tol, max_iter, learning_rate):
    """Full-batch Adam; returns (params, n_iter, value, grad) at the last iterate."""
    opt = optax.adam(learning_rate)
    value_and_grad = jax.value_and_grad(f)

    def body(carry):
        params, state, it, _, grad = carry
        updates, state = opt.update(grad, state, params)
        params = optax.apply_updates(params, updates)
        value, grad = value_and_grad(params)
        return params, state, it + 1, value, grad

    def cond(carry):
        _, _, it, _, grad = carry
        return (it < max_iter) & (_grad_max(grad) > tol)

    value, grad = value_and_grad(params)
    params, _, it, value, grad = lax.while_loop(cond, body, (params, opt.init(params), jnp.int32(0), value, grad))
    return params, it, value, grad


@functools.partial(jax.jit, static_argnames=("n_out", "binary", "solver"))
def _fit(x_nd, y_n, w_n, C, tol, max_iter, learning_rate, *, n_out, binary, solver):
    x_nd = x_nd.astype(jnp.float32)
    w_n = w_n.astype(jnp.float32)
    d = x_nd.shape[1]
    params = ProbeParams(jnp.zeros((d, n_out), jnp.float32), jnp.zeros((n_out,), jnp.float32))
    w_sum = jnp.sum(w_n)
    inv_cw = 1.0 / (C * w_sum)

    def f(p):
        return jnp.sum(w_n * _per_sample_ce(p, x_nd, y_n, binary)) / w_sum + 0.5 * inv_cw * jnp.sum(p.W_dc * p.W_dc)

    if solver == "lbfgs":
        params, it, value, grad = _lbfgs(f, params, tol, max_iter)
    else:
        params, it, value, grad = _adam(f, params, tol, max_iter, learning_rate)
    return ProbeResult(params, it, _grad_max(grad) <= tol, value * C * w_sum)


# ---------------------------------------------------------------------------
# Public API


def _check_targets(y, n, binary, n_classes):
    """Labels as int32 [n] and the number of logit columns; every class must be present."""
    y = checks.check_labels(y, n)
    if y.min() < 0:
        raise ValueError(
            f"y must hold class indices >= 0, got {y.min()}; map labels with np.unique(y, return_inverse=True)."
        )
    if binary:
        if not set(np.unique(y).tolist()) <= {0, 1}:
            raise ValueError(
                f"binary=True needs labels 0/1 (1 = positive class), got values {np.unique(y)[:10].tolist()}; "
                "use (y == positive_class).astype(int)."
            )
        k = 2
    else:
        k = int(y.max()) + 1 if n_classes is None else checks.check_positive_int(n_classes, "n_classes")
        if y.max() >= k:
            raise ValueError(f"y holds label {y.max()} but n_classes={k}; labels must lie in [0, n_classes).")
    counts = np.bincount(y, minlength=k)
    if np.count_nonzero(counts) < 2:
        raise ValueError(f"y holds a single class ({int(np.argmax(counts))}); a classifier needs at least two.")
    if not binary and np.any(counts == 0):
        missing = np.flatnonzero(counts == 0)[:10].tolist()
        raise ValueError(
            f"classes {missing} of 0..{k - 1} have no samples: their intercepts would diverge. "
            "Relabel to consecutive indices with np.unique(y, return_inverse=True)."
        )
    return y.astype(np.int32), (1 if binary else k)


def _prepare(x, y, C, solver, max_iter, tol, binary, learning_rate, n_classes, sample_weight):
    x = checks.as_matrix(x)
    n = x.shape[0]
    y, n_out = _check_targets(y, n, binary, n_classes)
    C = checks.check_positive_float(C, "C", meaning="inverse regularisation strength")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    max_iter = checks.check_positive_int(_DEFAULT_MAX_ITER[solver] if max_iter is None else max_iter, "max_iter")
    if not (float(tol) >= 0 and math.isfinite(float(tol))):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}.")
    if not (float(learning_rate) > 0 and math.isfinite(float(learning_rate))):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}.")
    if sample_weight is None:
        w = np.ones(n, np.float32)
    else:
        w = np.asarray(sample_weight, np.float32)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise ValueError(f"sample_weight must be [{n}] finite, >= 0 and not all 0; got shape {w.shape}.")
    args = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(w), jnp.float32(C), jnp.float32(tol), jnp.int32(max_iter))
    return args + (jnp.float32(learning_rate),), {"n_out": n_out, "binary": bool(binary), "solver": solver}


def fit(
    x,
    y,
    *,
    C: float = 1.0,
    solver: str = "lbfgs",
    max_iter: int | None = None,
    tol: float = 1e-4,
    binary: bool = False,
    learning_rate: float = 1e-2,
    n_classes: int | None = None,
    sample_weight=None,
) -> ProbeResult:
    """Fits an L2 logistic regression to x [n, d] and labels y [n].

    Args:
      x: [n, d] features (NumPy or JAX), finite; cast to float32. Not standardised here.
      y: [n] class indices 0..c-1 (multinomial; every class present) or 0/1 (binary).
      C: inverse regularisation strength, > 0 (scikit-learn's C).
      solver: "lbfgs" (optax L-BFGS, zoom linesearch) or "adam" (full batch).
      max_iter: iterations at most; default 100 for lbfgs (scikit-learn's), 1000 for adam.
      tol: stop when max |gradient| of the objective / (C * sum w) is <= tol.
      binary: one-vs-rest: a single sigmoid logit for the positive class (y == 1).
      learning_rate: Adam's step size (ignored by lbfgs).
      n_classes: number of classes when it is more than max(y) + 1 (each must still be present).
      sample_weight: optional [n] non-negative weights (the fit sees w_i * CE_i).
    """
    args, static = _prepare(x, y, C, solver, max_iter, tol, binary, learning_rate, n_classes, sample_weight)
    return _fit(*args, **static)


def fit_timed(x, y, **kwargs) -> timing.Timed:
    """`fit` with compilation and the run timed apart: Timed(out=ProbeResult, compile_seconds, run_seconds)."""
    return timing.fit_timed(fit, _prepare, _fit, x, y, **kwargs)


def _check_params(params, x):
    if not isinstance(params, ProbeParams):
        params = ProbeParams(*params)
    x = checks.as_matrix(x)
    d = params.W_dc.shape[0]
    if x.shape[1] != d:
        raise ValueError(f"x has {x.shape[1]} features but the probe was fitted on {d}.")
    return params, jnp.asarray(x)


@jax.jit
def _decision(params, x_nd):
    return _logits(params, x_nd.astype(jnp.float32))


def decision_function(params: ProbeParams, x):
    """Logits: [n, c] (multinomial) or [n] (binary: the positive class's logit, as scikit-learn's)."""
    params, x = _check_params(params, x)
    z = _decision(params, x)
    return z[:, 0] if params.W_dc.shape[1] == 1 else z


def predict_proba(params: ProbeParams, x):
    """Class probabilities [n, c]; binary: [n, 2] with columns P(y=0), P(y=1)."""
    z = decision_function(params, x)
    if z.ndim == 1:
        p1 = jax.nn.sigmoid(z)
        return jnp.stack([1.0 - p1, p1], axis=1)
    return jax.nn.softmax(z, axis=1)


def predict(params: ProbeParams, x):
    """Predicted class [n] int32 (binary: 1 where the logit is > 0)."""
    z = decision_function(params, x)
    return (z > 0).astype(jnp.int32) if z.ndim == 1 else jnp.argmax(z, axis=1).astype(jnp.int32)


# ---------------------------------------------------------------------------
# Evaluation


def _ratio(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def report(y_true, y_pred, n_classes: int | None = None) -> dict:
    """Supervised scores of predictions in the same label space as y_true (no cluster matching).

    Returns {"accuracy", "confusion" [c, c] int64 (rows: true, columns: predicted),
    "precision", "recall", "f1", "support" [c]} for classes 0..c-1. 0/0 ratios are 0
    (scikit-learn's zero_division=0). c = n_classes or max label + 1.
    """
    y_true = checks.check_labels(y_true, len(np.asarray(y_true)), "y_true")
    y_pred = checks.check_labels(y_pred, len(y_true), "y_pred")
    if len(y_true) == 0:
        raise ValueError("y_true is empty.")
    if min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("labels must be class indices >= 0.")
    c = int(max(y_true.max(), y_pred.max())) + 1 if n_classes is None else int(n_classes)
    conf = np.bincount(y_true * c + y_pred, minlength=c * c).reshape(c, c).astype(np.int64)
    tp = np.diag(conf)
    precision, recall = _ratio(tp, conf.sum(0)), _ratio(tp, conf.sum(1))
    return {
        "accuracy": float(tp.sum() / conf.sum()),
        "confusion": conf,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "support": conf.sum(1),
    }


def class_scores(rep: dict, class_names) -> dict:
    """`report`'s per-class scores for JSON: {"per_class": {str(name): {"precision", "recall", "f1", "support"}},
    "macro_precision", "macro_recall", "macro_f1"}; class_names[i] names class index i."""
    names = ("precision", "recall", "f1")
    per_class = {
        str(c): {m: float(rep[m][i]) for m in names} | {"support": int(rep["support"][i])}
        for i, c in enumerate(class_names)
    }
    return {"per_class": per_class, **{f"macro_{m}": float(np.mean(rep[m])) for m in names}}


def check_split_labels(y_train, y_test, positive_class=None) -> np.ndarray:
    """The classes of y_train (sorted); refuses test labels outside them and a positive_class that is not one."""
    classes = np.unique(np.asarray(y_train))
    unseen = np.setdiff1d(np.unique(np.asarray(y_test)), classes)
    if len(unseen):
        raise ValueError(f"test labels {unseen.tolist()} never occur in the train split.")
    if positive_class is not None and positive_class not in classes:
        raise ValueError(f"positive_class={positive_class} is not a class of the train split: {classes.tolist()}.")
    return classes


def evaluate(
    x_train, y_train, x_test=None, y_test=None, *, positive_class=None, **fit_kwargs
) -> tuple[timing.Timed, dict]:
    """Fits a probe to the training rows and scores it on the test rows: (the fit's Timed, scores for JSON).

    Multinomial over the classes of y_train (any sortable labels; the test labels must be among them), or with
    `positive_class` the binary one-vs-rest probe "is it positive_class". Scores: test_accuracy, confusion and,
    multinomial, train_accuracy, classes and `class_scores`; binary, test_precision / recall / f1 of the positive
    class and test_baseline_never_positive_accuracy. Without test rows, the multinomial's train_accuracy and
    classes alone. fit_kwargs: `fit`'s (C, solver, max_iter, tol, ...).
    """
    y_train = np.asarray(y_train)
    y_test = y_train[:0] if y_test is None else np.asarray(y_test)
    classes = check_split_labels(y_train, y_test, positive_class)
    if positive_class is not None:
        y01, y01_test = (y_train == positive_class).astype(np.int64), (y_test == positive_class).astype(np.int64)
        timed = fit_timed(x_train, y01, binary=True, **fit_kwargs)
        if x_test is None:
            return timed, {}
        rep = report(y01_test, np.asarray(predict(timed.out.params, x_test)), 2)
        return timed, {
            "test_accuracy": rep["accuracy"],
            **{f"test_{m}": float(rep[m][1]) for m in ("precision", "recall", "f1")},
            "test_baseline_never_positive_accuracy": float(1.0 - y01_test.mean()),
            "confusion": rep["confusion"],
        }
    y_fit, y_eval = np.searchsorted(classes, y_train), np.searchsorted(classes, y_test)
    timed = fit_timed(x_train, y_fit, n_classes=len(classes), **fit_kwargs)
    train_accuracy = float(np.mean(np.asarray(predict(timed.out.params, x_train)) == y_fit))
    if x_test is None:
        return timed, {"train_accuracy": train_accuracy, "classes": classes}
    rep = report(y_eval, np.asarray(predict(timed.out.params, x_test)), len(classes))
    return timed, {
        "test_accuracy": rep["accuracy"],
        "train_accuracy": train_accuracy,
        "classes": classes,
        **class_scores(rep, classes),
        "confusion": rep["confusion"],
    }


def sorted_weights(params: ProbeParams, names, class_names=None) -> list | dict:
    """Each input column's learned weight, largest first: [[name, weight], ...] for a binary probe; for a
    multinomial one {class name: that list} (class_names[i] names logit column i)."""
    W_dc = np.asarray(params.W_dc, np.float64)
    if W_dc.shape[0] != len(names):
        raise ValueError(f"{len(names)} names for a probe of {W_dc.shape[0]} input columns.")

    def ranked(w_d):
        return [[str(names[i]), float(w_d[i])] for i in np.argsort(-w_d, kind="stable")]

    if W_dc.shape[1] == 1:
        return ranked(W_dc[:, 0])
    return {str(c): ranked(W_dc[:, j]) for j, c in enumerate(class_names)}


def cv_scores(y, fold_n, predictions_n, n_classes: int) -> dict:
    """Scores of out-of-fold predictions, as scikit-learn's cross_val_score and cross_val_predict give them.

    y, fold_n, predictions_n: [n] labels, the fold each row was held out in, its out-of-fold prediction.
    Returns "accuracy" (the mean over folds) and "accuracy_per_fold" [k], then of the pooled predictions:
    "confusion" [c, c] and "precision", "recall", "f1": the positive class's (1) when n_classes == 2, else
    macro averages.
    """
    y, fold_n, predictions_n = (np.asarray(a) for a in (y, fold_n, predictions_n))
    per_fold = np.array([np.mean(predictions_n[fold_n == f] == y[fold_n == f]) for f in np.unique(fold_n)])
    rep = report(y, predictions_n, n_classes)
    pick = (lambda v: float(v[1])) if n_classes == 2 else (lambda v: float(np.mean(v)))
    return {
        "accuracy": float(per_fold.mean()),
        "accuracy_per_fold": per_fold,
        "confusion": rep["confusion"],
        **{m: pick(rep[m]) for m in ("precision", "recall", "f1")},
    }


def cv_summary(cv: CVResult, y, n_classes: int) -> dict:
    """A `cross_validate` of labels y [n] for JSON: `cv_scores` of its out-of-fold predictions and the folds' fits."""
    return {
        "folds": len(cv.accuracy),
        **cv_scores(y, cv.fold_n, cv.predictions_n, n_classes),
        "n_iter_per_fold": cv.n_iter,
        "converged_per_fold": cv.converged,
    }


def binary_cv_summary(cv: CVResult, y01, target_precision: float | None = None) -> dict:
    """A binary `cross_validate` (y01: its [n] 0/1 labels) for JSON, as the "is it a 5" walkthrough scores it.

    `cv_summary`, then "baseline_never_positive": the classifier that always answers 0, scored through the
    same folds (`cv_scores`), and with `target_precision` "at_target_precision": `threshold_for_precision`
    of the out-of-fold decision scores.
    """
    y01 = np.asarray(y01)
    out = cv_summary(cv, y01, 2)
    out["baseline_never_positive"] = cv_scores(y01, cv.fold_n, np.zeros_like(y01), 2)
    if target_precision is not None:
        out["at_target_precision"] = threshold_for_precision(y01, cv.scores_n, target_precision)
    return out


def threshold_for_precision(y01, scores, target: float) -> dict:
    """The lowest threshold whose predictions (score >= threshold) reach precision >= target on (y01, scores).

    Returns {"target", "threshold", "precision", "recall"}; threshold, precision and recall are None when no
    threshold reaches the target.
    """
    precision, recall, thresholds = precision_recall_curve(y01, scores)
    reached = np.flatnonzero(precision[:-1] >= target)  # the last pair (1, 0) has no threshold
    if not len(reached):
        return {"target": float(target), "threshold": None, "precision": None, "recall": None}
    i = reached[0]
    return {"target": float(target), "threshold": float(thresholds[i]), "precision": float(precision[i])} | {
        "recall": float(recall[i])
    }


def roc_curve(y01, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(false positive rate, true positive rate, thresholds, area under the curve): scikit-learn's roc_curve and
    roc_auc_score of [n] 0/1 truth and [n] decision scores."""
    from sklearn import metrics

    fpr, tpr, thresholds = metrics.roc_curve(y01, scores)
    return fpr, tpr, thresholds, float(metrics.roc_auc_score(y01, scores))


def stratified_holdout(key, y, fraction: float) -> np.ndarray:
    """A stratified hold-out: [n] bool, True for the round(fraction * n_c) rows of each class c held out.

    Within each class the rows are drawn by `key`. Every class keeps at least one training row, and the test
    rows are at least one: a fraction that cannot give both is refused.
    """
    y = np.asarray(y)
    if not 0 < fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {fraction!r}.")
    perm = np.asarray(jax.random.permutation(key, len(y)))
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        rows = perm[y[perm] == c]
        test[rows[: min(round(fraction * len(rows)), len(rows) - 1)]] = True
    if not test.any():
        raise ValueError(
            f"test_fraction={fraction} of {len(y)} rows holds out none of them; raise it or use cross-validation."
        )
    return test


def precision_recall_curve(y01, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) as scikit-learn's: predict positive when score >= threshold.

    Thresholds are all the distinct scores in increasing order (scikit-learn's default,
    drop_intermediate=False); the last (precision, recall) pair is (1, 0) with no threshold.
    y01: [n] 0/1 truth; scores: [n] decision values.
    """
    y01 = checks.check_labels(y01, len(np.asarray(y01)), "y01")
    scores = np.asarray(scores, np.float64)
    if scores.shape != y01.shape:
        raise ValueError(f"scores must be [{len(y01)}], got shape {scores.shape}.")
    if not set(np.unique(y01).tolist()) <= {0, 1} or y01.sum() == 0:
        raise ValueError("y01 must hold 0/1 labels with at least one positive.")
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y01[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score, high to low
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    precision, recall = tp / (tp + fp), tp / tp[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], s[last][::-1]


def _stratified_folds(key, y, k):
    """Fold index [n] in 0..k-1: a random order within each class, dealt round-robin."""
    perm = np.asarray(jax.random.permutation(key, len(y)))
    order = perm[np.argsort(y[perm], kind="stable")]
    fold = np.empty(len(y), np.int64)
    fold[order] = np.arange(len(y)) % k
    return fold


def cross_validate(
    key, x, y, k: int = 5, *, augment: Callable | None = None, binary: bool = False, **fit_kwargs
) -> CVResult:
    """Stratified k-fold cross-validation of `fit` (same keyword arguments).

    Each fold is held out in turn; the probe is fitted on the others, by zero sample
    weights on the held-out rows, so every fold's fit has the same shapes and compiles once.

    Args:
      key: shuffles the samples within each class before they are dealt into folds.
      x: [n, d] features; y: [n] labels as `fit` takes them.
      k: folds, >= 2; every class needs at least k samples.
      augment: optional x [n, d] -> [m * n, d], m stacked copies of all rows (block j is
        copy j of rows 0..n-1, e.g. `augment.shift_copies`). A copy is trained on only
        when its original is, and only originals are scored, so no held-out image leaks
        into training through its shifted copies.
    """
    x = checks.as_matrix(x)
    n = x.shape[0]
    k = checks.check_positive_int(k, "k")
    if k < 2:
        raise ValueError(f"k must be at least 2 folds, got {k}.")
    y32, n_out = _check_targets(y, n, binary, fit_kwargs.get("n_classes"))
    counts = np.bincount(y32)
    if counts[counts > 0].min() < k:
        raise ValueError(
            f"k={k} folds need at least {k} samples of every class; the smallest class has {counts[counts > 0].min()}."
        )
    fold = _stratified_folds(key, y32, k)
    x_fit, y_fit, copies = x, y32, 1
    if augment is not None:
        x_fit = checks.as_matrix(augment(x), "augment(x)")
        copies, rem = divmod(x_fit.shape[0], n)
        if rem or copies < 1 or x_fit.shape[1] != x.shape[1]:
            raise ValueError(f"augment(x) must return [m * {n}, {x.shape[1]}] stacked copies, got {x_fit.shape}.")
        y_fit = np.tile(y32, copies)
    fold_fit = np.tile(fold, copies)
    n_classes = 2 if binary else n_out
    scores = np.zeros((n,) if binary else (n, n_out), np.float32)
    rows = {name: [] for name in ("accuracy", "precision", "recall", "f1", "n_iter", "converged")}
    for f in range(k):
        res = fit(x_fit, y_fit, binary=binary, sample_weight=(fold_fit != f).astype(np.float32), **fit_kwargs)
        held = fold == f
        scores[held] = np.asarray(decision_function(res.params, x[held]))
        pred = np.asarray(predict(res.params, x[held]))
        r = report(y32[held], pred, n_classes)
        pick = (lambda v: v[1]) if binary else np.mean
        rows["accuracy"].append(r["accuracy"])
        for name in ("precision", "recall", "f1"):
            rows[name].append(float(pick(r[name])))
        rows["n_iter"].append(int(res.n_iter))
        rows["converged"].append(bool(res.converged))
    predictions = (scores > 0).astype(np.int64) if binary else np.argmax(scores, axis=1)
    arrays = {name: np.asarray(v) for name, v in rows.items()}
    return CVResult(fold_n=fold, scores_n=scores, predictions_n=predictions, **arrays)
