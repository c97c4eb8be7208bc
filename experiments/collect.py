r"""Gathers finished runs into one table, mean and spread over seeds, beside the published figures.

  python -m experiments.collect --dataset=mnist
  python -m experiments.collect --dataset=mnist --root=checkpoints --out=results/mnist_clustering

Reads every <root>/<experiment>/<name>-seed<s>/results.json of --dataset on the `all` split (the runs'
default workdirs; pass --root to read another tree), groups the seeds of one setting (the workdir name
without its seed), and writes <out>.csv (one row per run) and <out>.md (one row per setting: ACC, NMI, ARI as
mean ± standard deviation over its seeds, and what the papers report for that method on the dataset).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from absl import app, flags

from research import report

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "mnist", "The dataset whose runs are gathered (as the runs' --dataset).")
flags.DEFINE_string("root", "checkpoints", "The tree of run workdirs: <root>/<experiment>/<name>-seed<s>/.")
flags.DEFINE_string("out", None, "Output path without suffix. Default: results/<dataset>_clustering.")

# What the papers report on MNIST-70k, by experiment: (ACC %, source).
PUBLISHED = {
    "mnist": {
        "kmeans": ("53.49", "DEC paper (Xie et al. 2016), Table 2"),
        "ae_kmeans": ("81.84", "DEC paper, Table 3 (AE + k-means); the Keras DEC reimplementation reports 87.9"),
        "dec": ("84.30", "DEC paper, Table 2"),
    }
}
METRICS = ("acc", "nmi", "ari")
# results.json entries that tell settings apart, shown in the table when a run has them.
DESCRIBE = ("arch", "embedding_dim", "pca_components", "n_features", "covariance_type", "grid", "mode", "n_init")


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
                "seed": res.get("seed"),
                **{m: res[m] for m in METRICS},
                "workdir": str(path.parent),
            }
        )
    return rows


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
    for (experiment, setting), runs in sorted(groups.items()):
        cells = []
        for m in METRICS:
            v = [r[m] for r in runs]
            cells.append(f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}")
        seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        paper = published.get(experiment)
        lines.append(
            f"| {experiment} | {setting} | {seeds} | {' | '.join(cells)} | "
            f"{f'{paper[0]} ({paper[1]})' if paper else '-'} |"
        )
    return lines


def main(argv):
    del argv
    rows = find_runs(Path(FLAGS.root), FLAGS.dataset)
    if not rows:
        raise SystemExit(
            f"no finished runs of {FLAGS.dataset!r} (split all) under {FLAGS.root}/<experiment>/*/results.json."
        )
    out = report.write_csv(rows, FLAGS.out or f"results/{FLAGS.dataset}_clustering")
    report.write_markdown(summarize(rows, FLAGS.dataset), out)


if __name__ == "__main__":
    app.run(main)
