r"""Linear probe side by side: jaxcluster's L-BFGS logistic regression vs scikit-learn's, same data, same run.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.probe_vs_sklearn
  python -m bench.probe_vs_sklearn --n_train=5000 --repeats=1        # a quick smoke run

MNIST raw pixels scaled to [0, 1], multinomial, C=10 (scikit-learn's
LogisticRegression(solver="lbfgs") with the same C, max_iter and tol; both
minimise C * sum CE + ||W||^2 / 2 and stop when the largest gradient entry of
that objective / (C n) is under tol; scikit-learn gets a float64 copy, ours
float32). Trained on the first --n_train training images, scored on the 10k
test images. With --augment=none,shift the shift rows train on the originals
plus their one-pixel shifts up, down, left and right (5x the rows;
scikit-learn too with --sklearn_augment, slow).

For each row: median fit time over --repeats (ours: compilation timed apart, on
the first call), iterations, whether the tolerance was reached, the objective
recomputed here in float64 from each model's weights (same code for both), and
test accuracy. Writes results/probe_vs_sklearn.md and .csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import jax
import numpy as np
from scipy.special import logsumexp

from research import augment, data, probe, report


def objective64(x, y, coef_dc, intercept_c, C):
    """C * sum of cross-entropies + 0.5 ||W||^2, in float64."""
    z = x.astype(np.float64) @ np.asarray(coef_dc, np.float64) + np.asarray(intercept_c, np.float64)
    ce = logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    return float(C * ce.sum() + 0.5 * np.sum(np.asarray(coef_dc, np.float64) ** 2))


def run_ours(x, y, args, first):
    kw = {"C": args.C, "max_iter": args.max_iter, "tol": args.tol, "n_classes": 10}
    if first:
        t = probe.fit_timed(x, y, **kw)
        res, secs, comp = t.out, t.run_seconds, t.compile_seconds
    else:
        t0 = time.perf_counter()
        res = jax.block_until_ready(probe.fit(x, y, **kw))
        secs, comp = time.perf_counter() - t0, None
    p = res.params
    return np.asarray(p.W_dc), np.asarray(p.b_c), secs, comp, int(res.n_iter), bool(res.converged)


def run_sklearn(x, y, args, first):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # float64, scikit-learn's usual precision: it ran faster than on float32 here (converted outside the timing).
    x64 = np.asarray(x, np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        m = LogisticRegression(C=args.C, solver="lbfgs", max_iter=args.max_iter, tol=args.tol).fit(x64, y)
        secs = time.perf_counter() - t0
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return m.coef_.T, m.intercept_, secs, None, int(m.n_iter_[0]), converged


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--n_train", type=int, default=60000, help="first N training images (smoke runs: 5000)")
    ap.add_argument("--C", type=float, default=10.0)
    ap.add_argument("--max_iter", type=int, default=100, help="scikit-learn's default")
    ap.add_argument("--tol", type=float, default=1e-4, help="scikit-learn's default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--augment", default="none,shift", help="comma-separated: none, shift")
    ap.add_argument("--sklearn_augment", action="store_true", help="also fit scikit-learn on the 5x shifted set")
    ap.add_argument("--out", default="results/probe_vs_sklearn")
    args = ap.parse_args()

    train = data.load("mnist", "train", args.data_dir)
    test = data.load("mnist", "test", args.data_dir)
    x0, y0 = np.ascontiguousarray(train.x[: args.n_train]), train.y[: args.n_train]
    rows = []
    for aug in args.augment.split(","):
        if aug == "shift":
            x, y = augment.shift_augment(x0, y0, train.image_shape)
            x = np.ascontiguousarray(np.asarray(x))
        elif aug == "none":
            x, y = x0, y0
        else:
            raise SystemExit(f"unknown --augment value {aug!r}; use none and/or shift.")
        methods = {"jaxcluster": run_ours}
        if aug == "none" or args.sklearn_augment:
            methods["scikit-learn"] = run_sklearn
        for name, fn in methods.items():
            times, compile_s = [], None
            for rep in range(args.repeats):
                coef, intercept, secs, comp, n_iter, conv = fn(x, y, args, rep == 0)
                compile_s = comp if comp is not None else compile_s
                times.append(secs)
                print(f"{name:12s} augment={aug:5s} rep={rep} {secs:7.2f}s n_iter={n_iter}", flush=True)
            acc = float(np.mean(np.argmax(test.x @ coef + intercept, axis=1) == test.y))
            rows.append(
                {
                    "method": name,
                    "augment": aug,
                    "n_train_rows": len(x),
                    "fit_seconds_median": statistics.median(times),
                    "compile_seconds": compile_s,
                    "n_iter": n_iter,
                    "converged": conv,
                    "objective": objective64(x, y, coef, intercept, args.C),
                    "test_accuracy": acc,
                    "repeats": args.repeats,
                }
            )
    write(rows, args)


def write(rows, args):
    out = report.write_csv(rows, args.out)
    ref = {r["augment"]: r for r in rows if r["method"] == "scikit-learn"}
    lines = [
        (
            f"Multinomial logistic regression on MNIST pixels in [0, 1] (first {args.n_train} train images; "
            f"10k test), C={args.C:g}, max_iter={args.max_iter}, tol={args.tol:g}; {report.cpu_name()}, {os.cpu_count()} "
            f"cores; median of {args.repeats}; jax {jax.__version__} on {jax.default_backend()}."
        ),
        "",
        (
            "| method | augment | train rows | fit s (median) | compile s | speed-up vs sklearn | iterations "
            "| converged | objective | test accuracy |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = ref.get(r["augment"])
        speed = f"{base['fit_seconds_median'] / r['fit_seconds_median']:.1f}x" if base else ""
        comp = f"{r['compile_seconds']:.2f}" if r["compile_seconds"] is not None else "-"
        lines.append(
            f"| {r['method']} | {r['augment']} | {r['n_train_rows']} | {r['fit_seconds_median']:.2f} | {comp} | "
            f"{speed} | {r['n_iter']} | {'yes' if r['converged'] else 'no'} | {r['objective']:.6g} | "
            f"{r['test_accuracy']:.4f} |"
        )
    cmd = f"python -m bench.probe_vs_sklearn --n_train={args.n_train} --repeats={args.repeats} --augment={args.augment}"
    lines += ["", f"Command: `{cmd}{' --sklearn_augment' if args.sklearn_augment else ''}`"]
    report.write_markdown(lines, out)


if __name__ == "__main__":
    main()
