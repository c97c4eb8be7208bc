r"""Gaussian mixture EM side by side: jaxcluster vs scikit-learn GaussianMixture, same start, same work.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.gmm_vs_sklearn
  python -m bench.gmm_vs_sklearn --n_samples=5000 --repeats=1       # a quick smoke run

MNIST-70k projected on --pca_components principal components (float32); --n_components components with
--covariance_type covariances. Both start from the same parameters (the M step of one k-means' labels)
and run the same N EM iterations: scikit-learn's count at --tol, imposed on ours with tol=0 (or
--n_iter=N for both). Reported: median fit time (ours: compilation apart), the speed-up, each lower
bound and their relative difference, the iterations, and ACC/NMI/ARI of each one's labels.
Writes results/gmm_vs_sklearn.md and .csv.
"""

from __future__ import annotations

import os
import warnings

import jax
import numpy as np

from bench import common
from research import data, metrics
from research.cluster import gmm, kmeans
from research.embed import pca


def initial_params(x, labels, k, cov_type, reg_covar):
    """weights [k], means [k, d], precisions (the covariance type's shape) of an M step from hard labels, float64."""
    x = x.astype(np.float64)
    n, d = x.shape
    resp = np.eye(k)[labels]
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
    means = resp.T @ x / nk[:, None]
    if cov_type == "full":
        cov = np.stack([(resp[:, j, None] * (x - means[j])).T @ (x - means[j]) / nk[j] for j in range(k)])
        prec = np.linalg.inv(cov + reg_covar * np.eye(d))
    elif cov_type == "tied":
        cov = sum((resp[:, j, None] * (x - means[j])).T @ (x - means[j]) for j in range(k)) / nk.sum()
        prec = np.linalg.inv(cov + reg_covar * np.eye(d))
    else:
        var = np.stack([resp[:, j] @ (x - means[j]) ** 2 / nk[j] for j in range(k)]) + reg_covar
        prec = 1.0 / (var if cov_type == "diag" else var.mean(axis=1))
    return nk / n, means, prec


def run_ours(x, k, cov_type, init, n_iter, reg_covar, seed, first):
    w, mu, prec = init
    kwargs = {"covariance_type": cov_type, "max_iter": n_iter, "tol": 0.0, "reg_covar": reg_covar}
    kwargs |= {"weights_init": w, "means_init": mu, "precisions_init": prec}
    res, secs, comp = common.timed(gmm.fit_timed, gmm.fit, first, jax.random.key(0), x, k, **kwargs)
    return (np.asarray(res.labels), float(res.lower_bound), int(res.n_iter)), secs, comp


def run_sklearn(x, k, cov_type, init, max_iter, tol, reg_covar):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    w, mu, prec = init
    em = {"covariance_type": cov_type, "max_iter": max_iter, "tol": tol, "reg_covar": reg_covar}
    start = {"weights_init": w, "means_init": mu, "precisions_init": prec}
    # init_params: its result is replaced by the explicit start; random_from_data is the cheapest to compute.
    g = GaussianMixture(k, init_params="random_from_data", **em, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, secs, _ = common.clock(g.fit, x)
    return (g.predict(x), float(g.lower_bound_), int(g.n_iter_)), secs, None


def scores(y, labels):
    if y is None:
        return {"acc": None, "nmi": None, "ari": None}
    return {m: metrics.evaluate(y, labels)[m] for m in ("acc", "nmi", "ari")}


def main():
    ap = common.parser(__doc__, "results/gmm_vs_sklearn")
    ap.add_argument("--n_samples", type=int, default=0, help="use the first N samples (0: all)")
    ap.add_argument("--pca_components", type=int, default=50)
    ap.add_argument("--n_components", type=int, default=10)
    ap.add_argument("--covariance_type", default="full", choices=gmm.COVARIANCE_TYPES)
    ap.add_argument("--tol", type=float, default=1e-3, help="scikit-learn's tolerance, which sets N")
    ap.add_argument("--max_iter", type=int, default=100, help="scikit-learn's iteration cap")
    ap.add_argument("--n_iter", type=int, default=0, help="run exactly this many iterations (0: scikit-learn's N)")
    ap.add_argument("--reg_covar", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]

    ds = data.load(args.dataset, "all", args.data_dir)
    x_raw, y = ds.x, ds.y
    if args.n_samples:
        x_raw, y = x_raw[: args.n_samples], (None if y is None else y[: args.n_samples])
    key_pca, key_km = jax.random.split(jax.random.key(args.seed))
    x = np.asarray(pca.transform(pca.fit(key_pca, x_raw, args.pca_components), x_raw), np.float32)
    k, cov_type = args.n_components, args.covariance_type
    km_labels = np.asarray(kmeans.fit(key_km, x, k, n_init=1).labels)
    init = initial_params(x, km_labels, k, cov_type, args.reg_covar)

    fixed = {"n_iter": args.n_iter}  # 0: scikit-learn's first run sets it, at --tol

    def sklearn(seed, first):
        max_iter, tol = (fixed["n_iter"], 0.0) if fixed["n_iter"] else (args.max_iter, args.tol)
        out = run_sklearn(x, k, cov_type, init, max_iter, tol, args.reg_covar)
        fixed["n_iter"] = fixed["n_iter"] or out[0][2]
        return out

    def describe(out):
        return f"n_iter={out[2]} lower_bound={out[1]:.8g}"

    sk = common.repeat(sklearn, args.repeats, label="scikit-learn", describe=describe)
    ours = common.repeat(
        run_ours, args.repeats, x, k, cov_type, init, fixed["n_iter"], args.reg_covar, label="jaxcluster",
        describe=describe,
    )  # fmt: skip
    sk_lb = sk.outs[-1][1]
    rows = []
    for name, r in (("jaxcluster", ours), ("scikit-learn", sk)):
        labels, lb, n_iter = r.outs[-1]
        rows.append(
            {
                "method": name,
                "covariance_type": cov_type,
                "n_components": k,
                "n_samples": int(x.shape[0]),
                "n_features": int(x.shape[1]),
                "n_iter": n_iter,
                "fit_seconds_median": r.median,
                "compile_seconds": r.compile_seconds,
                "speedup_vs_sklearn": sk.median / r.median,
                "lower_bound": lb,
                "lower_bound_rel_diff_vs_sklearn": abs(lb - sk_lb) / abs(sk_lb),
                **scores(y, labels),
                "repeats": args.repeats,
            }
        )
    caption = (
        f"GMM ({cov_type} covariance, k={k}) on {ds.name} ({x.shape[0]} samples, PCA-{x.shape[1]} float32 features); "
        f"same initial parameters (one k-means) and {rows[0]['n_iter']} EM iterations for both; median of "
        f"{args.repeats}; load average {load_before:.1f} before the run (other processes on the cores slow "
        "scikit-learn's BLAS threads far more than XLA: compare runs on an idle machine)."
    )
    common.write_table(rows, COLUMNS, args.out, "bench.gmm_vs_sklearn", caption=caption)


COLUMNS = [
    ("method", "method"),
    ("fit s (median)", "fit_seconds_median", ".2f"),
    ("compile s", "compile_seconds", ".2f"),
    ("speed-up vs sklearn", lambda r: f"{r['speedup_vs_sklearn']:.1f}x"),
    ("EM iterations", "n_iter"),
    ("lower bound", "lower_bound", ".8g"),
    ("rel. diff", "lower_bound_rel_diff_vs_sklearn", ".1e"),
    *[(m.upper(), m, ".4f") for m in ("acc", "nmi", "ari")],
]


if __name__ == "__main__":
    main()
