"""Stages several binaries share: pretraining an autoencoder, or obtaining one already pretrained.

A binary that pretrains defines the autoencoder flags with `define_autoencoder_flags(prefix)` at import
("" in experiments.autoencoder, "ae_" in the binaries that run pretraining as their first stage, e.g.
--ae_epochs in experiments.dec) and turns them into an `AutoencoderConfig` in main() with
`autoencoder_config(prefix)`. The functions below take that config and a `common.RunConfig`, never flags:

    model, params, spec = stages.obtain_autoencoder(run, ds, ae_cfg, pretrained=None)  # reuses or trains
    z = pretrain.encode(model, params, ds.x)

The manifold stage (features -> neighbour embedding -> GMM) is shared the same way by experiments.manifold_cluster
and experiments.pipeline: `define_manifold_flags()` at import, `manifold_config(pretrained)` in main(), then
`cluster_manifold(run, cfg)`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging

from experiments import common, features
from research import augment, data, metrics, nets, plots, runlog, timing
from research import tensorboard as tb
from research.cluster import gmm, kmeans
from research.deep import pretrain
from research.deep import train as trainloop
from research.embed import neighbors, pca, tsne
from research.nets.mlp import KERNEL_INITS

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    """The network and how to pretrain it; the defaults are experiments.autoencoder's flags'."""

    arch: str = "dec"
    activation: str = "relu"
    weight_init: str = "glorot"
    loss: str = "mse"
    output_activation: str = "auto"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    decay_every: int = 0
    batch_size: int = 256
    epochs: float = 200
    layerwise_steps: int = 0
    dropout: float = 0.2
    augment: str = "none"
    augment_shift: float = 0.1
    augment_rotation: float = 10.0
    log_every: int = 0
    checkpoint_every: int = 0
    cluster_every: int = 0
    eval_split: str = "none"

    def recorded(self) -> dict:
        """The settings a pretrained autoencoder is identified by (in its config.json and checkpoints): the
        augmentation and the output activation only when not their defaults, so runs made before they existed
        still resume."""
        names = _RECORDED + (_AUGMENT if self.augment != "none" else ())
        names += _OUTPUT if self.output_activation != "auto" else ()
        return {k: getattr(self, k) for k in names}

    def objective(self) -> str:
        """What the network is trained to minimise (`pretrain.objective`): mse, bce or sigmoid_mse."""
        return pretrain.objective(self.loss, self.output_activation)

    def pretrain_config(self, image_shape=None) -> pretrain.PretrainConfig:
        return pretrain.PretrainConfig(
            loss=self.loss,
            output_activation=self.output_activation,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            decay_every=self.decay_every,
            batch_size=self.batch_size,
            epochs=self.epochs,
            layerwise_steps=self.layerwise_steps,
            dropout=self.dropout,
            log_every=self.log_every,
            checkpoint_every=self.checkpoint_every,
            augment=augmenter(image_shape, self.augment, self.augment_shift, self.augment_rotation, "augment"),
        )


_RECORDED = (
    "arch",
    "activation",
    "weight_init",
    "loss",
    "optimizer",
    "learning_rate",
    "momentum",
    "decay_every",
    "batch_size",
    "epochs",
    "layerwise_steps",
    "dropout",
)
_AUGMENT = ("augment", "augment_shift", "augment_rotation")
_OUTPUT = ("output_activation",)
_DEFAULTS = AutoencoderConfig()
FIELDS = tuple(f.name for f in dataclasses.fields(AutoencoderConfig))


_HELP = {
    "arch": f"autoencoder: one of {sorted(nets.PRESETS)}, mlp:<w1>-...-<latent> (mirrored decoder, linear code) or "
    "dense:<w1>-...-<code> (every layer activated, one layer back out).",
    "activation": "hidden activation: relu, elu, gelu, tanh, sigmoid.",
    "weight_init": "glorot (Keras), dec (N(0, 0.01)), lecun, fan_in_uniform (U(+-1/sqrt(fan_in)): Keras DEC's MNIST).",
    "loss": "reconstruction loss: mse, or bce (binary cross-entropy, computed from the logits; sigmoid output).",
    "output_activation": "output layer: linear, or sigmoid (pixels in [0, 1]); auto: sigmoid for bce, linear for mse.",
    "optimizer": "optimizer (adadelta: Keras 2's rho 0.95 and epsilon 1e-7; Keras before TF 2 ran it at learning "
    "rate 1.0, TF 2's Keras at 0.001).",
    "learning_rate": "learning rate.",
    "momentum": "SGD momentum.",
    "decay_every": "divide the learning rate by 10 every this many steps (0: never).",
    "batch_size": "minibatch size.",
    "epochs": "epochs of end-to-end training (fine-tuning, after a layer-wise stage).",
    "layerwise_steps": "> 0: DEC's greedy layer-wise denoising stage first, steps per layer.",
    "dropout": "input and hidden dropout of the layer-wise denoising stage.",
    "augment": "affine: every step reconstructs its batch randomly turned and moved (DEC-DA's pretraining; images "
    "only). The codes used later are those of the original images.",
    "augment_shift": "--augment=affine: largest move, as a fraction of the side.",
    "augment_rotation": "--augment=affine: largest rotation, in degrees.",
    "log_every": "steps between progress rows (0: one epoch).",
    "checkpoint_every": "steps between checkpoints (0: as log_every).",
    "cluster_every": "every this many epochs (and at the end), k-means (10 restarts, K = the class count) on the "
    "codes, its ACC and NMI logged beside the loss and drawn in plots/clustering.png. Labelled data only; 0: never.",
    "eval_split": "with each progress row (once an epoch by default), the loss on this held-out split of the dataset "
    "(eval_loss in metrics.jsonl, drawn with the training loss in plots/loss.png); none: no validation loss.",
}
_CHOICES = {
    "weight_init": list(KERNEL_INITS),
    "loss": list(pretrain.LOSSES),
    "output_activation": list(pretrain.OUTPUT_ACTIVATIONS),
    "eval_split": ["none", "train", "test"],
    "optimizer": list(pretrain.OPTIMIZERS),
    "augment": ["none", "affine"],
}
_DEFINE = {"str": flags.DEFINE_string, "float": flags.DEFINE_float, "int": flags.DEFINE_integer}
# Checked when the flags are parsed, before any work: (check, message) by field.
_VALID = {
    "learning_rate": (lambda v: math.isfinite(v) and v > 0, "must be > 0"),
    "momentum": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "decay_every": (lambda v: v >= 0, "must be >= 0 (0: never)"),
    "batch_size": (lambda v: v >= 1, "must be >= 1"),
    "epochs": (lambda v: math.isfinite(v) and v > 0, "must be > 0 (a fraction of an epoch is allowed)"),
    "layerwise_steps": (lambda v: v >= 0, "must be >= 0 (0: no layer-wise stage)"),
    "dropout": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "augment_shift": (lambda v: math.isfinite(v) and v >= 0, "must be >= 0"),
    "augment_rotation": (lambda v: math.isfinite(v) and v >= 0, "must be >= 0"),
    "log_every": (lambda v: v >= 0, "must be >= 0 (0: one epoch)"),
    "checkpoint_every": (lambda v: v >= 0, "must be >= 0 (0: as log_every)"),
    "cluster_every": (lambda v: v >= 0, "must be >= 0 (0: never)"),
}


def define_autoencoder_flags(prefix: str = "", old_names=()) -> None:
    """Defines the AutoencoderConfig flags as --<prefix><field> (call once, at a binary's import); the fields in
    `old_names` also answer to their unprefixed name of the last release (an alias, kept for one more)."""
    for f in dataclasses.fields(AutoencoderConfig):
        name, text = prefix + f.name, _HELP[f.name]
        text = f"Pretraining stage: {text}" if prefix else text[0].upper() + text[1:]
        if f.name in _CHOICES:
            flags.DEFINE_enum(name, f.default, _CHOICES[f.name], text)
        else:
            _DEFINE[f.type](name, f.default, text)
        if f.name in _VALID:
            common.cli.check(name, *_VALID[f.name])
    loss, out = prefix + "loss", prefix + "output_activation"

    def sigmoid_for_bce(values) -> bool:
        if values[loss] == "bce" and values[out] == "linear":
            raise flags.ValidationError(f"--{loss}=bce needs outputs in (0, 1): use --{out}=sigmoid (or auto)")
        return True

    flags.register_multi_flags_validator([loss, out], sigmoid_for_bce)
    for name in old_names:
        flags.DEFINE_alias(name, prefix + name)


def define_tensorboard_flag() -> None:
    """Defines --tensorboard (call once, at a binary's import); refused when the flags are parsed if tensorboardX
    is missing, naming the install command."""
    flags.DEFINE_boolean(
        "tensorboard",
        False,
        "Also write every metrics.jsonl row as TensorBoard scalars, <stage>/<metric>, to <workdir>/tensorboard/ "
        "(a pretraining stage's to <workdir>/autoencoder/tensorboard/). Needs pip install -e '.[tensorboard]'.",
    )
    common.cli.check("tensorboard", lambda v: not v or tb.available(), tb.MISSING)


def autoencoder_config(prefix: str = "") -> AutoencoderConfig:
    """The AutoencoderConfig of the --<prefix>* flags (call from main() only)."""
    return AutoencoderConfig(**{f.name: FLAGS[prefix + f.name].value for f in dataclasses.fields(AutoencoderConfig)})


def augmenter(image_shape, kind: str, shift: float, rotation: float, flag: str):
    """The random affine transform (key, batch) -> batch of `kind` "affine", or None for "none"; `flag` names the
    switch in the error for data without an image shape."""
    if kind == "none":
        return None
    if image_shape is None:
        raise SystemExit(f"--{flag}={kind} moves and turns images; this dataset has no image shape.")
    return augment.random_affine(image_shape, max_shift=shift, max_rotation=rotation)


def train_autoencoder(
    run: common.RunConfig, wd: Path, ds: data.Dataset, cfg: AutoencoderConfig, tensorboard: bool = False
) -> tuple:
    """Pretrains on ds.x into wd (resuming there); returns (model, params, spec, results). results.json last.
    `tensorboard`: the progress rows also go to wd/tensorboard/ as event files."""
    model = nets.build(
        cfg.arch, ds.x.shape[1], image_shape=ds.image_shape, activation=cfg.activation, init=cfg.weight_init
    )
    objective = cfg.objective()
    spec = {
        "arch": cfg.arch,
        "input_dim": int(ds.x.shape[1]),
        "image_shape": None if ds.image_shape is None else list(ds.image_shape),
        "activation": cfg.activation,
        "init": cfg.weight_init,
        "loss": objective,  # mse, bce or sigmoid_mse: what `pretrain.reconstruct` and IDEC need to know
        "dataset": ds.name,
        "split": run.split,
    }
    # The autoencoder gets the root key itself, so every binary pretrains the one experiments.autoencoder
    # trains with this seed.
    key = run.key()
    pcfg = cfg.pretrain_config(ds.image_shape)._replace(devices=run.num_devices)
    if pcfg.augment is not None:
        augment_preview(pcfg.augment, ds, wd / "plots" / "augment_preview.png", jax.random.fold_in(key, 5), run.seed)
    t0 = time.perf_counter()
    probe = _cluster_probe(model, ds, key, cfg)
    evaluator = _eval_probe(run, model, cfg)
    params = pretrain.pretrain(
        key,
        model,
        ds.x,
        pcfg,
        workdir=wd,
        config={**spec, **cfg.recorded(), "seed": run.seed},
        log=runlog.MetricsLog(wd, tensorboard=tensorboard),
        on_chunk=_both(probe, evaluator),
    )
    seconds = time.perf_counter() - t0
    pretrain.save_model(wd, spec, params, overwrite=True)
    x_hat = pretrain.reconstruct(model, params, ds.x, objective)
    mse = float(np.mean(np.square(x_hat - ds.x)))
    test_mse, test_loss = _test_scores(run, model, params, objective) if run.split == "train" else (None, None)
    if ds.image_shape is not None:
        plots.reconstructions(ds.x, x_hat, ds.image_shape, wd / "plots" / "reconstructions.png", seed=run.seed)
    rows = [r for r in runlog.MetricsLog(wd).rows() if "samples_per_s" in r]
    if evaluator is not None:
        plots.loss_curves(
            rows,
            wd / "plots" / "loss.png",
            steps_per_epoch=max(1, len(ds.x) // cfg.batch_size),
            title=f"{cfg.arch}, {objective}: {ds.name}/{run.split} (training), {cfg.eval_split} (validation)",
        )
    curves = ("kmeans_acc", "kmeans_nmi")
    if probe is not None:
        plots.training_curves(
            rows, wd / "plots" / "clustering.png", metrics=curves, title=f"k-means on the codes, {ds.name}"
        )
    results = common.run_fields(run, ds) | {
        "reconstruction_mse": mse,
        "test_reconstruction_mse": test_mse,
        "final_loss": rows[-1]["loss"] if rows else None,
        "samples_per_s": float(np.median([r["samples_per_s"] for r in rows])) if rows else None,
        "train_seconds_this_invocation": seconds,
        "n_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
    }
    if probe is not None and rows:  # the codes' k-means scores at the last step
        results |= {m: rows[-1].get(m) for m in curves}
    if objective != "mse":  # the loss trained on, of the test split, beside its MSE
        results["test_loss"] = test_loss
    if evaluator is not None:
        results |= {"eval_split": cfg.eval_split, "eval_loss": rows[-1].get("eval_loss") if rows else None}
    runlog.write_json(wd / "results.json", {**results, "versions": runlog.versions()})
    logging.info("autoencoder %s: reconstruction mse %.5f -> %s", cfg.arch, mse, wd)
    return model, params, spec, results


def obtain_autoencoder(
    run: common.RunConfig,
    ds: data.Dataset,
    cfg: AutoencoderConfig,
    pretrained=None,
    tensorboard: bool = False,
    prefix: str = "ae_",
    ae_dir: Path | None = None,
    fix: str = "Pass --overwrite to replace it, use another --workdir, or point --pretrained at a matching autoencoder.",
) -> tuple:
    """(model, params, spec): the encoder of the `pretrained` workdir when given, else the one pretrained with
    `cfg` into `ae_dir` (default <run.workdir>/autoencoder/; trained now, with `tensorboard` event files there
    too, or reused when a finished one with these settings is there; one with other settings is refused, or
    with --overwrite replaced). `prefix`: that of the binary's autoencoder flags, and `fix`: what the refusal
    advises, for the messages."""
    if pretrained:
        return features.load_encoder(pretrained, input_dim=ds.x.shape[1], dataset=ds.name)
    if cfg.batch_size > len(ds.x):  # the library's message would name the DEC stage's --batch_size
        flag = f"--{prefix}batch_size"
        raise ValueError(f"{flag}={cfg.batch_size} is larger than the data ({len(ds.x)} samples); lower {flag}.")
    ae_dir = run.workdir / "autoencoder" if ae_dir is None else Path(ae_dir)
    current = {k: getattr(cfg, k) for k in _RECORDED + _AUGMENT + _OUTPUT}
    if (ae_dir / "config.json").exists():
        stored = runlog.read_json(ae_dir / "config.json")
        differ = sorted(k for k, v in current.items() if stored.get(k, getattr(_DEFAULTS, k)) != v)
        if differ and not run.overwrite:
            raise ValueError(f"{ae_dir} holds an autoencoder trained with other settings ({', '.join(differ)}). {fix}")
        if differ:
            logging.warning("--overwrite: replacing the autoencoder of other settings (%s) in %s", differ, ae_dir)
            common.remove_run_outputs(ae_dir)
        elif (ae_dir / "results.json").exists():
            logging.info("reusing the autoencoder pretrained earlier in %s", ae_dir)
            return pretrain.load_model(ae_dir)
    stored = {"dataset": run.dataset, "split": run.split, "seed": run.seed, **dataclasses.asdict(cfg)}
    runlog.write_json(ae_dir / "config.json", {"experiment": "autoencoder", **stored})
    return train_autoencoder(run, ae_dir, ds, cfg, tensorboard)[:3]


def _cluster_probe(model, ds: data.Dataset, key, cfg: AutoencoderConfig):
    """The `on_chunk` hook of cluster_every: k-means ACC / NMI of the codes every that many epochs."""
    if cfg.cluster_every <= 0:
        return None
    if ds.y is None:
        raise SystemExit(f"--cluster_every needs labels to score against; {ds.name} has none (set it to 0).")
    every = trainloop.steps_for(cfg.cluster_every, ds.x.shape[0], cfg.batch_size)
    last = trainloop.steps_for(cfg.epochs, ds.x.shape[0], cfg.batch_size)
    k, probe_key = common.n_clusters(ds, None), jax.random.fold_in(key, 7)
    due = [every]  # the next step to probe at (progress rows need not fall on multiples of `every`)

    def probe(state) -> dict:
        step = int(state.step)
        if step < due[0] and step != last:
            return {}
        due[0] = (step // every + 1) * every
        codes = pretrain.encode(model, state.params, ds.x)
        labels = np.asarray(kmeans.fit(probe_key, codes, k, n_init=10).labels)
        return {"kmeans_acc": round(metrics.acc(ds.y, labels), 4), "kmeans_nmi": round(metrics.nmi(ds.y, labels), 4)}

    return probe


def _test_scores(run: common.RunConfig, model, params, objective: str) -> tuple:
    """(reconstruction MSE, the objective) on the dataset's test split (for a model trained on its train split),
    or (None, None) if it has none."""
    try:
        test = run.load("test")
    except (ValueError, FileNotFoundError):
        return None, None
    mse = float(np.mean(np.square(pretrain.reconstruct(model, params, test.x, objective) - test.x)))
    return mse, pretrain.evaluate(model, params, test.x, objective)


def _eval_probe(run: common.RunConfig, model, cfg: AutoencoderConfig):
    """The `on_chunk` hook of eval_split: the objective on the held-out split at every progress row."""
    if cfg.eval_split == "none":
        return None
    if run.split in ("all", cfg.eval_split):
        raise ValueError(
            f"--eval_split={cfg.eval_split} is part of the training data (--split={run.split}); train on the "
            f"other split (--split={'train' if cfg.eval_split == 'test' else 'test'}) to validate on held-out data."
        )
    held = run.load(cfg.eval_split).x
    objective = cfg.objective()

    def evaluate(state) -> dict:
        return {"eval_loss": pretrain.evaluate(model, state.params, held, objective)}

    return evaluate


def _both(*hooks):
    """One `on_chunk` hook from several (None where there are none): their rows' entries together."""
    hooks = [h for h in hooks if h is not None]
    if not hooks:
        return None
    return lambda state: {k: v for h in hooks for k, v in h(state).items()}


def augment_preview(aug: augment.RandomAffine, ds: data.Dataset, path, key, seed: int = 0, n: int = 6) -> Path:
    """plots/augment_preview.png: `n` random images and, beside each, what the training's augmenter makes of
    them: moved only, turned only (the same transform with the other part at 0), and three full draws."""
    pick = np.random.default_rng(seed).choice(len(ds.x), min(n, len(ds.x)), replace=False)
    x = ds.x[pick]
    names = ["original", "shifted", "turned", *["shifted + turned"] * 3]
    columns = list(zip(names, [x, *np.asarray(_preview_draws(aug, key, x))]))
    title = f"--augment=affine: moves up to {aug.max_shift:g} of the side, turns up to {aug.max_rotation:g} degrees"
    return plots.augment_preview(columns, ds.image_shape, path, title=title)


@functools.partial(jax.jit, static_argnums=0)
def _preview_draws(aug: augment.RandomAffine, key, x_nd):
    """[5, n, d]: aug with no turn, with no move, then aug itself three times; draw j from fold_in(key, j).
    The five are one vmapped transform whose limits vary (one compilation instead of five)."""
    shift = jnp.array([aug.max_shift, 0.0, aug.max_shift, aug.max_shift, aug.max_shift])
    turn = jnp.array([0.0, aug.max_rotation, aug.max_rotation, aug.max_rotation, aug.max_rotation])

    def draw(j, s, r):
        return dataclasses.replace(aug, max_shift=s, max_rotation=r)(jax.random.fold_in(key, j), x_nd)

    return jax.vmap(draw)(jnp.arange(5), shift, turn)


# --- the manifold stage (the N2D recipe): features -> UMAP-style neighbour embedding -> Gaussian mixture ---------


def define_manifold_flags() -> None:
    """Defines the manifold stage's flags (call once, at the import of manifold_cluster or pipeline)."""
    flags.DEFINE_integer("n_clusters", None, "K. Default: the number of classes when labels are known, else 10.")
    common.validate_n_clusters_flag()
    flags.DEFINE_integer("embed_dim", 10, "Dimensions of the neighbour embedding the mixture is fitted to.")
    flags.DEFINE_integer("n_neighbors", 20, "UMAP's n_neighbors (the point itself included, as umap-learn counts).")
    flags.DEFINE_float("min_dist", 0.0, "UMAP's min_dist: 0 packs clusters tightest, which suits clustering.")
    flags.DEFINE_integer("n_epochs", None, "Embedding epochs. Default: 500 up to 10k points, else 200.")
    flags.DEFINE_integer("substeps", 10, "Groups of edges applied one after another in each epoch.")
    flags.DEFINE_integer(
        "knn_dims", 100, "Principal components searched for neighbour candidates (>= features: exact)."
    )
    flags.DEFINE_integer("knn_candidates", 60, "Candidates per point found in the projection, reranked exactly.")
    flags.DEFINE_integer(
        "knn_bins", 8192, "Column bins of the candidate search (neighbors.binned_knn); 0: exact search."
    )
    flags.DEFINE_enum(
        "metric",
        None,
        ["euclidean", "cosine"],
        "Neighbours by Euclidean distance, or by cosine similarity (rows scaled to unit length first). "
        "Default: cosine for raw features, euclidean for --pretrained codes.",
    )
    flags.DEFINE_integer(
        "gmm_n_init",
        30,
        "GMM restarts; the highest lower bound is kept. 30: on MNIST the best bound found stops rising there (the "
        "same as 50's in 20 runs), where 10 left some runs in a worse optimum (docs/design/manifold_clustering.md).",
    )
    flags.DEFINE_enum("covariance_type", "full", list(gmm.COVARIANCE_TYPES), "The mixture's covariance shape.")
    common.cli.at_least("embed_dim", 1)
    common.cli.at_least("n_neighbors", 2, "the point itself and at least one neighbour")
    common.cli.positive_finite("min_dist", allow_zero=True)
    common.cli.at_least("n_epochs", 1)
    common.cli.at_least("substeps", 1)
    common.cli.at_least("knn_dims", 1)
    common.cli.at_least("knn_candidates", 1)
    common.cli.at_least("knn_bins", 0, "0: exact search")
    common.cli.at_least("gmm_n_init", 1)


@dataclasses.dataclass(frozen=True)
class ManifoldConfig:
    """The manifold stage's settings (the flags of the same names; metric resolved to euclidean or cosine);
    `pretrained`: the workdir of the encoder whose codes are embedded, None for the raw rows."""

    pretrained: str | None
    n_clusters: int | None
    embed_dim: int
    n_neighbors: int
    min_dist: float
    n_epochs: int | None
    substeps: int
    knn_dims: int
    knn_candidates: int
    knn_bins: int
    metric: str
    gmm_n_init: int
    covariance_type: str


def manifold_config(pretrained: str | None) -> ManifoldConfig:
    """The ManifoldConfig of the flags, on the codes of `pretrained` when given (call from main() only)."""
    metric = FLAGS.metric or ("euclidean" if pretrained else "cosine")
    return common.config_from_flags(ManifoldConfig, pretrained=pretrained, metric=metric)


def cluster_manifold(
    run: common.RunConfig,
    cfg: ManifoldConfig,
    tensorboard: bool = False,
    started: float | None = None,
    ds: data.Dataset | None = None,
) -> dict:
    """Embeds run's dataset (or its codes), fits the mixture to the embedding; writes the workdir's outputs
    (results.json last) and returns the results. With `tensorboard`, the scores also go to metrics.jsonl and
    <workdir>/tensorboard/ as one row. `started`: where its wall time counts from (`common.finish`); `ds`: the
    run's dataset when the caller has loaded it already (a pipeline's earlier stage)."""
    wd = common.prepare_workdir(run)
    ds = common.load_dataset(run) if ds is None else ds
    k = common.n_clusters(ds, cfg.n_clusters)
    k_knn, k_embed, k_gmm, k_pic = jax.random.split(run.key(), 4)
    x = np.asarray(ds.x, np.float32)
    if cfg.pretrained:
        model, params, _ = features.load_encoder(cfg.pretrained, input_dim=x.shape[1], dataset=ds.name)
        x = np.asarray(pretrain.encode(model, params, x), np.float32)
    if cfg.metric == "cosine":
        x = np.asarray(neighbors.unit_rows(x))
    n_neighbors = min(cfg.n_neighbors, x.shape[0])
    nn, knn_s = timing.wall(
        neighbors.projected_knn,
        k_knn,
        x,
        n_neighbors - 1,
        dims=cfg.knn_dims,
        candidates=cfg.knn_candidates,
        bins=cfg.knn_bins,
    )
    logging.info("kNN graph (%d neighbours, %d features): %.1f s", n_neighbors - 1, x.shape[1], knn_s)
    emb, embed_s = timing.wall(
        tsne.umap,
        k_embed,
        x,
        dim=cfg.embed_dim,
        n_neighbors=n_neighbors,
        min_dist=cfg.min_dist,
        n_epochs=cfg.n_epochs,
        substeps=cfg.substeps,
        knn=nn,
    )
    z = np.asarray(emb.embedding)
    logging.info("embedding to %d-D: %.1f s", cfg.embed_dim, embed_s)
    timed = gmm.fit_timed(k_gmm, z, k, covariance_type=cfg.covariance_type, n_init=cfg.gmm_n_init)
    res = timed.out
    np.save(wd / "embedding.npy", z)
    source = "autoencoder codes" if cfg.pretrained else "raw features"
    title = f"{source} -> {cfg.embed_dim}-D neighbour embedding -> GMM, {ds.name}, K={k}"
    params = {"gmm": {name: np.asarray(v) for name, v in res.params._asdict().items()}}
    config = {"n_components": k, "covariance_type": cfg.covariance_type, "dim": cfg.embed_dim}
    results = common.save_clustering(run, ds, res.labels, params, config, title)
    if z.shape[1] == 2:
        pic, names = z, ("1", "2")
    else:
        pic, names = np.asarray(pca.fit_transform(k_pic, z, 2)[1]), ("PC 1", "PC 2")
    sample = np.random.default_rng(run.seed).permutation(len(z))[:5000]
    plots.embedding_2d(
        pic[sample], np.asarray(res.labels)[sample], wd / "plots" / "embedding.png", title=title, axis_names=names
    )
    results |= {
        "features": "pretrained" if cfg.pretrained else "raw",
        "pretrained": cfg.pretrained,
        "n_features": int(x.shape[1]),
        "n_clusters": k,
        "embed_dim": cfg.embed_dim,
        "n_neighbors": n_neighbors,
        "metric": cfg.metric,
        "n_epochs": emb.n_iter,
        "lower_bound": float(res.lower_bound),
        "lower_bound_per_init": np.asarray(res.lower_bound_per_init).tolist(),
        "knn_seconds": round(knn_s, 2),
        "embed_seconds": round(embed_s, 2),
        "gmm_seconds": timed.run_seconds,
        "gmm_compile_seconds": timed.compile_seconds,
    }
    if tensorboard:
        _log_manifold_scores(wd, results)
    common.finish(
        run,
        results,
        f"manifold_cluster {ds.name}/{run.split} ({source}) K={k}: {common.score_text(results)} "
        f"kNN {knn_s:.1f}s embedding {embed_s:.1f}s GMM {timed.run_seconds:.1f}s -> {wd}",
        started,
    )
    return results


def _log_manifold_scores(wd, results: dict) -> None:
    """One row (stage "manifold", at the embedding's epoch count) of the scores and timings: this stage has no
    training loop, so TensorBoard gets its end point, to compare runs by. A rerun replaces the row."""
    log = runlog.MetricsLog(wd, tensorboard=True)
    log.rewind(-1, stage="manifold")
    names = ("acc", "nmi", "ari", "purity", "lower_bound", "knn_seconds", "embed_seconds", "gmm_seconds")
    log.log(results["n_epochs"], stage="manifold", **{k: results[k] for k in names if k in results})
