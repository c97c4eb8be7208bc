r"""Gaussian mixture EM side by side: jaxcluster vs scikit-learn GaussianMixture, same start, same work.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.gmm_vs_sklearn
  python -m bench.gmm_vs_sklearn --n_samples=5000 --repeats=1       # a quick smoke run

The setting: MNIST-70k (train + test) projected on its first --pca_components principal
components by research.embed.pca (float32), --n_components components with
--covariance_type covariances. Both libraries get the same float32 features and start from the
same parameters: one k-means (research.cluster.kmeans, n_init=1, --seed) gives hard labels, and
its M step (in float64, reg_covar added) gives the initial weights, means and precisions.

Same work: scikit-learn runs to convergence at --tol (1e-3, its default); its iteration count N is
then imposed on ours (tol=0, max_iter=N), so both run exactly N EM iterations from the same start.
With --n_iter=N both run N iterations with tol=0. scikit-learn also runs its init_params step
(random_from_data, the cheapest, whose result the explicit initial parameters replace) and a final
E step; ours runs the final E step too.

Reported: median fit seconds over --repeats (ours: the compilation timed apart, on the first
call), the speed-up, the lower bound (mean log-likelihood) of each and their relative difference,
the iteration counts, and ACC/NMI/ARI of each one's labels. Writes results/gmm_vs_sklearn.md and .csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import jax
import numpy as np

from research import data, metrics, report
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


def run_ours(x, k, cov_type, init, n_iter, reg_covar, first):
    w, mu, prec = init
    kwargs = {"covariance_type": cov_type, "max_iter": n_iter, "tol": 0.0, "reg_covar": reg_covar}
    kwargs |= {"weights_init": w, "means_init": mu, "precisions_init": prec}
    if first:  # the first call compiles: time it apart
        t = gmm.fit_timed(jax.random.key(0), x, k, **kwargs)
        res, secs, comp = t.out, t.run_seconds, t.compile_seconds
    else:
        t0 = time.perf_counter()
        res = jax.block_until_ready(gmm.fit(jax.random.key(0), x, k, **kwargs))
        secs, comp = time.perf_counter() - t0, None
    return np.asarray(res.labels), float(res.lower_bound), int(res.n_iter), secs, comp


def run_sklearn(x, k, cov_type, init, max_iter, tol, reg_covar):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    w, mu, prec = init
    g = GaussianMixture(
        k,
        covariance_type=cov_type,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        weights_init=w,
        means_init=mu,
        precisions_init=prec,
        init_params="random_from_data",  # replaced by the explicit init; the cheapest to compute
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g.fit(x)
    secs = time.perf_counter() - t0
    return g.predict(x), float(g.lower_bound_), int(g.n_iter_), secs


def scores(y, labels):
    if y is None:
        return {"acc": None, "nmi": None, "ari": None}
    return {m: metrics.evaluate(y, labels)[m] for m in ("acc", "nmi", "ari")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--n_samples", type=int, default=0, help="use the first N samples (0: all)")
    ap.add_argument("--pca_components", type=int, default=50)
    ap.add_argument("--n_components", type=int, default=10)
    ap.add_argument("--covariance_type", default="full", choices=gmm.COVARIANCE_TYPES)
    ap.add_argument("--tol", type=float, default=1e-3, help="scikit-learn's tolerance, which sets N")
    ap.add_argument("--max_iter", type=int, default=100, help="scikit-learn's iteration cap")
    ap.add_argument("--n_iter", type=int, default=0, help="run exactly this many iterations (0: scikit-learn's N)")
    ap.add_argument("--reg_covar", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/gmm_vs_sklearn")
    args = ap.parse_args()
    args.load_before = os.getloadavg()[0]

    ds = data.load(args.dataset, "all", args.data_dir)
    x_raw, y = ds.x, ds.y
    if args.n_samples:
        x_raw, y = x_raw[: args.n_samples], (None if y is None else y[: args.n_samples])
    key_pca, key_km = jax.random.split(jax.random.key(args.seed))
    x = np.asarray(pca.transform(pca.fit(key_pca, x_raw, args.pca_components), x_raw), np.float32)
    k, cov_type = args.n_components, args.covariance_type
    km_labels = np.asarray(kmeans.fit(key_km, x, k, n_init=1).labels)
    init = initial_params(x, km_labels, k, cov_type, args.reg_covar)

    rows = []
    sk = {"times": [], "lb": None, "n_iter": None, "labels": None}
    n_iter = args.n_iter
    for rep in range(args.repeats):
        max_iter, tol = (n_iter, 0.0) if n_iter else (args.max_iter, args.tol)
        labels, lb, it, secs = run_sklearn(x, k, cov_type, init, max_iter, tol, args.reg_covar)
        n_iter = n_iter or it
        sk.update(lb=lb, n_iter=it, labels=labels)
        sk["times"].append(secs)
        print(f"scikit-learn  repeat={rep} {secs:7.2f}s n_iter={it} lower_bound={lb:.8g}", flush=True)
    ours = {"times": [], "compile": None}
    for rep in range(args.repeats):
        labels, lb, it, secs, comp = run_ours(x, k, cov_type, init, n_iter, args.reg_covar, rep == 0)
        ours["compile"] = comp if comp is not None else ours["compile"]
        ours.update(lb=lb, n_iter=it, labels=labels)
        ours["times"].append(secs)
        print(f"jaxcluster    repeat={rep} {secs:7.2f}s n_iter={it} lower_bound={lb:.8g}", flush=True)

    sk_med = statistics.median(sk["times"])
    for name, r in (("jaxcluster", ours), ("scikit-learn", sk)):
        med = statistics.median(r["times"])
        rows.append(
            {
                "method": name,
                "covariance_type": cov_type,
                "n_components": k,
                "n_samples": int(x.shape[0]),
                "n_features": int(x.shape[1]),
                "n_iter": r["n_iter"],
                "fit_seconds_median": med,
                "compile_seconds": r.get("compile"),
                "speedup_vs_sklearn": sk_med / med,
                "lower_bound": r["lb"],
                "lower_bound_rel_diff_vs_sklearn": abs(r["lb"] - sk["lb"]) / abs(sk["lb"]),
                **scores(y, r["labels"]),
                "repeats": args.repeats,
            }
        )
    write(rows, args, ds)


def write(rows, args, ds):
    out = report.write_csv(rows, args.out)
    r0 = rows[0]

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [
        (
            f"GMM ({r0['covariance_type']} covariance, k={r0['n_components']}) on {ds.name} "
            f"({r0['n_samples']} samples, PCA-{r0['n_features']} float32 features); same initial parameters "
            f"(one k-means) and {r0['n_iter']} EM iterations for both; {report.cpu_name()}, {os.cpu_count()} cores; "
            f"median of {args.repeats}; jax {jax.__version__} on {jax.default_backend()}; load average "
            f"{args.load_before:.1f} before the run (other processes on the cores slow scikit-learn's BLAS threads "
            "far more than XLA: compare runs on an idle machine)."
        ),
        "",
        (
            "| method | fit s (median) | compile s | speed-up vs sklearn | EM iterations | lower bound | rel. diff "
            "| ACC | NMI | ARI |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['fit_seconds_median']:.2f} | {num(r['compile_seconds'], '.2f')} | "
            f"{r['speedup_vs_sklearn']:.1f}x | {r['n_iter']} | {r['lower_bound']:.8g} | "
            f"{r['lower_bound_rel_diff_vs_sklearn']:.1e} | {num(r['acc'], '.4f')} | {num(r['nmi'], '.4f')} | "
            f"{num(r['ari'], '.4f')} |"
        )
    cmd = "python -m bench.gmm_vs_sklearn"
    if args.n_samples:
        cmd += f" --n_samples={args.n_samples}"
    if args.covariance_type != "full" or args.n_components != 10 or args.pca_components != 50:
        cmd += f" --covariance_type={args.covariance_type} --n_components={args.n_components}"
        cmd += f" --pca_components={args.pca_components}"
    if args.n_iter:
        cmd += f" --n_iter={args.n_iter}"
    cmd += f" --repeats={args.repeats}"
    lines += ["", f"Command: `{cmd}`"]
    report.write_markdown(lines, out)


if __name__ == "__main__":
    main()
