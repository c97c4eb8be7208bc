r"""Gathers finished runs into tables, mean and spread over seeds, beside the published figures.

  python -m experiments.collect --dataset=mnist
  python -m experiments.collect --dataset=mnist --root=checkpoints --out=results/mnist

Reads every <root>/<experiment>/<name>-seed<s>/results.json of --dataset on the `all` split (the runs'
default workdirs; pass --root to read another tree), groups the seeds of one setting (the workdir name
without its seed), and writes <out>_clustering.csv (one row per run) and .md (one row per setting: ACC, NMI, ARI as
mean ± standard deviation over its seeds, and what the papers report for that method on the dataset).
Finished experiments.autoencoder runs of the dataset (any split) go to <out>_autoencoders.csv and .md: their
reconstruction MSE on the data they trained on and, for --split=train, on the test split.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from absl import app, flags

from research import report

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "mnist", "The dataset whose runs are gathered (as the runs' --dataset).")
flags.DEFINE_string("root", "checkpoints", "The tree of run workdirs: <root>/<experiment>/<name>-seed<s>/.")
flags.DEFINE_string(
    "out", None, "Prefix of the tables: <out>_clustering and <out>_autoencoders. Default: results/<dataset>."
)

# What the papers report on MNIST-70k, by experiment: (ACC %, source).
PUBLISHED = {
    "mnist": {
        "kmeans": ("53.49", "DEC paper (Xie et al. 2016), Table 2"),
        "ae_kmeans": (
            "81.84",
            (
                "DEC paper, Table 3; 87.93 is the mean of 10 trials of the Keras DEC reimplementation, "
                "autoencoder pretrained by SGD (DEC-keras, results/exp1/results.csv)"
            ),
        ),
        "dec": ("84.30", "DEC paper, Table 2; 91.20 the Keras DEC reimplementation's 10-trial mean"),
        "dec mode=frozen": ("79.82", "DEC paper, Table 2: DEC w/o backprop"),
        "dec mode=dec-da": ("98.5", "DEC-DA (Guo et al. 2018): their best variant, as their code's README reports"),
        "idec": ("88.06", "IDEC paper (Guo et al. 2017), Table 2"),
        "manifold_cluster features=pretrained": ("97.9", "N2D (McConville et al. 2021), Table 2: AE + UMAP + GMM"),
    }
}
# The class count the published figures cluster into (K = classes).
PUBLISHED_K = {"mnist": 10}
METRICS = ("acc", "nmi", "ari")
# results.json entries that tell settings apart, shown in the table when a run has them.
DESCRIBE = (
    "arch",
    "embedding_dim",
    "pca_components",
    "n_features",
    "covariance_type",
    "grid",
    "mode",
    "n_init",
    "min_retention",
    "features",
    "embed_dim",
    "perplexity",
)


def find_runs(root: Path, dataset: str) -> list[dict]:
    """One row per finished run of `dataset` on the `all` split: experiment, setting, seed and the metrics."""
    rows = []
    for path in sorted(root.glob("*/*/results.json")):
        res = json.loads(path.read_text())
        if res.get("dataset") != dataset or res.get("split", "all") != "all" or "acc" not in res:
            continue
        described = [f"{k}={res[k]}" for k in DESCRIBE if res.get(k) not in (None, 0)]
        setting = " ".join([re.sub(r"-seed\d+$", "", path.parent.name), *described])
        rows.append(
            {
                "experiment": path.parent.parent.name,
                "setting": setting,
                "published_key": None
                if not _as_published(res, dataset)
                else " ".join(
                    [
                        path.parent.parent.name,
                        *([f"mode={res['mode']}"] if res.get("mode") in ("frozen", "dec-da") else []),
                        *(["features=pretrained"] if res.get("features") == "pretrained" else []),
                    ]
                ),
                "seed": res.get("seed"),
                **{m: res[m] for m in METRICS},
                "workdir": str(path.parent),
            }
        )
    return rows


def _as_published(res: dict, dataset: str) -> bool:
    """Whether the papers' figures apply to a run: the whole dataset (no imbalanced subset, nothing held
    out for validation) clustered into as many clusters as it has classes."""
    k = PUBLISHED_K.get(dataset)
    return res.get("min_retention") is None and "loss_validation" not in res and res.get("n_clusters", k) == k


def _natural(text: str) -> list:
    """Sort key that orders numbers by value: k3 before k10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def summarize(rows: list[dict], dataset: str) -> list[str]:
    """Markdown lines: one row per (experiment, setting), mean ± std over its seeds, and the paper's ACC."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["setting"]), []).append(r)
    published = PUBLISHED.get(dataset, {})
    lines = [
        f"Clustering {dataset} (all samples): mean ± standard deviation over seeds; ACC after Hungarian matching.",
        "",
        "| experiment | setting | seeds | ACC | NMI | ARI | published ACC (%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (experiment, setting), runs in sorted(groups.items(), key=lambda g: (g[0][0], _natural(g[0][1]))):
        cells = [report.mean_std([r[m] for r in runs]) for m in METRICS]
        seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        paper = published.get(runs[0]["published_key"])
        lines.append(
            f"| {experiment} | {setting} | {seeds} | {' | '.join(cells)} | "
            f"{f'{paper[0]} ({paper[1]})' if paper else '-'} |"
        )
    return lines


def find_autoencoders(root: Path, dataset: str) -> list[dict]:
    """One row per finished autoencoder run of `dataset`: its settings and reconstruction errors."""
    rows = []
    for path in sorted((root / "autoencoder").glob("*/results.json")):
        res = json.loads(path.read_text())
        if res.get("dataset") != dataset:
            continue
        cfg = json.loads((path.parent / "config.json").read_text())
        rows.append(
            {
                **{
                    k: cfg.get(k)
                    for k in ("arch", "activation", "weight_init", "optimizer", "batch_size", "epochs", "split")
                },
                "augment": cfg.get("augment", "none"),
                "seed": res.get("seed"),
                "reconstruction_mse": res["reconstruction_mse"],
                "test_reconstruction_mse": res.get("test_reconstruction_mse"),
                "workdir": str(path.parent),
            }
        )
    return rows


def autoencoder_lines(rows: list[dict], dataset: str) -> list[str]:
    lines = [
        f"Autoencoders pretrained on {dataset}: reconstruction MSE per pixel (pixels in [0, 1]).",
        "",
        "| arch | activation | init | optimizer | augment | batch | epochs | split | seed | MSE (training data) | MSE (test split) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        test = "-" if r["test_reconstruction_mse"] is None else f"{r['test_reconstruction_mse']:.5f}"
        lines.append(
            f"| {r['arch']} | {r['activation']} | {r['weight_init'] or '-'} | {r['optimizer']} "
            f"| {'-' if r['augment'] == 'none' else r['augment']} | {r['batch_size']} | {r['epochs']:g} | "
            f"{r['split']} | {r['seed']} | {r['reconstruction_mse']:.5f} | {test} |"
        )
    return lines


def main(argv):
    del argv
    root, out = Path(FLAGS.root), FLAGS.out or f"results/{FLAGS.dataset}"
    rows = find_runs(root, FLAGS.dataset)
    autoencoders = find_autoencoders(root, FLAGS.dataset)
    if not rows and not autoencoders:
        raise SystemExit(f"no finished runs of {FLAGS.dataset!r} under {root}/<experiment>/*/results.json.")
    if rows:
        report.write_markdown(summarize(rows, FLAGS.dataset), report.write_csv(rows, f"{out}_clustering"))
    if autoencoders:
        ae_out = report.write_csv(autoencoders, f"{out}_autoencoders")
        report.write_markdown(autoencoder_lines(autoencoders, FLAGS.dataset), ae_out)


if __name__ == "__main__":
    app.run(main)
