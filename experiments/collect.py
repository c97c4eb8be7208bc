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

from absl import flags, logging

from experiments import references
from research import cli, report

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "mnist", "The dataset whose runs are gathered (as the runs' --dataset).")
flags.DEFINE_string("root", "checkpoints", "The tree of run workdirs: <root>/<experiment>/<name>-seed<s>/.")
flags.DEFINE_string(
    "out", None, "Prefix of the tables: <out>_clustering and <out>_autoencoders. Default: results/<dataset>."
)

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
        res = read_results(path)
        if res is None or res.get("dataset") != dataset or res.get("split", "all") != "all" or "acc" not in res:
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


def read_results(path: Path) -> dict | None:
    """The JSON object in `path`, or None (with a warning naming it) when it is unreadable or truncated: one
    damaged run must not hide the others."""
    try:
        res = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        logging.warning("skipping %s: not a readable JSON file (%s).", path, cli.one_line(e))
        return None
    if not isinstance(res, dict):
        logging.warning("skipping %s: expected a JSON object, found %s.", path, type(res).__name__)
        return None
    return res


def _as_published(res: dict, dataset: str) -> bool:
    """Whether the papers' figures apply to a run: the whole dataset (no imbalanced subset, nothing held
    out for validation) clustered into as many clusters as it has classes."""
    k = references.PUBLISHED_K.get(dataset)
    return res.get("min_retention") is None and "loss_validation" not in res and res.get("n_clusters", k) == k


def _natural(text: str) -> list:
    """Sort key that orders numbers by value: k3 before k10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


CLUSTERING_COLUMNS = [
    "experiment",
    "setting",
    "seeds",
    ("ACC", "acc"),
    ("NMI", "nmi"),
    ("ARI", "ari"),
    ("published ACC (%)", "published"),
]


def summarize(rows: list[dict], dataset: str) -> list[dict]:
    """One row per (experiment, setting): its seeds, each metric's mean ± std over them, and the papers' ACC."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["setting"]), []).append(r)
    out = []
    for (experiment, setting), runs in sorted(groups.items(), key=lambda g: (g[0][0], _natural(g[0][1]))):
        seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        scores = {m: report.mean_std([r[m] for r in runs]) for m in METRICS}
        published = references.lookup(dataset, runs[0]["published_key"])
        out.append({"experiment": experiment, "setting": setting, "seeds": seeds, **scores, "published": published})
    return out


def find_autoencoders(root: Path, dataset: str) -> list[dict]:
    """One row per finished autoencoder run of `dataset`: its settings and reconstruction errors."""
    rows = []
    for path in sorted((root / "autoencoder").glob("*/results.json")):
        res = read_results(path)
        if res is None or res.get("dataset") != dataset:
            continue
        cfg = read_results(path.parent / "config.json") or {}
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


AUTOENCODER_COLUMNS = [
    "arch",
    "activation",
    ("init", lambda r: r["weight_init"] or "-"),
    "optimizer",
    ("augment", lambda r: "-" if r["augment"] == "none" else r["augment"]),
    ("batch", "batch_size"),
    ("epochs", "epochs", "g"),
    "split",
    "seed",
    ("MSE (training data)", "reconstruction_mse", ".5f"),
    ("MSE (test split)", "test_reconstruction_mse", ".5f"),
]


def main(argv):
    del argv
    root, out = Path(FLAGS.root), FLAGS.out or f"results/{FLAGS.dataset}"
    rows = find_runs(root, FLAGS.dataset)
    autoencoders = find_autoencoders(root, FLAGS.dataset)
    if not rows and not autoencoders:
        raise SystemExit(f"no finished runs of {FLAGS.dataset!r} under {root}/<experiment>/*/results.json.")
    if rows:
        caption = f"Clustering {FLAGS.dataset} (all samples): mean ± standard deviation over seeds; ACC after "
        caption += "Hungarian matching."
        table = summarize(rows, FLAGS.dataset)
        report.write_table(table, CLUSTERING_COLUMNS, f"{out}_clustering", caption=caption, csv_rows=rows)
    if autoencoders:
        caption = f"Autoencoders pretrained on {FLAGS.dataset}: reconstruction MSE per pixel (pixels in [0, 1])."
        report.write_table(autoencoders, AUTOENCODER_COLUMNS, f"{out}_autoencoders", caption=caption)


if __name__ == "__main__":
    cli.run_main(main)
