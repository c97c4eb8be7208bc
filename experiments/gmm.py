r"""Gaussian mixture on a dataset (optionally after PCA): fit, evaluate, save params, draw clusters and density.

  python -m experiments.gmm --dataset=digits --pca_components=2
  python -m experiments.gmm --dataset=mnist --data_dir=../shared/datasets --pca_components=50 --n_init=3

Writes config.json, results.json (acc, nmi, ari, lower_bound, bic, aic, n_iter, converged,
fit_seconds, compile_seconds, ...), labels.npy, ckpt/ (the mixture's params, and the PCA's when
--pca_components > 0; Orbax), plots/clusters.png (images only) and, when the fitted features are
2-D, plots/density.png: contours of the log-density over the points.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import app, flags

from experiments import common, features
from research import plots
from research.cluster import gmm

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_components", None, "K. Default: the number of classes when labels are known, else 10.")
flags.DEFINE_enum("covariance_type", "full", list(gmm.COVARIANCE_TYPES), "Shape of each component's covariance.")
flags.DEFINE_integer("n_init", 1, "Restarts, run together; the highest lower bound is kept.")
flags.DEFINE_integer("max_iter", 100, "EM iterations per restart at most.")
flags.DEFINE_float("tol", 1e-3, "Stop when the mean log-likelihood changes by less than this.")
flags.DEFINE_float("reg_covar", 1e-6, "Added to every covariance's diagonal (> 0).")
flags.DEFINE_enum("init_params", "kmeans", list(gmm.INIT_PARAMS), "Initial responsibilities.")
flags.DEFINE_integer("pca_components", 0, "Fit on this many principal components (0: on the data as loaded).")


def main(argv):
    del argv
    wd = common.prepare_workdir("gmm")
    ds = common.load_dataset()
    k = common.n_clusters(ds, FLAGS.n_components)
    key_pca, key_fit = jax.random.split(common.root_key())
    z, params, pca_info = np.asarray(ds.x, np.float32), {}, {}
    if FLAGS.pca_components:
        (z,), p_pca, pca_info = features.pca_features(key_pca, ds.x, n_components=FLAGS.pca_components)
        params["pca"] = {name: np.asarray(v) for name, v in p_pca._asdict().items()}
    timed = gmm.fit_timed(
        key_fit,
        z,
        k,
        covariance_type=FLAGS.covariance_type,
        n_init=FLAGS.n_init,
        max_iter=FLAGS.max_iter,
        tol=FLAGS.tol,
        reg_covar=FLAGS.reg_covar,
        init_params=FLAGS.init_params,
    )
    res = timed.out
    params["gmm"] = {name: np.asarray(v) for name, v in res.params._asdict().items()}
    title = f"GMM ({FLAGS.covariance_type}), {ds.name}, K={k}" + (f", PCA-{z.shape[1]}" if pca_info else "")
    results = common.save_clustering(
        wd,
        ds,
        res.labels,
        params,
        {"n_components": k, "covariance_type": FLAGS.covariance_type, "dim": int(z.shape[1])},
        title,
    )
    if z.shape[1] == 2:
        plots.density_contours(
            z,
            lambda g: np.asarray(gmm.score_samples(res.params, g)),
            wd / "plots" / "density.png",
            labels_n=np.asarray(res.labels),
            centers_k2=np.asarray(res.params.means_kd),
            title=title,
        )
    results |= {
        "n_features": int(z.shape[1]),
        "pca_components": FLAGS.pca_components,
        "n_components": k,
        "covariance_type": FLAGS.covariance_type,
        "n_init": FLAGS.n_init,
        "lower_bound": float(res.lower_bound),
        "lower_bound_per_init": np.asarray(res.lower_bound_per_init).tolist(),
        "bic": gmm.bic(res.params, z),
        "aic": gmm.aic(res.params, z),
        **common.fit_fields(res, timed),
        **pca_info,
    }
    common.finish(
        wd,
        results,
        f"gmm {ds.name}/{FLAGS.split} K={k} {FLAGS.covariance_type}: {common.score_text(results)} "
        f"lower_bound={res.lower_bound:.6g} bic={results['bic']:.6g} n_iter={int(res.n_iter)} "
        f"fit {timed.run_seconds:.2f}s (compile {timed.compile_seconds:.2f}s) -> {wd}",
    )


if __name__ == "__main__":
    app.run(main)
