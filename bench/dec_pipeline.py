r"""The whole DEC pipeline, autoencoder pretraining included, timed as one run of the binary.

  JAXCLUSTER_DATA=../shared/datasets python -m bench.dec_pipeline              # MNIST-70k, the paper setting
  python -m bench.dec_pipeline --dataset=digits --ae_epochs=1 --max_iter=50 --out=/tmp/dec_pipeline   # a look

Runs `python -m experiments.dec` without --pretrained, so it pretrains first: the settings of
experiments/configs/autoencoder_mnist_keras_dec.flags as --ae_* flags (d-500-500-2000-10, SGD lr 1 momentum
0.9, batch 256, --ae_epochs), then DEC with experiments/configs/dec_mnist.flags. Reported from its results.json
files: the binary's wall seconds (all of it: loading, pretraining, k-means, DEC), the pretraining seconds and
samples/s, DEC's fit seconds and steps, ACC and NMI. Writes <out>.md and .csv (default results/dec_pipeline).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common

FLAGFILE = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "dec_mnist.flags"
# experiments/configs/autoencoder_mnist_keras_dec.flags, as the pretraining stage's flags (--epochs apart).
PRETRAIN = [
    "--ae_arch=dec",
    "--ae_activation=relu",
    "--ae_weight_init=fan_in_uniform",
    "--ae_loss=mse",
    "--ae_optimizer=sgd",
    "--ae_learning_rate=1.0",
    "--ae_momentum=0.9",
    "--ae_batch_size=256",
]


def command(args, workdir: Path) -> list[str]:
    """The experiments.dec command line of this run."""
    cmd = [sys.executable, "-m", "experiments.dec", f"--flagfile={FLAGFILE}", f"--dataset={args.dataset}"]
    cmd += [f"--seed={args.seed}", f"--workdir={workdir}", "--overwrite", *PRETRAIN, f"--ae_epochs={args.ae_epochs}"]
    cmd += [f"--max_iter={args.max_iter}"] + ([f"--data_dir={args.data_dir}"] if args.data_dir else [])
    return cmd


def main():
    ap = common.parser(__doc__, "results/dec_pipeline", repeats=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ae_epochs", type=float, default=300, help="pretraining epochs (the Keras DEC setting: 300)")
    ap.add_argument("--max_iter", type=int, default=20000, help="DEC steps at most (dec_mnist.flags: 20000)")
    ap.add_argument("--workdir", default=None, help="keep the run here (default: a temporary folder)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="dec_pipeline_") as tmp:
        workdir = Path(args.workdir or tmp)
        cmd = command(args, workdir)
        print(" ".join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)  # its output goes to ours
        seconds = time.perf_counter() - t0
        dec = json.loads((workdir / "results.json").read_text())
        ae = json.loads((workdir / "autoencoder" / "results.json").read_text())
    row = {
        "dataset": dec["dataset"],
        "n_samples": dec["n_samples"],
        "wall_seconds": dec["wall_seconds_this_invocation"],
        "process_seconds": round(seconds, 1),
        "pretrain_seconds": round(ae["train_seconds_this_invocation"], 1),
        "pretrain_samples_per_s": ae["samples_per_s"],
        "ae_epochs": args.ae_epochs,
        "dec_fit_seconds": round(dec["fit_seconds_this_invocation"], 1),
        "dec_steps": dec["n_iter"],
        "acc": dec["acc"],
        "nmi": dec["nmi"],
    }
    caption = (
        f"The whole DEC pipeline on {common.data_name(dec['dataset'])} ({dec['n_samples']} samples), seed {args.seed}, "
        f"one run of experiments.dec: pretraining (the Keras DEC setting, {args.ae_epochs:g} epochs) then DEC "
        "(dec_mnist.flags). Wall: the binary's own count (results.json), from its start to its results."
    )
    common.write_table([row], COLUMNS, args.out, "bench.dec_pipeline", caption=caption)


COLUMNS = [
    ("dataset", "dataset"),
    ("wall s", "wall_seconds", ".1f"),
    ("pretraining s", "pretrain_seconds", ".1f"),
    ("pretraining samples/s", "pretrain_samples_per_s", ".0f"),
    ("DEC fit s", "dec_fit_seconds", ".1f"),
    ("DEC steps", "dec_steps"),
    ("ACC", "acc", ".4f"),
    ("NMI", "nmi", ".4f"),
]


if __name__ == "__main__":
    main()
