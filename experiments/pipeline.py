r"""The best recipe end to end, from raw data: an autoencoder pretrained on augmented images, then the manifold
clustering of its codes (neighbour embedding + GMM). The settings of the best row: configs/best.flags.

  python -m experiments.pipeline --flagfile=experiments/configs/best.flags --dataset=mnist --seed=0
  python -m experiments.pipeline --flagfile=experiments/configs/best.flags --dataset=mnist --epochs=10 --n_epochs=50

Each stage in a workdir of its own under --workdir (default checkpoints/pipeline/<dataset>-seed<s>): autoencoder/
(experiments.autoencoder's pretraining, its flags: --arch, --epochs, --augment, ...), manifold/
(experiments.manifold_cluster on those codes: --embed_dim, --n_epochs, --gmm_n_init, ...) and, with
--selftrain_rounds > 0, selftrain/ (research.deep.selftrain from stage 2's labels: the encoder and a softmax head
trained on moved and turned views of the samples whose neighbours agree on their cluster). A finished stage with
the same settings is reused: with --overwrite and other manifold flags, stages 2 and 3 run again; stage 1 may be
a finished experiments.autoencoder run elsewhere (--autoencoder_workdir, never replaced). results.json:
the final scores (ACC/NMI/ARI when the labels are known; the last stage's), each stage's workdir, settings and
seconds; labels.npy. Data without an image shape (csv:) are pretrained and self-trained without moves and turns;
results.json says so. docs/experiments.md#pipeline.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
from absl import flags, logging

from experiments import common, features, stages  # noqa: F401 (features defines --pretrained, refused here)
from research import augment, data, runlog
from research.deep import pretrain, selftrain

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "autoencoder_workdir",
    None,
    "Stage 1's workdir: the autoencoder is pretrained there, or reused when a finished one of the same settings, "
    "dataset, split and seed is there (an experiments.autoencoder run too); never replaced, even with "
    "--overwrite. Default: <workdir>/autoencoder.",
)
flags.DEFINE_integer(
    "selftrain_rounds",
    0,
    "Stage 3, self-labelling: rounds of training the encoder with a softmax head on the samples whose neighbours "
    "agree on their cluster (round 1), then on those the network gives --selftrain_threshold or more. 0: no stage 3.",
)
flags.DEFINE_float("selftrain_epochs", 10.0, "Stage 3: epochs of each round's kept samples.")
flags.DEFINE_float("selftrain_threshold", 0.99, "Stage 3: the confidence a sample needs to be kept (SCAN's 0.99).")
flags.DEFINE_float("selftrain_learning_rate", 1e-3, "Stage 3: Adam's learning rate.")
common.cli.at_least("selftrain_rounds", 0, "0: no self-labelling stage")
common.cli.only_when(
    ["selftrain_epochs", "selftrain_threshold", "selftrain_learning_rate"],
    "selftrain_rounds",
    lambda rounds: rounds is not None and rounds > 0,
    "with --selftrain_rounds > 0 (stage 3)",
)
common.cli.positive_finite("selftrain_epochs")
common.cli.positive_finite("selftrain_learning_rate")
common.cli.check("selftrain_threshold", lambda v: 0 < v < 1, "must lie in (0, 1): a softmax probability")
stages.define_autoencoder_flags()
stages.define_manifold_flags()
stages.define_tensorboard_flag()
SCORES = ("acc", "nmi", "ari", "purity")


def main(argv):
    del argv
    if FLAGS.pretrained:
        raise ValueError(
            "--pretrained does not apply: the pipeline pretrains its own autoencoder into <workdir>/autoencoder/. "
            "To cluster the codes of a finished one, run experiments.manifold_cluster --pretrained=<its workdir>."
        )
    run = common.run_config("pipeline")
    ae_dir = Path(FLAGS.autoencoder_workdir) if FLAGS.autoencoder_workdir else None
    ae_cfg = stages.autoencoder_config()
    manifold_cfg = stages.manifold_config(str(ae_dir or run.workdir / "autoencoder"))
    self_cfg = selftrain.SelfTrainConfig(
        rounds=FLAGS.selftrain_rounds,
        epochs=FLAGS.selftrain_epochs,
        threshold=FLAGS.selftrain_threshold,
        learning_rate=FLAGS.selftrain_learning_rate,
    )
    run_stages(run, ae_cfg, manifold_cfg, FLAGS.tensorboard, ae_dir, self_cfg)


def run_stages(
    run: common.RunConfig,
    ae_cfg: stages.AutoencoderConfig,
    manifold_cfg: stages.ManifoldConfig,
    tensorboard: bool = False,
    ae_dir: Path | None = None,
    self_cfg: selftrain.SelfTrainConfig | None = None,
) -> dict:
    """Stage 1 (pretraining) into `ae_dir` (default <workdir>/autoencoder), stage 2 (manifold clustering of its
    codes) into <workdir>/manifold, stage 3 (self-labelling, when self_cfg.rounds > 0) into <workdir>/selftrain,
    each reused when finished with the same settings; then results.json."""
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run)
    ae_cfg, note = _pretraining_for(ae_cfg, ds)

    shared = ae_dir is not None  # a workdir of its own: reused or filled, never replaced
    ae_dir = wd / "autoencoder" if ae_dir is None else ae_dir
    _check_same_data(ae_dir, run, replace=run.overwrite and not shared)
    before, t0 = _mtime(ae_dir / "results.json"), time.perf_counter()
    ae_run = dataclasses.replace(run, overwrite=run.overwrite and not shared)
    fix = (
        "A --autoencoder_workdir is never replaced: give its settings, or choose another one."
        if shared
        else "Pass --overwrite to replace it, or choose another --workdir."
    )
    stages.obtain_autoencoder(ae_run, ds, ae_cfg, tensorboard=tensorboard, prefix="", ae_dir=ae_dir, fix=fix)
    ae_seconds = time.perf_counter() - t0
    ae_reused = before is not None and before == _mtime(ae_dir / "results.json")
    ae_res = runlog.read_json(ae_dir / "results.json")

    # Stage 2's config.json records every flag of the pipeline but stage 3's (the autoencoder's too: new codes, a
    # new run); stage 3's records them all.
    every = {**run.flags, "pretrained": str(ae_dir)}
    m_flags = {k: v for k, v in every.items() if not k.startswith("selftrain_")}
    m_run = dataclasses.replace(run, experiment="manifold_cluster", workdir=wd / "manifold", flags=m_flags)
    m_reused, t0 = common.finished_alike(m_run), time.perf_counter()
    if m_reused:
        logging.info("reusing the manifold clustering finished earlier in %s", m_run.workdir)
        m_res = runlog.read_json(m_run.workdir / "results.json")
    else:
        m_res = stages.cluster_manifold(m_run, manifold_cfg, tensorboard, started=t0, ds=ds)
    m_seconds = time.perf_counter() - t0
    last, final = m_run.workdir, m_res
    if self_cfg is not None and self_cfg.rounds > 0:
        s_run = dataclasses.replace(run, experiment="selftrain", workdir=wd / "selftrain", flags=every)
        self_stage, final = _self_label(s_run, ds, ae_dir, m_run.workdir, self_cfg, ae_cfg, manifold_cfg)
        last = s_run.workdir
    runlog.save_array(wd / "labels.npy", np.load(last / "labels.npy"))

    autoencoder = {
        "workdir": str(ae_dir),
        "reused": ae_reused,
        "seconds": round(ae_seconds, 1),
        "settings": dataclasses.asdict(ae_cfg),
        "reconstruction_mse": ae_res.get("reconstruction_mse"),
        "train_seconds": ae_res.get("train_seconds_this_invocation"),
        **({"note": note} if note else {}),
    }
    manifold = {
        "workdir": str(m_run.workdir),
        "reused": m_reused,
        "seconds": round(m_seconds, 1),
        "settings": dataclasses.asdict(manifold_cfg),
        **{k: m_res.get(k) for k in ("n_epochs", "lower_bound", "knn_seconds", "embed_seconds", "gmm_seconds")},
    }
    done_stages = {"autoencoder": autoencoder, "manifold": manifold}
    if last != m_run.workdir:
        done_stages["selftrain"] = self_stage
    results = (
        common.run_fields(run, ds)
        | {k: final[k] for k in SCORES if k in final}
        | {"n_clusters": m_res["n_clusters"], "stages": done_stages}
    )
    done = [f"{name} " + ("reused" if s["reused"] else f"{s['seconds']:.1f}s") for name, s in results["stages"].items()]
    common.finish(
        run,
        results,
        f"pipeline {ds.name}/{run.split} K={results['n_clusters']}: {common.score_text(results)} "
        f"({', '.join(done)}) -> {wd}",
    )
    return results


def _self_label(run, ds, ae_dir, manifold_dir, cfg, ae_cfg, manifold_cfg) -> tuple[dict, dict]:
    """Stage 3 in run.workdir (each round checkpointed: an interrupted stage resumes from its last finished
    round), or the finished one of the same settings there: (its summary for results.json, its results). Labels and codes come from stage 2 and stage 1; the neighbours are stage 2's count, in code
    space; the moves and turns are the pretraining's (none for data without an image shape)."""
    reused, t0 = common.finished_alike(run), time.perf_counter()
    if reused:
        logging.info("reusing the self-labelling finished earlier in %s", run.workdir)
        res = runlog.read_json(run.workdir / "results.json")
    else:
        common.prepare_workdir(run)
        model, params, _ = pretrain.load_model(ae_dir)
        labels = np.load(manifold_dir / "labels.npy")
        conf = selftrain.neighbour_agreement(pretrain.encode(model, params, ds.x), labels, manifold_cfg.n_neighbors)
        if ds.image_shape is not None:
            moves = augment.random_affine(
                ds.image_shape, max_shift=ae_cfg.augment_shift, max_rotation=ae_cfg.augment_rotation
            )
            cfg = cfg._replace(augment=moves)
        key = jax.random.fold_in(run.key(), 3)
        out = selftrain.fit(key, model, params, ds.x, labels, conf, cfg, workdir=run.workdir, config=run.flags)
        runlog.save_array(run.workdir / "labels.npy", out.labels)
        runlog.save_array(run.workdir / "proba.npy", out.proba.astype(np.float32))
        res = common.run_fields(run, ds) | common.label_metrics(ds.y, out.labels)
        res |= {"history": out.history, "augmented": ds.image_shape is not None}
        common.finish(run, res, f"selftrain: {common.score_text(res)} -> {run.workdir}", started=t0)
    settings = {k: v for k, v in cfg._asdict().items() if k not in ("augment", "log_every")}
    summary = {"workdir": str(run.workdir), "reused": reused, "seconds": round(time.perf_counter() - t0, 1)}
    summary |= {"settings": settings, "history": res["history"], "augmented": res["augmented"]}
    return summary, res


