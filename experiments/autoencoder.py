r"""Pretrains an autoencoder and saves it for later experiments (pretrain once, branch many ablations).

  python -m experiments.autoencoder --dataset=digits --epochs=50
  python -m experiments.autoencoder --flagfile=experiments/configs/autoencoder_mnist.flags --seed=0

The default workdir is checkpoints/autoencoder/<dataset>-<arch>[-<split>]-seed<seed>.

Writes into --workdir: config.json, metrics.jsonl (loss, samples/s, time left), ckpt/<stage>/ (Orbax; a run
started again with the same flags resumes from its last checkpoint and ends with the same bits), model/ (the
final params and what rebuilds the network), results.json and plots/reconstructions.png.

Other binaries import this module for its flags: with --pretrained=<workdir of this binary> they reuse that
autoencoder; without it they pretrain one into <their workdir>/autoencoder/ with these flags.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from experiments import common, features  # features: the --pretrained flag
from research import augment, data, metrics, nets, plots
from research import logging as runlog
from research.cluster import kmeans
from research.deep import pretrain
from research.deep import train as trainloop
from research.nets.mlp import KERNEL_INITS

FLAGS = flags.FLAGS
flags.DEFINE_string("arch", "dec", f"Autoencoder: one of {sorted(nets.PRESETS)}, or mlp:<w1>-...-<latent>.")
flags.DEFINE_string("activation", "relu", "Hidden activation: relu, elu, gelu, tanh or sigmoid.")
flags.DEFINE_enum(
    "weight_init",
    "glorot",
    list(KERNEL_INITS),
    "glorot (Keras), dec (N(0, 0.01)), lecun, fan_in_uniform (U(+-1/sqrt(fan_in)): Keras DEC's MNIST setting).",
)
flags.DEFINE_enum("loss", "mse", list(pretrain.LOSSES), "Reconstruction loss (bce reads the output as logits).")
flags.DEFINE_enum("optimizer", "adam", list(pretrain.OPTIMIZERS), "Optimizer.")
flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_integer("decay_every", 0, "Divide the learning rate by 10 every this many steps (0: never).")
flags.DEFINE_integer("batch_size", 256, "Minibatch size.")
flags.DEFINE_float("epochs", 200, "Epochs of end-to-end training (fine-tuning, after a layer-wise stage).")
flags.DEFINE_integer("layerwise_steps", 0, "> 0: DEC's greedy layer-wise denoising stage first, steps per layer.")
flags.DEFINE_float("dropout", 0.2, "Input and hidden dropout of the layer-wise denoising stage.")
flags.DEFINE_enum(
    "augment",
    "none",
    ["none", "affine"],
    "affine: every step reconstructs its batch randomly turned and moved (DEC-DA's pretraining; images only, "
    "end-to-end or fine-tuning stage). The codes used later are those of the original images.",
)
flags.DEFINE_float("augment_shift", 0.1, "--augment=affine: largest move, as a fraction of the image side.")
flags.DEFINE_float("augment_rotation", 10.0, "--augment=affine: largest rotation, in degrees.")
flags.DEFINE_integer("log_every", 0, "Steps between progress rows (0: one epoch).")
flags.DEFINE_integer("checkpoint_every", 0, "Steps between checkpoints (0: as --log_every).")
flags.DEFINE_integer(
    "cluster_every",
    0,
    "Every this many epochs (and at the end), k-means (10 restarts, K = the class count) on the codes of all the "
    "data, its ACC and NMI logged beside the loss and drawn in plots/clustering.png. Labelled data only; 0: never. "
    "Watches what the reconstruction loss does not tell: how well the codes cluster.",
)

AE_FLAGS = [
    "arch",
    "activation",
    "weight_init",
    "loss",
    "optimizer",
    "learning_rate",
    "momentum",
    "decay_every",
    "batch_size",
    "epochs",
    "layerwise_steps",
    "dropout",
]
# Recorded only when --augment is on, so the runs made before these flags existed still resume.
AUGMENT_FLAGS = ["augment", "augment_shift", "augment_rotation"]


def config(image_shape=None) -> pretrain.PretrainConfig:
    return pretrain.PretrainConfig(
        loss=FLAGS.loss,
        optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate,
        momentum=FLAGS.momentum,
        decay_every=FLAGS.decay_every,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        layerwise_steps=FLAGS.layerwise_steps,
        dropout=FLAGS.dropout,
        log_every=FLAGS.log_every,
        checkpoint_every=FLAGS.checkpoint_every,
        augment=augmenter(image_shape, FLAGS.augment != "none", f"--augment={FLAGS.augment}"),
    )


def augmenter(image_shape, on: bool, flag: str):
    """The random affine transform of --augment_shift / --augment_rotation when `on` (else None); `flag` names
    the switch in the error for data without an image shape. Shared with experiments/dec.py (--dec_augment)."""
    if not on:
        return None
    if image_shape is None:
        raise SystemExit(f"{flag} moves and turns images; this dataset has no image shape.")
    return augment.random_affine(image_shape, max_shift=FLAGS.augment_shift, max_rotation=FLAGS.augment_rotation)


def train(wd: Path, ds: data.Dataset, key) -> tuple:
    """Pretrains on ds.x into wd (resuming there); returns (model, params, spec, results). results.json last."""
    model = nets.build(
        FLAGS.arch, ds.x.shape[1], image_shape=ds.image_shape, activation=FLAGS.activation, init=FLAGS.weight_init
    )
    spec = {
        "arch": FLAGS.arch,
        "input_dim": int(ds.x.shape[1]),
        "image_shape": None if ds.image_shape is None else list(ds.image_shape),
        "activation": FLAGS.activation,
        "init": FLAGS.weight_init,
        "loss": FLAGS.loss,
        "dataset": ds.name,
        "split": FLAGS.split,
    }
    run_config = {**spec, **_ae_flags(), "seed": FLAGS.seed}
    t0 = time.perf_counter()
    probe = _cluster_probe(model, ds, key)
    params = pretrain.pretrain(key, model, ds.x, config(ds.image_shape), workdir=wd, config=run_config, on_chunk=probe)
    seconds = time.perf_counter() - t0
    pretrain.save_model(wd, spec, params, overwrite=True)
    x_hat = pretrain.reconstruct(model, params, ds.x, FLAGS.loss)
    mse = float(np.mean(np.square(x_hat - ds.x)))
    test_mse = _test_mse(model, params, ds) if FLAGS.split == "train" else None
    if ds.image_shape is not None:
        plots.reconstructions(ds.x, x_hat, ds.image_shape, wd / "plots" / "reconstructions.png", seed=FLAGS.seed)
    rows = [r for r in runlog.MetricsLog(wd).rows() if "samples_per_s" in r]
    if probe is not None:
        curves = ("kmeans_acc", "kmeans_nmi")
        plots.training_curves(
            rows, wd / "plots" / "clustering.png", metrics=curves, title=f"k-means on the codes, {ds.name}"
        )
    results = {
        "dataset": ds.name,
        "split": FLAGS.split,
        "seed": FLAGS.seed,
        "n_samples": int(ds.x.shape[0]),
        "reconstruction_mse": mse,
        "test_reconstruction_mse": test_mse,
        "final_loss": rows[-1]["loss"] if rows else None,
        "samples_per_s": float(np.median([r["samples_per_s"] for r in rows])) if rows else None,
        "train_seconds_this_invocation": seconds,
        "n_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
    }
    if probe is not None:  # the codes' k-means scores at the last step
        results |= {m: rows[-1].get(m) for m in curves} if rows else {}
    runlog.write_json(wd / "results.json", {**results, "versions": runlog.versions()})
    logging.info("autoencoder %s: reconstruction mse %.5f -> %s", FLAGS.arch, mse, wd)
    return model, params, spec, results


def _cluster_probe(model, ds: data.Dataset, key):
    """The `on_chunk` hook of --cluster_every: k-means ACC / NMI of the codes every that many epochs."""
    if FLAGS.cluster_every <= 0:
        return None
    if ds.y is None:
        raise SystemExit(f"--cluster_every needs labels to score against; {ds.name} has none (set it to 0).")
    every = trainloop.steps_for(FLAGS.cluster_every, ds.x.shape[0], FLAGS.batch_size)
    last = trainloop.steps_for(FLAGS.epochs, ds.x.shape[0], FLAGS.batch_size)
    k, probe_key = common.n_clusters(ds, None), jax.random.fold_in(key, 7)
    due = [every]  # the next step to probe at (progress rows need not fall on multiples of `every`)

    def probe(state) -> dict:
        step = int(state.step)
        if step < due[0] and step != last:
            return {}
        due[0] = (step // every + 1) * every
        codes = pretrain.encode(model, state.params, ds.x)
        labels = np.asarray(kmeans.fit(probe_key, codes, k, n_init=10).labels)
        return {"kmeans_acc": round(metrics.acc(ds.y, labels), 4), "kmeans_nmi": round(metrics.nmi(ds.y, labels), 4)}

    return probe


def _test_mse(model, params, ds: data.Dataset) -> float | None:
    """Reconstruction MSE on the dataset's test split (for a model trained on its train split), if it has one."""
    try:
        test = data.load(FLAGS.dataset, "test", FLAGS.data_dir, label_column=FLAGS.label_column)
    except (ValueError, FileNotFoundError):
        return None
    return float(np.mean(np.square(pretrain.reconstruct(model, params, test.x, FLAGS.loss) - test.x)))


