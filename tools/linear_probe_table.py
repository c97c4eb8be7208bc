"""Writes results/linear_probe_mnist.{md,csv}: the MNIST runs of experiments.linear_probe beside the notes' figures.

  python tools/linear_probe_table.py [--root=checkpoints] [--out=results/linear_probe_mnist]

Reads the finished runs of RUNS from their default workdirs under --root (run their commands first): the softmax
probe, the probe trained with shifted copies, and the "is it a 5" detector with its cross-validated scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments import references
from research import report

# (name, workdir under the root, command, the notes' run key)
RUNS = (
    ("softmax", "linear_probe/mnist-seed0", "--dataset=mnist", "linear_probe"),
    (
        "softmax, shifted copies",
        "linear_probe/mnist-shift-seed0",
        "--flagfile=experiments/configs/linear_probe_mnist_shift.flags",
        "linear_probe augment=shift",
    ),
    ("is it a 5", "linear_probe/mnist-is5-seed0", "--dataset=mnist --positive_class=5", None),
)


def row(name: str, res: dict, notes_key: str | None) -> dict:
    """One table row from a run's results.json."""
    cv = res.get("cv", {})
    binary = "positive_class" in res
    at = cv.get("at_target_precision") or {}
    out = {"run": name, "test_accuracy": res["test_accuracy"], "cv_accuracy": cv.get("accuracy")}
    out |= {"n_train_fitted": res["n_train_fitted"], "n_iter": res["n_iter"], "converged": res["converged"]}
    if binary:
        out |= {f"cv_{m}": cv.get(m) for m in ("precision", "recall", "f1", "roc_auc")}
        out |= {"test_precision": res["test_precision"], "test_recall": res["test_recall"]}
        out |= {"threshold": at.get("threshold"), "recall_at_target": at.get("recall")}
        out |= {"target_precision": at.get("target"), "precision_at_target": at.get("precision")}
        out["never_cv_accuracy"] = cv.get("baseline_never_positive", {}).get("accuracy")
    out["notes"] = references.text(references.PROBE["mnist"].get(notes_key)) if notes_key else "-"
    return out


def confusion_note(res: dict) -> str:
    """The detector's out-of-fold confusion matrices, its own and the never-5 classifier's."""
    cv = res["cv"]
    own, never = cv["confusion"], cv["baseline_never_positive"]["confusion"]
    return (
        f"'is it a 5', {cv['folds']}-fold out-of-fold predictions on the 60k training images (rows: true not-5 / 5, "
        f"columns: predicted): the probe {own}, the never-5 classifier {never}. Its decision scores are in "
        "decision_scores.npy and its curves in plots/ (pr_curve, roc_curve, precision_recall_vs_threshold) of the "
        "run's workdir."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="checkpoints")
    parser.add_argument("--out", default="results/linear_probe_mnist")
    args = parser.parse_args()
    rows, results = [], {}
    for name, workdir, _, key in RUNS:
        path = Path(args.root) / workdir / "results.json"
        if not path.is_file():
            sys.exit(f"error: {path} is missing; run its command first (see RUNS in {__file__}).")
        results[name] = json.loads(path.read_text())
        rows.append(row(name, results[name], key))
    columns = [
        ("run", "run"),
        ("test acc", "test_accuracy", ".4f"),
        ("the notes (test acc %)", "notes"),
        ("CV acc", "cv_accuracy", ".4f"),
        ("CV precision", "cv_precision", ".4f"),
        ("CV recall", "cv_recall", ".4f"),
        ("CV F1", "cv_f1", ".4f"),
        ("CV ROC AUC", "cv_roc_auc", ".4f"),
        ("threshold for CV precision >= 0.9", threshold_cell),
        ("never-5 CV acc", "never_cv_accuracy", ".4f"),
        ("train rows", "n_train_fitted"),
        ("L-BFGS iters", "n_iter"),
    ]
    commands = "; ".join(f"`python -m experiments.linear_probe {cmd}`" for _, _, cmd, _ in RUNS)
    report.write_table(
        rows,
        columns,
        args.out,
        caption=(
            "Linear probes on MNIST pixels in [0, 1] (train 60k, test 10k), logistic regression, C=10, L-BFGS; "
            f"CV: stratified 3-fold cross-validation on the training split, seed 0. Commands: {commands}; "
            "table: `python tools/linear_probe_table.py`."
        ),
        notes=[confusion_note(results["is it a 5"]), f"Machine: {report.machine()}."],
    )


def threshold_cell(r: dict):
    if r.get("threshold") is None:
        return None
    return f"{r['threshold']:.3f} (precision {r['precision_at_target']:.4f}, recall {r['recall_at_target']:.4f})"


if __name__ == "__main__":
    main()
