r"""Linear probe side by side: jaxcluster's L-BFGS logistic regression vs scikit-learn's, same data, same run.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.probe_vs_sklearn
  python -m bench.probe_vs_sklearn --n_train=5000 --repeats=1        # a quick smoke run

Multinomial, on the first --n_train MNIST training images (pixels in [0, 1]), scored on the 10k test
images; both with the same C, max_iter and tol (scikit-learn's stopping rule; it gets a float64 copy).
--augment=none,shift adds rows trained on the originals plus their one-pixel shifts (5x the rows;
scikit-learn too with --sklearn_augment). Reported: median fit time (ours: compilation apart),
iterations, convergence, the objective recomputed in float64 for both, and test accuracy.
Writes results/probe_vs_sklearn.md and .csv.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import logsumexp

from bench import common
from research import augment, data, probe


def objective64(x, y, coef_dc, intercept_c, C):
    """C * sum of cross-entropies + 0.5 ||W||^2, in float64."""
    z = x.astype(np.float64) @ np.asarray(coef_dc, np.float64) + np.asarray(intercept_c, np.float64)
    ce = logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    return float(C * ce.sum() + 0.5 * np.sum(np.asarray(coef_dc, np.float64) ** 2))


def run_ours(x, y, args, seed, first):
    kw = {"C": args.C, "max_iter": args.max_iter, "tol": args.tol, "n_classes": 10}
    res, secs, comp = common.timed(probe.fit_timed, probe.fit, first, x, y, **kw)
    p = res.params
    return (np.asarray(p.W_dc), np.asarray(p.b_c), int(res.n_iter), bool(res.converged)), secs, comp


def run_sklearn(x, y, args, seed, first):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # float64, scikit-learn's usual precision: it ran faster than on float32 here (converted outside the timing).
    x64 = np.asarray(x, np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        m, secs, _ = common.clock(
            LogisticRegression(C=args.C, solver="lbfgs", max_iter=args.max_iter, tol=args.tol).fit, x64, y
        )
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return (m.coef_.T, m.intercept_, int(m.n_iter_[0]), converged), secs, None


def main():
    ap = common.parser(__doc__, "results/probe_vs_sklearn")
    ap.add_argument("--n_train", type=int, default=60000, help="first N training images (smoke runs: 5000)")
    ap.add_argument("--C", type=float, default=10.0)
    ap.add_argument("--max_iter", type=int, default=100, help="scikit-learn's default")
    ap.add_argument("--tol", type=float, default=1e-4, help="scikit-learn's default")
    ap.add_argument("--augment", default="none,shift", help="comma-separated: none, shift")
    ap.add_argument("--sklearn_augment", action="store_true", help="also fit scikit-learn on the 5x shifted set")
    args = ap.parse_args()

    train = data.load(args.dataset, "train", args.data_dir)
    test = data.load(args.dataset, "test", args.data_dir)
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
            rep = common.repeat(
                fn, args.repeats, x, y, args, label=f"{name} augment={aug}", describe=lambda o: f"n_iter={o[2]}"
            )
            coef, intercept, n_iter, conv = rep.outs[-1]
            acc = float(np.mean(np.argmax(test.x @ coef + intercept, axis=1) == test.y))
            rows.append(
                {
                    "method": name,
                    "augment": aug,
                    "n_train_rows": len(x),
                    "fit_seconds_median": rep.median,
                    "compile_seconds": rep.compile_seconds,
                    "n_iter": n_iter,
                    "converged": conv,
                    "objective": objective64(x, y, coef, intercept, args.C),
                    "test_accuracy": acc,
                    "repeats": args.repeats,
                }
            )
    n_test = f"{len(test.x) // 1000}k" if len(test.x) % 1000 == 0 else len(test.x)  # "10k" on MNIST
    caption = (
        f"Multinomial logistic regression on {common.data_name(train.name)} pixels in [0, 1] (first {len(x0)} train "
        f"images; {n_test} test), "
        f"C={args.C:g}, max_iter={args.max_iter}, tol={args.tol:g}; median of {args.repeats}."
    )
    common.write_table(rows, table_columns(rows), args.out, "bench.probe_vs_sklearn", caption=caption)


def table_columns(rows):
    sklearn = {r["augment"]: r["fit_seconds_median"] for r in rows if r["method"] == "scikit-learn"}
    return [
        ("method", "method"),
        ("augment", "augment"),
        ("train rows", "n_train_rows"),
        ("fit s (median)", "fit_seconds_median", ".2f"),
        ("compile s", "compile_seconds", ".2f"),
        ("speed-up vs sklearn", lambda r: common.ratio(sklearn.get(r["augment"]), r["fit_seconds_median"])),
        ("iterations", "n_iter"),
        ("converged", "converged"),
        ("objective", "objective", ".6g"),
        ("test accuracy", "test_accuracy", ".4f"),
    ]


if __name__ == "__main__":
    main()
