r"""Pretrains an autoencoder and saves it for later experiments (pretrain once, branch many ablations).

  python -m experiments.autoencoder --dataset=digits --epochs=50
  python -m experiments.autoencoder --flagfile=experiments/configs/autoencoder_mnist.flags --seed=0

Default workdir: checkpoints/autoencoder/<dataset>-<arch>[-<split>][-<augment>]-seed<seed>. Writes config.json,
metrics.jsonl (eval_loss on a held-out split with --eval_split), ckpt/<stage>/ (Orbax; the same flags resume to
the same bits), model/ (what --pretrained=<this workdir> reuses), results.json and plots/reconstructions.png
(loss.png with --eval_split, augment_preview.png with --augment). The stage itself lives in experiments/stages.py,
shared with the binaries that pretrain first (their flags: --ae_arch, --ae_epochs, ...).
"""

from __future__ import annotations

from absl import flags

from experiments import common, features, stages  # noqa: F401 (features defines --pretrained)

FLAGS = flags.FLAGS
stages.define_autoencoder_flags()
stages.define_tensorboard_flag()


def main(argv):
    del argv
    if FLAGS.pretrained:
        raise SystemExit("--pretrained is for binaries that reuse an autoencoder; this one trains one.")
    cfg = stages.autoencoder_config()
    # Architectures, splits and augmentations of one dataset and seed get their own default workdirs.
    split = "" if FLAGS.split == "all" else f"-{FLAGS.split}"
    augmented = "" if cfg.augment == "none" else f"-{cfg.augment}"
    run = common.run_config("autoencoder", cfg.arch + split + augmented)
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    _, _, _, results = stages.train_autoencoder(run, wd, ds, cfg, FLAGS.tensorboard)
    common.finish(
        run,
        results,
        f"autoencoder {cfg.arch} {ds.name}/{run.split}: reconstruction mse={results['reconstruction_mse']:.5f} "
        f"{results['samples_per_s'] or 0:.0f} samples/s -> {wd}",
    )


if __name__ == "__main__":
    common.run_main(main)
