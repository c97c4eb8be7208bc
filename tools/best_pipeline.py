"""Writes results/best_pipeline_mnist.{md,csv}: the best recipe (experiments/configs/best.flags) through
experiments.pipeline, one run per seed, with stage 3 (self-labelling) on, scoring stage 2's labels (the mixture)
and stage 3's side by side; and DEC-DA on the same seed's autoencoder, run until its labels settle (--tol) rather
than stopped at DEC's 20000-step cap.

  python tools/best_pipeline.py --commands        # the runs (a pipeline about 30 minutes on one core here)
  python tools/best_pipeline.py [--seeds=0,1,2,3,4] [--root=checkpoints]

It reads <root>/pipeline/mnist-seed<S>/{manifold,selftrain}/results.json and
<root>/dec/mnist-affine-da-maxiter100k-seed<S>/results.json; the autoencoders sit in
<root>/autoencoder/mnist-dec-adam-fanin-affine100-seed<S>, where reproduce's top row and DEC-DA find them.
"""

from __future__ import annotations

import json
from pathlib import Path

import common

from research import report

ROUNDS = 8


MAX_ITER = 100_000  # DEC-DA's cap here: 5x DEC's, so the labels settle first


def _ae(seed: int, root: Path) -> Path:
    return root / "autoencoder" / f"mnist-dec-adam-fanin-affine100-seed{seed}"


def _decda(seed: int, root: Path) -> Path:
    return root / "dec" / f"mnist-affine-da-maxiter{MAX_ITER // 1000}k-seed{seed}"


def commands(seed: int, root: Path) -> list[str]:
    """The seed's pipeline run (it pretrains the autoencoder), then DEC-DA on that autoencoder."""
    return [
        (
            "python -m experiments.pipeline --flagfile=experiments/configs/best.flags --dataset=mnist "
            f"--seed={seed} --selftrain_rounds={ROUNDS} --autoencoder_workdir={_ae(seed, root)}"
        ),
        (
            "python -m experiments.dec --flagfile=experiments/configs/dec_mnist.flags --augment=affine "
            f"--seed={seed} --max_iter={MAX_ITER} --pretrained={_ae(seed, root)} --workdir={_decda(seed, root)}"
        ),
    ]


def main(argv=None) -> None:
    parser = common.parser(__doc__, root="checkpoints", out="results/best_pipeline_mnist")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds whose runs to read")
    args = parser.parse_args(argv)
    root, seeds = Path(args.root), [int(s) for s in args.seeds.split(",")]
    if args.commands:
        print("\n".join(c for s in seeds for c in commands(s, root)))
        return
    rows = []
    for s in seeds:
        wd, da = root / "pipeline" / f"mnist-seed{s}", _decda(s, root)
        if not (wd / "results.json").is_file():
            raise SystemExit(f"{wd} holds no finished run; make it with: {commands(s, root)[0]}")
        top = json.loads((wd / "results.json").read_text())
        if "selftrain" not in top["stages"]:
            raise SystemExit(f"{wd} ran without stage 3; rerun it with: {commands(s, root)[0]}")
        dec = json.loads((da / "results.json").read_text()) if (da / "results.json").is_file() else None
        two = json.loads((wd / "manifold" / "results.json").read_text())
        row = {"seed": s, **{f"{m}_mixture": two[m] for m in ("acc", "nmi", "ari")}}
        row |= {m: top[m] for m in ("acc", "nmi", "ari")}
        row |= {f"{name}_s": stage["seconds"] for name, stage in top["stages"].items()}
        if dec is not None:  # a seed whose DEC-DA run has not finished shows "-" there
            row |= {"decda_acc": dec["acc"], "decda_nmi": dec["nmi"], "decda_steps": dec["n_iter"]}
            row |= {"decda_settled": dec["converged"], "decda_start_acc": dec["init_acc"]}
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
        ("DEC-DA k-means start ACC", "decda_start_acc", ".4f"),
        ("DEC-DA ACC", "decda_acc", ".4f"),
        ("DEC-DA NMI", "decda_nmi", ".4f"),
        ("DEC-DA steps", "decda_steps"),
        ("DEC-DA settled", "decda_settled"),
    ]
    lines = ["| after | ACC | ACC min / median / max | NMI |", "|---|---|---|---|"]
    for name, acc, nmi in (
        ("stage 2 (the mixture)", "acc_mixture", "nmi_mixture"),
        (f"stage 3 ({ROUNDS} rounds)", "acc", "nmi"),
        (f"DEC-DA, up to {MAX_ITER} steps", "decda_acc", "decda_nmi"),
    ):
        done = [r for r in rows if acc in r]
        if len(done) < len(rows):
            name += f" (seeds {','.join(str(r['seed']) for r in done)})"
        accs, nmis = [r[acc] for r in done], [r[nmi] for r in done]
        if done:
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
        "The best recipe and DEC-DA on the same autoencoders. The best recipe from raw MNIST-70k pixels (experiments/configs/best.flags: an autoencoder pretrained on "
        "moved and turned images, then the neighbour embedding of its codes and a 30-restart GMM) with stage 3 "
        f"on: {ROUNDS} rounds of self-labelling from the samples whose code-space neighbours agree. No labels are "
        "read but to score. DEC-DA (experiments.dec --augment=affine, DEC's settings) on each seed's autoencoder, "
        f"stopped when fewer than 0.1% of the labels change between updates (settled) or at {MAX_ITER} steps."
    )
    report.write_table(rows, columns, Path(args.out), caption=caption, notes=notes)


if __name__ == "__main__":
    main()
