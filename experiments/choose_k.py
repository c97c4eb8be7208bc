r"""How many clusters? k-means and a GMM for each K in a range; elbow, silhouette and BIC side by side.

  python -m experiments.choose_k --dataset=digits
  python -m experiments.choose_k --dataset=mnist --data_dir=../shared/datasets --pca_components=50 --k_max=20
  python -m experiments.choose_k --dataset=mnist --data_dir=../shared/datasets --pretrained=<autoencoder workdir>

On the pixels, their PCA or autoencoder codes (--features, --pretrained), for each K in --k_min..--k_max:
k-means (--n_init restarts) and a Gaussian mixture (--covariance_type) started from that k-means' labels; the
curves and the K each rule suggests come from research.cluster.select (elbow of the inertia, best silhouette on
--silhouette_sample_size points, lowest BIC). Writes config.json, results.json (per-K inertia, silhouette, bic, aic, lower bound, label metrics of
both models when labels are known, the suggested K's) and plots/choose_k.png (three panels).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from absl import app, flags

from experiments import common, features
from research import plots
from research.cluster import gmm, select

FLAGS = flags.FLAGS
flags.DEFINE_integer("k_min", 2, "Smallest K tried (>= 1; the silhouette starts at 2).")
flags.DEFINE_integer("k_max", 15, "Largest K tried.")
flags.DEFINE_integer("n_init", 3, "k-means restarts per K.")
flags.DEFINE_enum("covariance_type", "full", list(gmm.COVARIANCE_TYPES), "GMM covariance type.")
flags.DEFINE_integer("gmm_max_iter", 100, "GMM EM iterations at most.")
flags.DEFINE_float("reg_covar", 1e-6, "GMM: added to every covariance's diagonal (> 0).")
flags.DEFINE_integer("silhouette_sample_size", 10000, "Silhouette on this many random points (0: all of them).")
common.cli.at_least("k_min", 1)
common.cli.at_least("k_max", 1)
common.cli.at_least("n_init", 1)
common.cli.at_least("gmm_max_iter", 1)
common.cli.positive_finite("reg_covar")
common.cli.at_least("silhouette_sample_size", 0, "0: all of them")
features.define_flags()


@dataclasses.dataclass(frozen=True)
class Config:
    """The K range and each model's settings (the flags of the same names)."""

    k_min: int
    k_max: int
    n_init: int
    covariance_type: str
    gmm_max_iter: int
    reg_covar: float
    silhouette_sample_size: int  # 0: every point
    features: features.Config


def main(argv):
    del argv
    cfg = common.config_from_flags(Config, features=features.config_from_flags())
    if not 1 <= cfg.k_min <= cfg.k_max:
        raise app.UsageError(f"need 1 <= --k_min <= --k_max, got {cfg.k_min} and {cfg.k_max}.")
    choose(common.run_config("choose_k"), cfg)


def choose(run: common.RunConfig, cfg: Config) -> None:
    """The three curves over K on the cfg.features of run's dataset; writes the outputs."""
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    if cfg.k_max > ds.x.shape[0]:
        raise app.UsageError(f"--k_max={cfg.k_max} is larger than the number of samples ({ds.x.shape[0]}).")
    key_pca, key_fit = jax.random.split(run.key())
    (z,), _, info = features.extract(cfg.features, key_pca, ds.x, dataset=ds.name)
    ks = list(range(cfg.k_min, cfg.k_max + 1))
    t_start = time.perf_counter()
    el = select.elbow(key_fit, z, ks, n_init=cfg.n_init)
    sil = select.silhouette(z, ks, el.labels, sample_size=cfg.silhouette_sample_size or None, seed=run.seed)
    b = select.bic(
        key_fit,
        z,
        ks,
        labels_init=el.labels,
        covariance_type=cfg.covariance_type,
        max_iter=cfg.gmm_max_iter,
        reg_covar=cfg.reg_covar,
    )
    rows = []
    for i, k in enumerate(ks):
        row = {"k": k, "inertia": float(el.inertia[i]), "silhouette": float(sil.scores[i]), "bic": float(b.bic[i])}
        row |= {
            "aic": float(b.aic[i]),
            "gmm_lower_bound": float(b.lower_bound[i]),
            "gmm_converged": bool(b.converged[i]),
        }
        row |= {f"kmeans_{m}": v for m, v in common.label_metrics(ds.y, el.labels[i]).items()}
        if b.labels[i] is not None:
            row |= {f"gmm_{m}": v for m, v in common.label_metrics(ds.y, b.labels[i]).items()}
        rows.append(row)
    suggested = {"elbow": el.k, "silhouette": sil.k, "bic": b.k}
    plots.k_selection(
        ks,
        el.inertia.tolist(),
        sil.scores,
        b.bic,
        wd / "plots" / "choose_k.png",
        suggested=suggested,
        title=f"choosing K on {ds.name} ({features.name(cfg.features)})",
    )
    results = {
        "dataset": ds.name,
        "split": run.split,
        "seed": run.seed,
        "n_samples": int(z.shape[0]),
        **info,
        "ks": ks,
        "per_k": rows,
        "suggested_k": suggested,
        "elbow_method": "max distance to the chord of the normalised inertia curve (Kneedle)",
        "n_classes": len(np.unique(ds.y)) if ds.y is not None else None,
        "seconds": time.perf_counter() - t_start,
    }
    text = " ".join(f"{name}={v}" for name, v in suggested.items())
    common.finish(run, results, f"choose_k {ds.name}/{run.split} K in {ks[0]}..{ks[-1]}: {text} -> {wd}")


if __name__ == "__main__":
    common.run_main(main)
