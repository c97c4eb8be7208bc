"""Writes results/notes_autoencoders.{md,csv}: the notes' autoencoders trained on MNIST, and k-means on the codes.

  python tools/notes_autoencoders_table.py [--root=checkpoints] [--out=results/notes_autoencoders]
  python tools/notes_autoencoders_table.py --commands    # prints the runs' commands (run them first)

Reads the finished runs of RUNS and KMEANS from their workdirs under --root: the dense 784-784-64-784 and the
convolutional autoencoder, each with relu and with elu (10 epochs on the 60k training images), the first note's
784-200-784 (Adadelta, binary cross-entropy, 100 epochs, validation loss on the test split every epoch), and
k-means (10 restarts) on the convolutional autoencoder's codes of the 10k test images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from research import report

AE = "autoencoder"
# (network, flagfile under experiments/configs, workdir under the root, the notes' test MSE for this network)
RUNS = (
    ("dense 784-784-64-784", "notes_dense_relu", "mnist-dense784-64-relu-train-seed0", None),
    ("dense 784-784-64-784", "notes_dense_elu", "mnist-dense784-64-elu-train-seed0", None),
    ("conv 32/64 filters, 2x2 stride 2", "notes_conv_relu", "mnist-cae32-64k2-relu-train-seed0", "0.0188"),
    ("conv 32/64 filters, 2x2 stride 2", "notes_conv_elu", "mnist-cae32-64k2-elu-train-seed0", "0.0052"),
    ("dense 784-200-784", "notes_dense200_adadelta", "mnist-dense200-train-seed0", None),
)
# k-means on the test images: (what, workdir under the root, the encoder's workdir under root/autoencoder or None)
KMEANS = (
    ("codes of conv elu", "kmeans/mnist-test-cae32-64k2-elu-codes-seed0", "mnist-cae32-64k2-elu-train-seed0"),
    ("pixels", "kmeans/mnist-test-pixels-seed0", None),
)
NOTE = (
    "cae32-64k2 keeps the whole 7x7x64 map as its code (3136 values for 784 pixels: no bottleneck), so it nearly "
    "copies its input: 16 (elu) and 67 (relu) times below the notes' figures. The project's `cae` (3x3 kernels, a 64-d dense "
    "code) reaches 0.00208 with elu (results/mnist_autoencoders.md), also below 0.0052: the notes' network or "
    "training must differ in something they do not record. k-means (10 restarts, K = 10) on the 10k test images "
    "clusters these codes no better than the pixels:"
)


def commands(root: str) -> list[str]:
    """The command lines that make the runs this table reads."""
    out = [
        f"python -m experiments.autoencoder --flagfile=experiments/configs/{flags}.flags --seed=0 "
        f"--workdir={root}/{AE}/{workdir}"
        for _, flags, workdir, _ in RUNS
    ]
    for _, km, encoder in KMEANS:
        codes = f"--pretrained={root}/{AE}/{encoder} " if encoder else ""
        out.append(
            f"python -m experiments.kmeans --dataset=mnist --split=test --n_init=10 --seed=0 {codes}--workdir={root}/{km}"
        )
    return out


def _read(path: Path) -> dict:
    if not path.is_file():
        sys.exit(f"error: {path} is missing; run its command first (python {__file__} --commands).")
    return json.loads(path.read_text())


def ae_row(network: str, flags: str, wd: Path, notes: str | None) -> dict:
    """One row from an autoencoder run's config.json and results.json."""
    cfg, res = _read(wd / "config.json"), _read(wd / "results.json")
    bce = cfg["loss"] == "bce"
    return {
        "network": network,
        "arch": cfg["arch"],
        "activation": cfg["activation"],
        "output": cfg.get("output_activation", "auto"),
        "optimizer": f"{cfg['optimizer']} lr {cfg['learning_rate']:g}",
        "loss": cfg["loss"],
        "batch": cfg["batch_size"],
        "epochs": cfg["epochs"],
        "test_mse": res["test_reconstruction_mse"],
        "test_bce": res.get("test_loss") if bce else None,
        "notes_test_mse": notes,
        "train_mse": res["reconstruction_mse"],
        "n_params": res["n_params"],
        "train_seconds": res["train_seconds_this_invocation"],
        "samples_per_s": res["samples_per_s"],
        "flagfile": f"experiments/configs/{flags}.flags",
        "jax": res["versions"]["jax"],
    }


def kmeans_row(root: Path, what: str, km: str, encoder: str | None) -> dict:
    res = _read(root / km / "results.json")
    return {
        "network": f"k-means on the {what}",
        "encoder": f"{AE}/{encoder}" if encoder else None,
        "split": res.get("split"),
        "n_features": res.get("n_features"),
        **{m: res.get(m) for m in ("acc", "nmi", "ari")},
        "fit_seconds": res.get("fit_seconds"),
        "jax": res["versions"]["jax"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="checkpoints")
    parser.add_argument("--out", default="results/notes_autoencoders")
    parser.add_argument("--commands", action="store_true", help="print the runs' commands and exit")
    args = parser.parse_args()
    if args.commands:
        print("\n".join(commands(args.root)))
        return
    root = Path(args.root)
    rows = [ae_row(net, flags, root / AE / wd, notes) for net, flags, wd, notes in RUNS]
    km = [kmeans_row(root, *k) for k in KMEANS]
    columns = [
        ("network (preset)", lambda r: f"{r['network']} ({r['arch']})"),
        ("activation", "activation"),
        ("optimizer", "optimizer"),
        ("loss", "loss"),
        ("batch", "batch"),
        ("epochs", "epochs", "g"),
        ("test MSE", "test_mse", ".5f"),
        ("the notes' test MSE", "notes_test_mse"),
        ("test BCE", "test_bce", ".4f"),
        ("train s", "train_seconds", ".0f"),
        ("samples/s", "samples_per_s", ".0f"),
        ("params", "n_params"),
    ]
    km_table = report.markdown_table(
        km,
        [
            ("clustered", "network"),
            ("features", "n_features"),
            ("split", "split"),
            ("ACC", "acc", ".4f"),
            ("NMI", "nmi", ".4f"),
            ("ARI", "ari", ".4f"),
            ("fit s", "fit_seconds", ".1f"),
        ],
    )
    report.write_table(
        rows,
        columns,
        args.out,
        caption=(
            "The notes' autoencoders on MNIST (pixels in [0, 1]; trained on the 60k training images, seed 0; test: "
            "the 10k test images; MNIST from $JAXCLUSTER_DATA). Every network has a sigmoid output. The notes report their test MSE for the "
            "convolutional network only (0.0188 with relu, 0.0052 with elu); the dense rows have no figure of "
            "theirs to stand beside. Table: `python tools/notes_autoencoders_table.py`; each run's flagfile is "
            "experiments/configs/notes_*.flags (commands: `python tools/notes_autoencoders_table.py --commands`)."
        ),
        notes=[
            NOTE,
            "\n".join(km_table),
            "Commands:\n\n" + "\n".join(f"    {c}" for c in commands(args.root)),
            f"Machine: {report.machine()}. Times are of runs sharing the 2 cores with other work.",
        ],
        csv_rows=[*rows, *km],
    )


if __name__ == "__main__":
    main()
