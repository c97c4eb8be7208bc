r"""How many clusters? k-means and a GMM for each K in a range; elbow, silhouette and BIC side by side.

  python -m experiments.choose_k --dataset=digits
  python -m experiments.choose_k --dataset=mnist --data_dir=../shared/datasets --pca_components=50 --k_max=20

For each K in --k_min..--k_max: k-means (--n_init restarts) and a Gaussian mixture
(--covariance_type) started from that k-means' labels. Three suggestions:

* elbow: the K of the k-means inertia curve farthest from the chord joining its first and last
  points, both axes scaled to [0, 1] (the "maximum distance to the chord" form of Kneedle,
  Satopaa et al. 2011). Needs at least three K values.
* silhouette: the K with the highest mean silhouette of the k-means labels (on a random sample of
  --silhouette_sample_size points for large data; silhouette needs K >= 2).
* bic: the K with the lowest GMM BIC.

Writes config.json, results.json (per-K inertia, silhouette, bic, aic, lower bound, label metrics
of both models when labels are known, and the suggested K's) and plots/choose_k.png (three panels).
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags, logging

from experiments import common, features
from research import metrics, plots
from research.cluster import gmm, kmeans

FLAGS = flags.FLAGS
flags.DEFINE_integer("k_min", 2, "Smallest K tried (>= 1; the silhouette starts at 2).")
flags.DEFINE_integer("k_max", 15, "Largest K tried.")
flags.DEFINE_integer("n_init", 3, "k-means restarts per K.")
flags.DEFINE_enum("covariance_type", "full", list(gmm.COVARIANCE_TYPES), "GMM covariance type.")
flags.DEFINE_integer("gmm_max_iter", 100, "GMM EM iterations at most.")
flags.DEFINE_float("reg_covar", 1e-6, "GMM: added to every covariance's diagonal (> 0).")
flags.DEFINE_integer("silhouette_sample_size", 10000, "Silhouette on this many random points (0: all of them).")
flags.DEFINE_integer("pca_components", 0, "Cluster this many principal components (0: the data as loaded).")


def main(argv):
    del argv
    if not 1 <= FLAGS.k_min <= FLAGS.k_max:
        raise app.UsageError(f"need 1 <= --k_min <= --k_max, got {FLAGS.k_min} and {FLAGS.k_max}.")
    wd = common.prepare_workdir("choose_k")
    ds = common.load_dataset()
    if FLAGS.k_max > ds.x.shape[0]:
        raise app.UsageError(f"--k_max={FLAGS.k_max} is larger than the number of samples ({ds.x.shape[0]}).")
    key_pca, key_fit = jax.random.split(common.root_key())
    z = np.asarray(ds.x, np.float32)
    if FLAGS.pca_components:
        (z,), _, _ = features.pca_features(key_pca, z, n_components=FLAGS.pca_components)
    sample = FLAGS.silhouette_sample_size or None
    ks = list(range(FLAGS.k_min, FLAGS.k_max + 1))
    rows = []
    t_start = time.perf_counter()
    for k in ks:
        key_km, key_gmm = jax.random.split(jax.random.fold_in(key_fit, k))
        km = kmeans.fit(key_km, z, k, n_init=FLAGS.n_init)
        km_labels = np.asarray(km.labels)
        sil = metrics.silhouette(z, km_labels, sample_size=sample, seed=FLAGS.seed) if k >= 2 else float("nan")
        row = {"k": k, "inertia": float(km.inertia), "silhouette": sil}
        try:
            g = gmm.fit(
                key_gmm,
                z,
                k,
                covariance_type=FLAGS.covariance_type,
                labels_init=km_labels,
                max_iter=FLAGS.gmm_max_iter,
                reg_covar=FLAGS.reg_covar,
            )
            row |= {
                "bic": gmm.bic(g.params, z),
                "aic": gmm.aic(g.params, z),
                "gmm_lower_bound": float(g.lower_bound),
                "gmm_converged": bool(g.converged),
            }
            gmm_labels = np.asarray(g.labels)
        except ValueError as e:  # a mixture that collapses at this K: no BIC for it, the others still count
            logging.warning("GMM with K=%d failed: %s", k, e)
            row |= {"bic": float("nan"), "aic": float("nan"), "gmm_lower_bound": float("nan"), "gmm_converged": False}
            gmm_labels = None
        if ds.y is not None:
            row |= {f"kmeans_{m}": v for m, v in common.label_metrics(ds.y, km_labels).items()}
            if gmm_labels is not None:
                row |= {f"gmm_{m}": v for m, v in common.label_metrics(ds.y, gmm_labels).items()}
        logging.info("K=%d inertia=%.6g silhouette=%.4f bic=%.6g", k, row["inertia"], sil, row["bic"])
        rows.append(row)

    inertia = [r["inertia"] for r in rows]
    sil = np.array([r["silhouette"] for r in rows])
    bic = np.array([r["bic"] for r in rows])
    suggested = {
        "elbow": metrics.elbow_k(ks, inertia),
        "silhouette": int(ks[int(np.nanargmax(sil))]) if np.any(np.isfinite(sil)) else None,
        "bic": int(ks[int(np.nanargmin(bic))]) if np.any(np.isfinite(bic)) else None,
    }
    plots.k_selection(
        ks,
        inertia,
        sil,
        bic,
        wd / "plots" / "choose_k.png",
        suggested=suggested,
        title=f"choosing K on {ds.name}" + (f" (PCA-{z.shape[1]})" if FLAGS.pca_components else ""),
    )
    results = {
        "dataset": ds.name,
        "split": FLAGS.split,
        "seed": FLAGS.seed,
        "n_samples": int(z.shape[0]),
        "n_features": int(z.shape[1]),
        "ks": ks,
        "per_k": rows,
        "suggested_k": suggested,
        "elbow_method": "max distance to the chord of the normalised inertia curve (Kneedle)",
        "n_classes": len(np.unique(ds.y)) if ds.y is not None else None,
        "seconds": time.perf_counter() - t_start,
    }
    text = " ".join(f"{name}={v}" for name, v in suggested.items())
    common.finish(wd, results, f"choose_k {ds.name}/{FLAGS.split} K in {ks[0]}..{ks[-1]}: {text} -> {wd}")


if __name__ == "__main__":
    app.run(main)
