"""Writes results/best_pipeline_mnist.{md,csv}: the best recipe (experiments/configs/best.flags) through
experiments.pipeline, one run per seed, with stage 3 (self-labelling) on, scoring stage 2's labels (the mixture)
and stage 3's side by side.

  python tools/best_pipeline.py --commands        # the runs' commands (each about 30 minutes on one core here)
  python tools/best_pipeline.py [--seeds=0,1,2,3,4] [--root=checkpoints]

It reads <root>/pipeline/mnist-seed<S>/{manifold,selftrain}/results.json; the autoencoders sit in
<root>/autoencoder/mnist-dec-adam-fanin-affine100-seed<S>, where reproduce's top row and DEC-DA find them.
"""

from __future__ import annotations

import json
from pathlib import Path

import common

from research import report

ROUNDS = 8


def command(seed: int, root: Path) -> str:
    return (
        "python -m experiments.pipeline --flagfile=experiments/configs/best.flags --dataset=mnist "
        f"--seed={seed} --selftrain_rounds={ROUNDS} "
        f"--autoencoder_workdir={root / 'autoencoder' / f'mnist-dec-adam-fanin-affine100-seed{seed}'}"
    )


def main(argv=None) -> None:
    parser = common.parser(__doc__, root="checkpoints", out="results/best_pipeline_mnist")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds whose runs to read")
    args = parser.parse_args(argv)
    root, seeds = Path(args.root), [int(s) for s in args.seeds.split(",")]
    if args.commands:
        print("\n".join(command(s, root) for s in seeds))
        return
    rows = []
    for s in seeds:
        wd = root / "pipeline" / f"mnist-seed{s}"
        if not (wd / "results.json").is_file():
            raise SystemExit(f"{wd} holds no finished run; make it with: {command(s, root)}")
        top = json.loads((wd / "results.json").read_text())
        if "selftrain" not in top["stages"]:
            raise SystemExit(f"{wd} ran without stage 3; rerun it with: {command(s, root)}")
        two = json.loads((wd / "manifold" / "results.json").read_text())
        row = {"seed": s, **{f"{m}_mixture": two[m] for m in ("acc", "nmi", "ari")}}
        row |= {m: top[m] for m in ("acc", "nmi", "ari")}
        row |= {f"{name}_s": stage["seconds"] for name, stage in top["stages"].items()}
        rows.append(row)
    columns = [
        ("seed", "seed"),
        ("stage 2 ACC", "acc_mixture", ".4f"),
        ("stage 2 NMI", "nmi_mixture", ".4f"),
        ("stage 3 ACC", "acc", ".4f"),
        ("stage 3 NMI", "nmi", ".4f"),
        ("stage 3 ARI", "ari", ".4f"),
        ("stage 1 s", "autoencoder_s", ".0f"),
        ("stage 2 s", "manifold_s", ".0f"),
        ("stage 3 s", "selftrain_s", ".0f"),
    ]
    lines = ["| after | ACC | ACC min / median / max | NMI |", "|---|---|---|---|"]
    for name, key in (("stage 2 (the mixture)", "_mixture"), (f"stage 3 ({ROUNDS} rounds)", "")):
        accs, nmis = [r[f"acc{key}"] for r in rows], [r[f"nmi{key}"] for r in rows]
        lines.append(f"| {name} | {report.mean_std(accs)} | {report.spread(accs)} | {report.mean_std(nmis)} |")
    gains = [r["acc"] - r["acc_mixture"] for r in rows]
    notes = [
        f"Over seeds {args.seeds}:\n\n" + "\n".join(lines),
        f"Stage 3's gain in ACC over stage 2, min / median / max: {report.spread(gains)}.",
        (
            "Commands: `python tools/best_pipeline.py --commands` prints each seed's run; "
            f"`python tools/best_pipeline.py --seeds={args.seeds}` writes this table."
        ),
        "Stage seconds: each run pinned to one core of the two, the other core busy with another seed's run.",
        f"Machine: {report.machine()}.",
    ]
    caption = (
        "The best recipe from raw MNIST-70k pixels (experiments/configs/best.flags: an autoencoder pretrained on "
        "moved and turned images, then the neighbour embedding of its codes and a 30-restart GMM) with stage 3 "
        f"on: {ROUNDS} rounds of self-labelling from the samples whose code-space neighbours agree. No labels are "
        "read but to score."
    )
    report.write_table(rows, columns, Path(args.out), caption=caption, notes=notes)


if __name__ == "__main__":
    main()
