r"""DEC (Deep Embedded Clustering) on a pretrained autoencoder; with --frozen, "DEC w/o backprop".

  python -m experiments.dec                                              # digits: pretrains, then DEC
  python -m experiments.dec --flagfile=experiments/configs/dec_mnist.flags --seed=0 \
      --pretrained=checkpoints/autoencoder/mnist-dec-sgd-seed0
  python -m experiments.dec --dataset=mnist --frozen --pretrained=...    # only the centres move
  python -m experiments.dec --dataset=mnist --dec_augment --pretrained=... # DEC-DA: augmented inputs

experiments/idec.py is this binary with IDEC's defaults (--gamma=0.1: the reconstruction loss stays).

Writes into --workdir: config.json; metrics.jsonl (one row per target update: ACC/NMI/ARI when labels are known,
the fraction of labels changed, the loss); train_ckpt/ (Orbax: a run started again with the same flags resumes
and ends with the same bits); model/ (the trained autoencoder: --pretrained=<this workdir> gives other
binaries DEC's encoder); ckpt/ (the centres); labels.npy, embedding.npy; results.json; plots/clusters.png,
plots/training.png (scores over the steps) and plots/embedding.png (PCA of the embedding of 3000 samples,
coloured by cluster). With --validation_fraction, DEC trains on the rest and reports the DEC paper's
generalizability G = L_train / L_validation.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags, logging

from experiments import autoencoder, common
from research import data, plots
from research import logging as runlog
from research.deep import dec, pretrain
from research.embed import pca

FLAGS = flags.FLAGS
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
flags.DEFINE_float("alpha", 1.0, "Degrees of freedom of the Student's t kernel.")
flags.DEFINE_integer("update_interval", 140, "Steps between recomputations of the target distribution.")
flags.DEFINE_float("tol", 1e-3, "Stop when fewer than this fraction of labels changed between two updates.")
flags.DEFINE_integer("maxiter", 20000, "Steps at most.")
flags.DEFINE_integer("n_init", 20, "k-means restarts that place the initial centres.")
flags.DEFINE_enum("dec_optimizer", "sgd", list(pretrain.OPTIMIZERS), "Optimizer of the clustering stage.")
flags.DEFINE_float("dec_learning_rate", 0.01, "Learning rate of the clustering stage.")
flags.DEFINE_float("dec_momentum", 0.9, "SGD momentum of the clustering stage.")
flags.DEFINE_integer("dec_batch_size", 256, "Minibatch of the clustering stage.")
flags.DEFINE_float("gamma", None, "IDEC: keep the reconstruction loss, loss = reconstruction + gamma * KL.")
flags.DEFINE_bool("frozen", False, "DEC w/o backprop: the encoder stays as pretrained; only the centres move.")
flags.DEFINE_bool(
    "dec_augment",
    False,
    "DEC-DA (Guo et al. 2018): each clustering step sees its images randomly moved and turned (--augment_shift, "
    "--augment_rotation), while the targets come from the originals. Images only.",
)
flags.DEFINE_integer("checkpoint_updates", 5, "Target updates between checkpoints.")
flags.DEFINE_float("validation_fraction", 0.0, "Hold out this fraction of the samples to measure G (0: none).")


def config(loss: str, image_shape=None) -> dec.DECConfig:
    return dec.DECConfig(
        n_clusters=0,  # set by main
        alpha=FLAGS.alpha,
        update_interval=FLAGS.update_interval,
        tol=FLAGS.tol,
        maxiter=FLAGS.maxiter,
        batch_size=FLAGS.dec_batch_size,
        optimizer=FLAGS.dec_optimizer,
        learning_rate=FLAGS.dec_learning_rate,
        momentum=FLAGS.dec_momentum,
        gamma=FLAGS.gamma,
        loss=loss,
        frozen=FLAGS.frozen,
        n_init=FLAGS.n_init,
        checkpoint_every=FLAGS.checkpoint_updates,
        augment=autoencoder.augmenter(image_shape, FLAGS.dec_augment, "--dec_augment"),
    )


def mode() -> str:
    if FLAGS.frozen:
        return "frozen"
    return ("idec" if FLAGS.gamma is not None else "dec") + ("-da" if FLAGS.dec_augment else "")


def main(argv, experiment: str = "dec"):
    del argv
    if FLAGS.frozen and FLAGS.dec_augment:
        raise SystemExit(
            "--dec_augment trains the encoder on moved and turned images; --frozen keeps it fixed. Drop one."
        )
    wd = common.prepare_workdir(experiment, "frozen" if FLAGS.frozen else ("da" if FLAGS.dec_augment else ""))
    ds = common.load_dataset()
    val = None
    if FLAGS.validation_fraction:
        ds, val = data.split_validation(ds, FLAGS.validation_fraction, seed=FLAGS.seed)
    # The autoencoder gets the root key itself, so it is the one experiments.autoencoder trains with this seed.
    model, ae_params, spec = autoencoder.obtain(wd, ds, common.root_key())
    k = common.n_clusters(ds, FLAGS.n_clusters)
    cfg = config(spec["loss"], ds.image_shape)._replace(n_clusters=k)
    run_config = {**common.flag_values(), "autoencoder": spec}
    t0 = time.perf_counter()
    res = dec.fit(
        jax.random.fold_in(common.root_key(), 1),
        model,
        ae_params,
        ds.x,
        cfg,
        y=ds.y,
        workdir=wd,
        config=run_config,
        log=runlog.MetricsLog(wd),
    )
    seconds = time.perf_counter() - t0
    z = res.embedding
    np.save(wd / "embedding.npy", z)
    pretrain.save_model(wd, spec, res.params["ae"], overwrite=True)
    name = {"dec": "DEC", "idec": "IDEC", "frozen": "DEC w/o backprop", "dec-da": "DEC-DA", "idec-da": "IDEC-DA"}[
        mode()
    ]
    title = f"{name} ({spec['arch']}), {ds.name}, K={k}"
    results = common.save_clustering(
        wd, ds, res.labels, {"centres": np.asarray(res.params["centres"])}, {"n_clusters": k, "alpha": cfg.alpha}, title
    )
    _figures(wd, z, res, title)
    results |= {
        "n_clusters": k,
        "mode": mode(),
        "arch": spec["arch"],
        "pretrained": FLAGS.pretrained or str(wd / "autoencoder"),
        "n_iter": res.n_iter,
        "n_updates": res.n_updates,
        "converged": res.converged,
        "fit_seconds_this_invocation": seconds,
        **{f"init_{m}": v for m, v in common.label_metrics(ds.y, res.init_labels).items()},
    }
    if val is not None:
        results |= _generalizability(model, res.params, ds, val, cfg.alpha)
    common.finish(
        wd,
        results,
        f"{experiment} {ds.name}/{FLAGS.split} K={k} ({mode()}): {common.score_text(results)} "
        f"after {res.n_iter} steps -> {wd}",
    )


def _figures(wd, z, res: dec.DECResult, title: str) -> None:
    rows = [r for r in runlog.MetricsLog(wd).rows() if r.get("stage") == "dec"]
    plots.training_curves(rows, wd / "plots" / "training.png", title=title)
    pick = np.random.default_rng(FLAGS.seed).choice(len(z), size=min(3000, len(z)), replace=False)
    p = pca.fit(jax.random.key(0), z[pick], 2)
    plots.embedding_2d(
        pca.transform(p, z[pick]),
        res.labels[pick],
        wd / "plots" / "embedding.png",
        centres_k2=pca.transform(p, np.asarray(res.params["centres"])),
        title=f"{title}: embedding of {len(pick)} samples",
        axis_names=("PC 1", "PC 2"),
    )


def _generalizability(model, params, train: data.Dataset, val: data.Dataset, alpha: float) -> dict:
    """The DEC paper's G = L_train / L_validation (section 5.3), with the validation rows' scores."""
    l_train = dec.objective(model, params, train.x, alpha)
    l_val = dec.objective(model, params, val.x, alpha)
    out = {"loss_train": l_train, "loss_validation": l_val, "generalizability": l_train / max(l_val, 1e-30)}
    labels = dec.predict_proba(model, params, val.x, alpha).argmax(1)
    out |= {f"validation_{m}": v for m, v in common.label_metrics(val.y, labels).items()}
    logging.info("generalizability G = %.4f / %.4f = %.4f", l_train, l_val, out["generalizability"])
    return out


if __name__ == "__main__":
    app.run(main)
