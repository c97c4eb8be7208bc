"""Writes results/selftrain_codes.{md,csv}: self-labelling (research.deep.selftrain) after manifold_cluster on an
autoencoder's codes, on the finished runs of the robustness study (tools/robustness.py --study=deep).

  python tools/selftrain_codes.py [--root=checkpoints/robustness] [--seeds=0,1,2] [--data_dir=...]

Per seed it reads <root>/ae-seed<S> (the autoencoder) and <root>/codes-base-seed<S>/labels.npy (the mixture's
labels), keeps the samples whose 19 nearest neighbours in code space all share their label, and self-trains the
encoder with a softmax head on moved and turned views of them (Adam 1e-3, 10 epochs a round) for 8 rounds,
scoring each round's labels. The true labels only score the result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import common
import jax
import numpy as np

from research import augment, data, metrics, report
from research.deep import pretrain, selftrain

ROUNDS = 8


def main(argv=None) -> None:
    parser = common.parser(__doc__, root="checkpoints/robustness", out="results/selftrain_codes", commands=False)
    parser.add_argument("--seeds", default="0,1,2", help="seeds whose runs to read")
    args = parser.parse_args(argv)
    root, seeds = Path(args.root), [int(s) for s in args.seeds.split(",")]
    ds = data.load("mnist", "all", args.data_dir)
    aug = augment.random_affine((28, 28), max_shift=0.1, max_rotation=10.0)
    rows = []
    for s in seeds:
        run = root / f"codes-base-seed{s}"
        if not (run / "results.json").is_file():
            raise SystemExit(f"{run} holds no finished run; make it with tools/robustness.py --study=deep --commands")
        labels = np.load(run / "labels.npy")
        model, params, _ = pretrain.load_model(root / f"ae-seed{s}")
        conf = selftrain.neighbour_agreement(pretrain.encode(model, params, ds.x), labels, k=20)
        kept = conf >= 0.99
        base = {"seed": s, "mixture_acc": metrics.acc(ds.y, labels), "kept_fraction": float(kept.mean())}
        base["kept_acc"] = metrics.acc(ds.y[kept], labels[kept])
        cfg = selftrain.SelfTrainConfig(rounds=ROUNDS, epochs=10, learning_rate=1e-3, augment=aug)
        t0 = time.perf_counter()

        def score(r, got, base=base, t0=t0):
            row = base | {"round": r + 1, "seconds": time.perf_counter() - t0}
            row |= {"acc": metrics.acc(ds.y, got), "nmi": metrics.nmi(ds.y, got)}
            rows.append(row)
            print(json.dumps(row), flush=True)

        res = selftrain.fit(jax.random.key(s), model, params, ds.x, labels, conf, cfg, on_round=score)
        for row, h in zip(rows[-ROUNDS:], res.history):
            row |= {"kept_this_round": h["kept_fraction"], "changed": h["changed"]}
    columns = [
        ("seed", "seed"),
        ("round", "round"),
        ("mixture ACC", "mixture_acc", ".4f"),
        ("ACC of the first kept", "kept_acc", ".4f"),
        ("kept this round", "kept_this_round", ".3f"),
        ("self-trained ACC", "acc", ".4f"),
        ("NMI", "nmi", ".4f"),
        ("labels changed", "changed", ".4f"),
        ("s so far", "seconds", ".1f"),
    ]
    lines = ["| rounds | ACC min / median / max | gain over the mixture: min / median / max |", "|---|---|---|"]
    for r in range(1, ROUNDS + 1):
        rs = [row for row in rows if row["round"] == r]
        gains = [row["acc"] - row["mixture_acc"] for row in rs]
        lines.append(f"| {r} | {report.spread([row['acc'] for row in rs])} | {report.spread(gains)} |")
    mixture = report.spread([row["mixture_acc"] for row in rows if row["round"] == 1])
    notes = [
        f"Over seeds {args.seeds} (the mixture alone: {mixture}):\n\n" + "\n".join(lines),
        f"Command: `python tools/selftrain_codes.py --seeds={args.seeds}`.",
        f"Machine: {report.machine()}.",
    ]
    caption = (
        "Self-labelling after manifold_cluster on MNIST-70k codes (the robustness study's 50-epoch autoencoders and "
        "base runs): the samples whose 19 code-space neighbours all share their cluster are kept, and the encoder "
        "with a softmax head is trained on moved and turned views of them, 10 epochs a round, 8 rounds (each round's "
        "kept samples: those the network gives 0.99 or more)."
    )
    report.write_table(rows, columns, Path(args.out), caption=caption, notes=notes)


if __name__ == "__main__":
    main()
