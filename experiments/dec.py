r"""DEC (Deep Embedded Clustering) on a pretrained autoencoder; IDEC, DEC w/o backprop and DEC-DA by --mode/--augment.

  python -m experiments.dec                                              # digits: pretrains, then DEC
  python -m experiments.dec --flagfile=experiments/configs/dec_mnist.flags --seed=0 \
      --pretrained=checkpoints/autoencoder/mnist-dec-sgd-seed0
  python -m experiments.dec --flagfile=experiments/configs/idec_mnist.flags --pretrained=...  # --mode=idec
  python -m experiments.dec --mode=frozen --pretrained=...               # DEC w/o backprop: only centroids move
  python -m experiments.dec --augment=affine --pretrained=...            # DEC-DA (IDEC-DA with --mode=idec)
  python -m experiments.dec --target=batch --tol=0 --max_iter=5000 ...   # ClustPy's rule: each batch its own P

Without --pretrained it pretrains into <workdir>/autoencoder/ first (--ae_arch, --ae_epochs, ...). Outputs, the
resume contract and every flag: docs/experiments.md#dec, docs/flags.md.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import flags

from experiments import common, features, stages  # noqa: F401 (features defines --pretrained)
from research import data, metrics, plots, runlog
from research.deep import dec, pretrain

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "mode", "dec", ["dec", "idec", "frozen"], "dec; idec (reconstruction loss kept); frozen (DEC w/o backprop)."
)
flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
common.validate_n_clusters_flag()
flags.DEFINE_float("alpha", 1.0, "Degrees of freedom of the Student's t kernel.")
flags.DEFINE_enum(
    "target",
    "full",
    list(dec.TARGETS),
    "full: the target P of all samples, recomputed every --update_interval steps (the DEC paper). batch: each step's "
    "P from its own batch's Q (ClustPy's rule), no pass over the data for it; --update_interval then spaces the "
    "labelling passes that check --tol, and --tol=0 makes none: exactly --max_iter steps, labelled at the end.",
)
flags.DEFINE_integer(
    "update_interval", 140, "Steps between updates: the target P and the labels (--target=batch: the labels only)."
)
flags.DEFINE_float("tol", 1e-3, "Stop when fewer than this fraction of labels changed between two updates.")
flags.DEFINE_integer("max_iter", 20000, "Steps at most.")
flags.DEFINE_integer("n_init", 20, "k-means restarts that place the initial centroids.")
flags.DEFINE_enum("optimizer", None, list(pretrain.OPTIMIZERS), "Default: sgd (dec, frozen), adam (idec).")
flags.DEFINE_float("learning_rate", None, "Default: 0.01 (dec, frozen), 0.001 (idec).")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_integer("batch_size", 256, "Minibatch size.")
flags.DEFINE_float("gamma", 0.1, "--mode=idec: loss = reconstruction + gamma * KL(P || Q).")
flags.DEFINE_enum("augment", "none", ["none", "affine"], "affine: DEC-DA, steps see moved and turned images.")
flags.DEFINE_float("augment_shift", 0.1, "--augment=affine: largest move, as a fraction of the image side.")
flags.DEFINE_float("augment_rotation", 10.0, "--augment=affine: largest rotation, in degrees.")
flags.DEFINE_integer("checkpoint_updates", 5, "Target updates between checkpoints.")
flags.DEFINE_float("validation_fraction", 0.0, "Hold out this fraction of the samples to measure G (0: none).")
flags.DEFINE_integer(
    "snapshot_every",
    5,
    "Target updates between the panels of plots/dec_snapshots.png (PCA of the same 3000 codes, before any DEC step, "
    "then every N updates and at the end; 0: none). It keeps codes each update computes anyway (12 KB per panel and "
    "latent dimension, in dec_snapshots.npz) and draws once at the end (about a second): no extra encoding.",
)
common.cli.positive_finite("alpha")
common.cli.at_least("update_interval", 1)
common.cli.positive_finite("tol", allow_zero=True)
common.cli.at_least("max_iter", 1)
common.cli.at_least("n_init", 1)
common.cli.positive_finite("learning_rate")
common.cli.check("momentum", lambda v: 0 <= v < 1, "must be in [0, 1)")
common.cli.at_least("batch_size", 1)
common.cli.positive_finite("gamma", allow_zero=True)
common.cli.positive_finite("augment_shift", allow_zero=True)
common.cli.positive_finite("augment_rotation", allow_zero=True)
common.cli.at_least("checkpoint_updates", 1)
common.cli.fraction("validation_fraction", "0: none")
common.cli.at_least("snapshot_every", 0)
# The pretraining stage's flags are --ae_*; DEC's own lost their --dec_ prefix. The names of the last release
# that clash with nothing still work, as aliases, for one more release.
CLASH = {"optimizer", "learning_rate", "momentum", "batch_size", "augment", "augment_shift", "augment_rotation"}
stages.define_autoencoder_flags("ae_", old_names=[n for n in stages.FIELDS if n not in CLASH])
for _old in ("optimizer", "learning_rate", "momentum", "batch_size"):
    flags.DEFINE_alias("dec_" + _old, _old)
flags.DEFINE_alias("maxiter", "max_iter")
stages.define_tensorboard_flag()
NAMES = {"dec": "DEC", "idec": "IDEC", "frozen": "DEC w/o backprop", "dec-da": "DEC-DA", "idec-da": "IDEC-DA"}


def main(argv):
    del argv
    mode, idec = FLAGS.mode, FLAGS.mode == "idec"
    if FLAGS["gamma"].present and not idec:
        raise SystemExit(f"--gamma weighs IDEC's clustering loss; add --mode=idec (now --mode={mode}).")
    if mode == "frozen" and FLAGS.augment != "none":
        raise SystemExit("--augment trains the encoder on moved and turned images; --mode=frozen keeps it fixed.")
    if FLAGS.target == "batch" and FLAGS.tol == 0 and FLAGS["snapshot_every"].present and FLAGS.snapshot_every:
        raise SystemExit(
            "--snapshot_every: with --target=batch --tol=0 the only updates are the first and the last, which are "
            "drawn whatever its value; drop it (or --snapshot_every=0 for no panels), or give --tol > 0."
        )
    variant = "frozen" if mode == "frozen" else ("da" if FLAGS.augment != "none" else "")
    variant = "-".join(v for v in (variant, "batch" if FLAGS.target == "batch" else "") if v)
    run = common.run_config("idec" if idec else "dec", variant)
    ae_cfg = stages.autoencoder_config("ae_")
    cfg = dec.DECConfig(
        alpha=FLAGS.alpha,
        update_interval=FLAGS.update_interval,
        tol=FLAGS.tol,
        max_iter=FLAGS.max_iter,
        batch_size=FLAGS.batch_size,
        optimizer=FLAGS.optimizer or ("adam" if idec else "sgd"),
        learning_rate=FLAGS.learning_rate or (1e-3 if idec else 0.01),
        momentum=FLAGS.momentum,
        gamma=FLAGS.gamma if idec else None,
        frozen=mode == "frozen",
        n_init=FLAGS.n_init,
        devices=run.num_devices,
        checkpoint_every=FLAGS.checkpoint_updates,
        target=FLAGS.target,
    )
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    val = None
    if FLAGS.validation_fraction:
        ds, val = data.split_validation(ds, FLAGS.validation_fraction, seed=run.seed)
    model, ae_params, spec = stages.obtain_autoencoder(run, ds, ae_cfg, FLAGS.pretrained, FLAGS.tensorboard)
    aug = stages.augmenter(ds.image_shape, FLAGS.augment, FLAGS.augment_shift, FLAGS.augment_rotation, "augment")
    k = common.n_clusters(ds, FLAGS.n_clusters)
    cfg = cfg._replace(n_clusters=k, loss=spec["loss"], augment=aug)
    mode += "-da" if aug is not None else ""
    results = train_and_evaluate(
        run, cfg, ds, val, model, ae_params, spec, mode, FLAGS.pretrained, FLAGS.tensorboard, FLAGS.snapshot_every
    )
    summary = f"{run.experiment} {ds.name}/{run.split} K={k} ({mode}): {common.score_text(results)}"
    common.finish(run, results, f"{summary} after {results['n_iter']} steps -> {wd}")


def train_and_evaluate(
    run,
    cfg: dec.DECConfig,
    ds,
    val,
    model,
    ae_params,
    spec,
    mode: str,
    pretrained,
    tensorboard: bool = False,
    snapshot_every: int = 0,
) -> dict:
    """DEC's clustering stage on ds from the autoencoder (model, ae_params); writes the workdir's outputs (with
    `tensorboard`, its rows as event files in <workdir>/tensorboard/ too; with `snapshot_every`, the panels of
    plots/dec_snapshots.png, kept in <workdir>/dec_snapshots.npz as they are taken, so a resumed run has them)."""
    wd = run.workdir
    snaps = None
    if snapshot_every:
        snaps = dec.Snapshots(len(ds.x), snapshot_every, seed=run.seed, path=wd / "dec_snapshots.npz")
    t0 = time.perf_counter()
    res = dec.fit(
        jax.random.fold_in(run.key(), 1),
        model,
        ae_params,
        ds.x,
        cfg,
        y=ds.y,
        workdir=wd,
        config={**run.flags, "autoencoder": spec},
        log=runlog.MetricsLog(wd, tensorboard=tensorboard),
        on_update=snaps,
    )
    results = {"fit_seconds_this_invocation": time.perf_counter() - t0}
    runlog.save_array(wd / "embedding.npy", res.embedding)
    pretrain.save_model(wd, spec, res.params["ae"], overwrite=True)
    title = f"{NAMES[mode]} ({spec['arch']}), {ds.name}, K={cfg.n_clusters}"
    params, config = (
        {"centroids": np.asarray(res.params["centroids"])},
        {"n_clusters": cfg.n_clusters, "alpha": cfg.alpha},
    )
    results |= common.save_clustering(run, ds, res.labels, params, config, title)
    _figures(wd, res, title, run.seed)
    if snaps is not None and snaps.panels:
        t1 = time.perf_counter()
        results["snapshot_panels"] = _snapshots(wd, snaps, ds.y, cfg.frozen, title)
        results["snapshot_seconds"] = round(time.perf_counter() - t1, 2)
    results |= {
        "n_clusters": cfg.n_clusters,
        "mode": mode,
        "target": cfg.target,
        "arch": spec["arch"],
        "pretrained": pretrained or str(wd / "autoencoder"),
        "n_iter": res.n_iter,
        "n_updates": res.n_updates,
        "converged": res.converged,
        **{f"init_{m}": v for m, v in common.label_metrics(ds.y, res.init_labels).items()},
    }
    if val is not None:
        results |= dec.generalizability(model, res.params, ds.x, val.x, cfg.alpha)
        labels = dec.predict_proba(model, res.params, val.x, cfg.alpha).argmax(1)
        results |= {f"validation_{m}": v for m, v in common.label_metrics(val.y, labels).items()}
    return results


def _figures(wd, res: dec.DECResult, title: str, seed: int) -> None:
    rows = runlog.MetricsLog(wd).rows()
    plots.training_curves([r for r in rows if r.get("stage") == "dec"], wd / "plots" / "training.png", title=title)
    centroids = np.asarray(res.params["centroids"])
    plots.embedding_pca(
        res.embedding, res.labels, wd / "plots" / "embedding.png", centroids_kd=centroids, title=title, seed=seed
    )


def _snapshots(wd, snaps: dec.Snapshots, y, frozen: bool, title: str) -> int:
    """plots/dec_snapshots.png from the recorded panels; the projected points join dec_snapshots.npz. Coloured
    by the true classes when known, else (and when frozen: only the centroids move) by each update's clusters.
    Returns the number of panels recorded."""
    points, centres = snaps.project()
    a = snaps.arrays()
    by_class = y is not None and not frozen
    # A run resumed with snapshots that its first invocation did not take has no pre-DEC panel.
    basis = "the pre-DEC ones" if a["steps"][0] == 0 else f"those at step {a['steps'][0]}"
    names = []
    for step, update, labels in zip(a["steps"], a["updates"], a["labels"]):
        acc = f", ACC {metrics.acc(y[snaps.index], labels):.3f}" if y is not None else ""
        names.append(f"update {update} (step {step}){acc}")
    plots.embedding_snapshots(
        points,
        y[snaps.index] if by_class else a["labels"],
        names,
        wd / "plots" / "dec_snapshots.png",
        centroids_pk2=centres,
        legend_title="class" if by_class else "cluster",
        title=f"{title}: {len(snaps.index)} codes on the first two principal axes of {basis} (x: centroids)",
    )
    snaps.save(snaps.path, points=points, centroid_points=centres)
    return len(points)


if __name__ == "__main__":
    common.run_main(main)
