"""Writes results/selftrain_codes.{md,csv}: self-labelling (research.deep.selftrain) after manifold_cluster on an
autoencoder's codes, on the finished runs of the robustness study (tools/robustness.py --study=deep).

  python tools/selftrain_codes.py [--root=checkpoints/robustness] [--seeds=0,1,2] [--data_dir=...]

Per seed it reads <root>/ae-seed<S> (the autoencoder) and <root>/codes-base-seed<S>/labels.npy (the mixture's
labels), keeps the samples whose 19 nearest neighbours in code space all share their label, and self-trains the
encoder with a softmax head on moved and turned views of them (Adam 1e-3, 10 epochs a round), for 1 and for 3
rounds. The true labels only score the result.
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

SETTINGS = {"1 round": 1, "3 rounds": 3}


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
        for name, rounds in SETTINGS.items():
            cfg = selftrain.SelfTrainConfig(rounds=rounds, epochs=10, learning_rate=1e-3, augment=aug)
            t0 = time.perf_counter()
            res = selftrain.fit(jax.random.key(s), model, params, ds.x, labels, conf, cfg)
            row = base | {"setting": name, "seconds": time.perf_counter() - t0}
            row |= {"acc": metrics.acc(ds.y, res.labels), "nmi": metrics.nmi(ds.y, res.labels)}
            row["changed_last_round"] = res.history[-1]["changed"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    columns = [
        ("seed", "seed"),
        ("setting", "setting"),
        ("mixture ACC", "mixture_acc", ".4f"),
        ("kept", "kept_fraction", ".3f"),
        ("ACC of the kept", "kept_acc", ".4f"),
        ("self-trained ACC", "acc", ".4f"),
        ("NMI", "nmi", ".4f"),
        ("labels changed, last round", "changed_last_round", ".4f"),
        ("s", "seconds", ".1f"),
    ]
    gains = {name: [r["acc"] - r["mixture_acc"] for r in rows if r["setting"] == name] for name in SETTINGS}
    notes = [
        "ACC gain over the mixture, min / median / max over the seeds: "
        + "; ".join(f"{name}: {report.spread(g)}" for name, g in gains.items())
        + ".",
        f"Command: `python tools/selftrain_codes.py --seeds={args.seeds}`.",
        f"Machine: {report.machine()}.",
    ]
    caption = (
        "Self-labelling after manifold_cluster on MNIST-70k codes (the robustness study's 50-epoch autoencoders and "
        "base runs): the samples whose 19 code-space neighbours all share their cluster are kept, and the encoder "
        "with a softmax head is trained on moved and turned views of them, 10 epochs a round."
    )
    report.write_table(rows, columns, Path(args.out), caption=caption, notes=notes)


if __name__ == "__main__":
    main()
