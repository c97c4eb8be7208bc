"""Autoencoder pretraining: end to end, or DEC's greedy layer-wise denoising stacks followed by fine-tuning.

    model = nets.build("dec", 784)
    cfg = PretrainConfig(epochs=200)                       # Adam, MSE, batch 256
    params = pretrain(key, model, x, cfg, workdir=wd)      # resumes from wd/ckpt if a run was interrupted
    z = encode(model, params, x)

Layer-wise (Xie et al., 2016, section 3.2): each pair (enc_i, dec_i) of a dense autoencoder is trained as a
denoising autoencoder on the previous layer's codes, with 20% dropout on its input and on its hidden code, by
SGD (lr 0.1 divided by 10 every 20k steps); then the whole network is fine-tuned without dropout.

The decoder's output is linear; `output_activation="sigmoid"` reads it as logits (pixels in [0, 1]): the
objective is then "bce" (binary cross-entropy from the logits, stable) or "sigmoid_mse" (MSE of the sigmoid).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import checkpointing, distributed, runlog
from research.checks import as_matrix, check_positive_int
from research.deep import train
from research.nets.conv import ConvAutoencoder
from research.nets.mlp import ACTIVATIONS, MLPAutoencoder, dae_layer

LOSSES = ("mse", "bce")
OUTPUT_ACTIVATIONS = ("auto", "linear", "sigmoid")  # auto: sigmoid for bce, linear for mse
OBJECTIVES = ("mse", "bce", "sigmoid_mse")
OPTIMIZERS = ("adam", "sgd", "adadelta")
# Keras 2's Adadelta (the notes' optimizer): rho 0.95, epsilon 1e-7 (optax's defaults are 0.9 and 1e-6).
ADADELTA_RHO, ADADELTA_EPS = 0.95, 1e-7


class PretrainConfig(NamedTuple):
    """How to pretrain. Steps and epochs count minibatches of `batch_size` and passes over the data."""

    loss: str = "mse"  # "mse" or "bce" (binary cross-entropy; needs the sigmoid output)
    output_activation: str = "auto"  # "linear", "sigmoid" (the output read as logits), auto: as the loss needs
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9  # sgd only
    decay_every: int = 0  # steps between learning-rate divisions by 10 (0: constant)
    batch_size: int = 256
    epochs: float = 200  # end-to-end training, or fine-tuning after the layer-wise stage
    layerwise_steps: int = 0  # > 0: DEC's greedy layer-wise stage first, this many steps per layer
    dropout: float = 0.2  # layer-wise stage only
    log_every: int = 0  # steps; 0: once per epoch
    checkpoint_every: int = 0  # steps; 0: as log_every
    # End-to-end stage only: (key, batch) -> batch, hashable, e.g. `augment.random_affine(...)`. Each step
    # reconstructs its batch as transformed by the step's key (the input and the target alike, as DEC-DA does).
    augment: Callable | None = None
    devices: int | None = None  # devices each batch is split over (train.data_mesh; None: all visible)


def optimizer(name: str, learning_rate: float, *, momentum: float = 0.9, decay_every: int = 0):
    """Adam, SGD with momentum, or Adadelta (Keras 2's rho and epsilon; its learning rate scales the update:
    1.0 in Zeiler's paper and Keras before TF 2, 0.001 in TF 2's Keras); with `decay_every`, the rate is divided
    by 10 every that many steps."""
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
    lr = learning_rate
    if decay_every:
        lr = optax.exponential_decay(learning_rate, decay_every, 0.1, staircase=True)
    if name == "adam":
        return optax.adam(lr)
    if name == "sgd":
        return optax.sgd(lr, momentum=momentum or None)
    if name == "adadelta":
        return optax.adadelta(lr, rho=ADADELTA_RHO, eps=ADADELTA_EPS)
    raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}.")


def objective(loss: str, output_activation: str = "auto") -> str:
    """The training objective of a loss and an output activation, one of OBJECTIVES: "mse" (linear output),
    "bce" (sigmoid output, from the logits) or "sigmoid_mse". A saved model's spec keeps it as its "loss"."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {LOSSES}.")
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output activation {output_activation!r}; choose from {OUTPUT_ACTIVATIONS}.")
    if loss == "bce":
        if output_activation == "linear":
            raise ValueError("binary cross-entropy needs outputs in (0, 1): use the sigmoid output activation.")
        return "bce"
    return "sigmoid_mse" if output_activation == "sigmoid" else "mse"


def reconstruction_loss(out, x, kind: str):
    """Mean over samples and features of the objective `kind` (see `objective`): squared error of the output
    (mse) or of its sigmoid (sigmoid_mse), or binary cross-entropy with `out` as logits (bce), computed as
    softplus(out) - x * out, which never takes the log of a rounded sigmoid."""
    if kind == "mse":
        return jnp.mean(jnp.square(out - x))
    if kind == "sigmoid_mse":
        return jnp.mean(jnp.square(jax.nn.sigmoid(out) - x))
    if kind == "bce":
        return jnp.mean(optax.sigmoid_binary_cross_entropy(out, x))
    raise ValueError(f"unknown loss {kind!r}; choose from {OBJECTIVES}.")