def _pretraining_for(cfg: stages.AutoencoderConfig, ds: data.Dataset):
    """(cfg, note): the augmentation is for images; data without an image shape pretrain without it, noted."""
    if cfg.augment == "none" or ds.image_shape is not None:
        return cfg, None
    note = f"--augment={cfg.augment} moves and turns images; {ds.name} has no image shape, so pretrained without it"
    logging.warning(note)
    return dataclasses.replace(cfg, augment="none"), note


def _check_same_data(ae_dir: Path, run: common.RunConfig, replace: bool) -> None:
    """Refuses an autoencoder workdir of another dataset, split, seed or subset than this run's (the settings
    compared by stages.obtain_autoencoder leave these out); `replace`: removes its outputs instead."""
    if not (ae_dir / "config.json").is_file():
        return
    stored = runlog.read_json(ae_dir / "config.json")
    differ = [k for k in ("dataset", "split", "seed", "min_retention") if k in stored and stored[k] != getattr(run, k)]
    if differ and replace:
        logging.warning("--overwrite: replacing the autoencoder of another %s in %s", ", ".join(differ), ae_dir)
        common.remove_run_outputs(ae_dir)
    elif differ:
        was = ", ".join(f"{k}={stored[k]}" for k in differ)
        raise ValueError(
            f"{ae_dir} holds an autoencoder of another {', '.join(differ)} ({was}). Pass --overwrite to replace it "
            "(not a --autoencoder_workdir of your own), or choose another --workdir or --autoencoder_workdir."
        )


def _mtime(path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


if __name__ == "__main__":
    common.run_main(main)