def _ae_flags() -> dict:
    names = AE_FLAGS + (AUGMENT_FLAGS if FLAGS.augment != "none" else [])
    return {k: getattr(FLAGS, k) for k in names}


def obtain(wd: Path, ds: data.Dataset, key) -> tuple:
    """(model, params, spec): from --pretrained, else pretrained now into <wd>/autoencoder/ (reused if finished)."""
    if FLAGS.pretrained:
        return features.load_encoder(FLAGS.pretrained, input_dim=ds.x.shape[1], dataset=ds.name)
    ae_dir = wd / "autoencoder"
    if (ae_dir / "config.json").exists():
        stored = runlog.read_json(ae_dir / "config.json")
        current = {k: getattr(FLAGS, k) for k in AE_FLAGS + AUGMENT_FLAGS}
        differ = sorted(k for k, v in current.items() if stored.get(k, FLAGS[k].default) != v)
        if differ:
            raise SystemExit(
                f"{ae_dir} holds an autoencoder trained with other settings ({', '.join(differ)}). Use another "
                "--workdir, point --pretrained at a matching autoencoder, or delete that folder yourself."
            )
        if (ae_dir / "results.json").exists():
            logging.info("reusing the autoencoder pretrained earlier in %s", ae_dir)
            return pretrain.load_model(ae_dir)
    runlog.write_json(ae_dir / "config.json", {"experiment": "autoencoder", **common.flag_values()})
    return train(ae_dir, ds, key)[:3]


def main(argv):
    del argv
    if FLAGS.pretrained:
        raise SystemExit("--pretrained is for binaries that reuse an autoencoder; this one trains one.")
    # Architectures and splits of one dataset and seed get their own default workdirs.
    suffix = ("" if FLAGS.split == "all" else f"-{FLAGS.split}") + (
        "" if FLAGS.augment == "none" else f"-{FLAGS.augment}"
    )
    wd = common.prepare_workdir("autoencoder", FLAGS.arch + suffix)
    ds = common.load_dataset()
    _, _, _, results = train(wd, ds, common.root_key())
    common.finish(
        wd,
        results,
        f"autoencoder {FLAGS.arch} {ds.name}/{FLAGS.split}: reconstruction mse={results['reconstruction_mse']:.5f} "
        f"{results['samples_per_s'] or 0:.0f} samples/s -> {wd}",
    )


if __name__ == "__main__":
    app.run(main)