def output(out, kind: str):
    """The reconstruction from the decoder's output: itself for mse, its sigmoid for bce and sigmoid_mse."""
    return jax.nn.sigmoid(out) if kind in ("bce", "sigmoid_mse") else out


# --- batched inference ------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 3))
def _apply_rows(model, params, x_bd, method):
    return model.apply(params, x_bd, method=method)


def map_rows(fn, x, *, batch_size: int = 4096):
    """fn (jitted, x_bd [b, d] -> a pytree of [b, ...] arrays) over x [n, d] in row batches, concatenated as numpy
    (the last, smaller batch compiles once more)."""
    x = as_matrix(x)
    outs = [fn(jnp.asarray(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return jax.tree.map(lambda *a: np.concatenate(a), *outs)


def _batched(model, params, x, method, batch_size):
    return map_rows(lambda x_bd: _apply_rows(model, params, x_bd, method), x, batch_size=batch_size)


def encode(model, params, x, *, batch_size: int = 4096) -> np.ndarray:
    """z [n, latent] for x [n, d], in batches (the last, smaller one compiles once more)."""
    return _batched(model, params, x, "encode", batch_size)


def reconstruct(model, params, x, loss: str = "mse", *, batch_size: int = 4096) -> np.ndarray:
    """x_hat [n, d]: the decoder's output through `output` for the loss the model was trained with."""
    _, out = _batched(model, params, x, "__call__", batch_size)
    return np.asarray(output(jnp.asarray(out), loss))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _loss_sum(model, params, x_bd, kind):
    _, out = model.apply(params, x_bd)
    return reconstruction_loss(out, x_bd, kind) * x_bd.shape[0]


def evaluate(model, params, x, kind: str, *, batch_size: int = 4096) -> float:
    """The objective `kind` (see `objective`) on x [n, d], averaged over all rows, without augmentation: the
    validation loss of held-out data, on the scale of the training loss."""
    x = as_matrix(x)
    total = sum(float(_loss_sum(model, params, jnp.asarray(x[i : i + batch_size]), kind))
                for i in range(0, len(x), batch_size))  # fmt: skip
    return total / len(x)


# --- training ---------------------------------------------------------------------------------------------------


def _schedule(cfg: PretrainConfig, n: int) -> tuple[int, int]:
    log_every = cfg.log_every or max(1, n // cfg.batch_size)
    return log_every, cfg.checkpoint_every or log_every


def _checkpointer(workdir, stage, config):
    if workdir is None:
        return None
    return checkpointing.Checkpointer(
        f"{workdir}/ckpt/{stage}", config, ignore_keys=IGNORED_KEYS, max_to_keep=2, save_interval_steps=1
    )


# Flags that change neither the numbers nor the schedule of steps; a resumed run may change them.
IGNORED_KEYS = (
    frozenset({"workdir", "overwrite", "data_dir", "log_every", "checkpoint_every", "verbosity"})
    | distributed.PLACEMENT_FLAGS
)


def _train_stage(stage, loss_fn, params, data, tx, key, num_steps, cfg, workdir, config, log, scan=True, on_chunk=None):
    n = jax.tree.leaves(data)[0].shape[0]
    log_every, checkpoint_every = _schedule(cfg, n)
    state = train.init_state(key, params, tx)
    ckpt = _checkpointer(workdir, stage, config)
    try:
        state = train.run(
            _cached_step(loss_fn, tx),
            state,
            data,
            batch_size=cfg.batch_size,
            num_steps=num_steps,
            log_every=log_every,
            checkpoint_every=checkpoint_every,
            ckpt=ckpt,
            log=log,
            stage=stage,
            scan=scan,
            on_chunk=on_chunk,
            devices=cfg.devices,
        )
    finally:
        if ckpt is not None:
            ckpt.close()
    return state.params


_STEPS: dict = {}


def _cached_step(loss_fn, tx):
    # The jitted chunk is keyed on the step function; equal settings must give the same object to compile once.
    return _STEPS.setdefault((loss_fn, tx), train.make_step(loss_fn, tx))


@functools.cache
def _loss_end_to_end(model, kind, augment=None):
    def loss_fn(params, batch, key):
        if augment is not None:
            batch = augment(key, batch)
        _, out = model.apply(params, batch)
        return reconstruction_loss(out, batch, kind)

    return loss_fn


@functools.cache
def _loss_dae(activation, rate, hidden_linear, out_linear, kind):
    act = ACTIVATIONS[activation]

    def loss_fn(params_i, batch, key):
        out = dae_layer(
            params_i, batch, key, rate=rate, act=act, hidden_linear=hidden_linear, out_linear=out_linear, train=True
        )
        return reconstruction_loss(out, batch, kind if out_linear else "mse")

    return loss_fn


@functools.cache
def _tx(name, learning_rate, momentum, decay_every):
    return optimizer(name, learning_rate, momentum=momentum, decay_every=decay_every)


def pretrain(key, model, x, cfg: PretrainConfig | None = None, *, workdir=None, config=None, log=None, on_chunk=None):
    """Trains `model` to reconstruct x [n, d]; returns its params.

    Args:
      key: the run's key; init, dropout and shuffles derive from it.
      model: an autoencoder from `research.nets` (layer-wise needs an `MLPAutoencoder`).
      workdir: when given, checkpoints go to <workdir>/ckpt/<stage>/ and an interrupted call resumes there.
      config: the run's settings, stored with each checkpoint; a checkpoint of other settings is refused
        (`CheckpointMismatchError`) instead of being resumed into this run.
      log: a `research.runlog.MetricsLog` for progress rows (default: one in `workdir`, if given).
      on_chunk: called with the train state at each progress row of the end-to-end stage; the dict it returns
        joins the row (e.g. how well the codes cluster so far, see experiments/autoencoder.py).
    """
    cfg = PretrainConfig() if cfg is None else cfg
    x = jnp.asarray(as_matrix(x))
    n = x.shape[0]
    check_positive_int(cfg.batch_size, "batch_size")
    train.check_batch_size(cfg.batch_size, n)
    kind = objective(cfg.loss, cfg.output_activation)
    if log is None and workdir is not None:
        log = runlog.MetricsLog(workdir)
    config = {} if config is None else dict(config)
    k_init, k_layers, k_train = jax.random.split(key, 3)
    params = model.init(k_init, x[:1])
    if cfg.layerwise_steps:
        params = _layerwise(k_layers, model, params, x, cfg, workdir, config, log)
    tx = _tx(cfg.optimizer, cfg.learning_rate, cfg.momentum, cfg.decay_every)
    num_steps = train.steps_for(cfg.epochs, n, cfg.batch_size)
    stage = "finetune" if cfg.layerwise_steps else "pretrain"
    loss_fn = _loss_end_to_end(model, kind, cfg.augment)
    # XLA's CPU convolutions are several times slower inside a scan: conv nets train step by step (train.py).
    scan = not isinstance(model, ConvAutoencoder)
    return _train_stage(
        stage, loss_fn, params, x, tx, k_train, num_steps, cfg, workdir, config, log, scan, on_chunk=on_chunk
    )


def _layerwise(key, model, params, x, cfg, workdir, config, log):
    """Greedy stage: trains (enc_i, dec_i) as a denoising autoencoder on the codes of layers < i."""
    if not isinstance(model, MLPAutoencoder):
        raise TypeError(
            "layer-wise pretraining is defined for mirrored dense autoencoders (arch dec, dense64, mlp:...)."
        )
    tree = dict(params["params"])
    depth = len(model.widths)
    tx = _tx(cfg.optimizer, cfg.learning_rate, cfg.momentum, cfg.decay_every)
    act = ACTIVATIONS[model.activation]
    h = x
    for i in range(depth):
        hidden_linear, out_linear = i == depth - 1, i == 0
        loss_fn = _loss_dae(
            model.activation, cfg.dropout, hidden_linear, out_linear, objective(cfg.loss, cfg.output_activation)
        )
        pair = {"enc": tree[f"enc_{i}"], "dec": tree[f"dec_{i}"]}
        pair = _train_stage(
            f"layer{i}",
            loss_fn,
            pair,
            h,
            tx,
            jax.random.fold_in(key, i),
            cfg.layerwise_steps,
            cfg,
            workdir,
            config,
            log,
        )
        tree[f"enc_{i}"], tree[f"dec_{i}"] = pair["enc"], pair["dec"]
        if i < depth - 1:
            h = _next_codes(h, pair["enc"], act)
    return {**params, "params": tree}


@functools.partial(jax.jit, static_argnums=(2,))
def _next_codes(h, enc, act):
    return act(h @ enc["kernel"] + enc["bias"])


# --- the trained model on disk ----------------------------------------------------------------------------------

MODEL_DIR = "model"


def save_model(workdir, spec: dict, params, *, overwrite: bool = False) -> str:
    """Saves final params to <workdir>/model with `spec` (arch, input_dim, image_shape, activation, init, loss):
    enough for `load_model` to rebuild the network without the flags of the run that trained it."""
    return checkpointing.save_pytree(f"{workdir}/{MODEL_DIR}", {"params": params}, config=spec, overwrite=overwrite)


def load_model(workdir):
    """(model, params, spec) of a finished autoencoder run in `workdir` (written by `save_model`)."""
    from research import nets

    path = f"{workdir}/{MODEL_DIR}"
    try:
        spec = checkpointing.load_config(path)
    except checkpointing.CheckpointNotFoundError:
        raise checkpointing.CheckpointNotFoundError(
            f"{workdir} holds no trained autoencoder ({path} is missing or empty). Point --pretrained at the "
            "workdir of a finished `python -m experiments.autoencoder` run, or leave it empty to pretrain first."
        ) from None
    model = nets.build(
        spec["arch"],
        spec["input_dim"],
        image_shape=spec.get("image_shape"),
        activation=spec["activation"],
        init=spec["init"],
    )
    abstract = {"params": jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, spec["input_dim"])))}
    params = checkpointing.load_pytree(path, abstract)["params"]
    return model, params, spec
