"""Self-labelling after a clustering: the encoder and a softmax head trained on augmented views of the samples
whose cluster their neighbours agree on, then of those the network itself is confident about.

    conf = selftrain.neighbour_agreement(codes, labels, k=20)        # [n] share of neighbours in the same cluster
    res = selftrain.fit(key, model, ae_params, x, labels, conf, cfg)
    res.labels, res.proba                                            # [n], [n, k] of the untransformed x

Round 0 keeps the samples whose `confidence` is at least `threshold`; each later round keeps those whose largest
softmax probability under the network is. A round trains the encoder with a linear head for `epochs` epochs of
its kept samples, each step on a fresh random move and turn of its images (cross-entropy against the kept
labels). This is the self-labelling step of SCAN (Van Gansbeke et al., ECCV 2020: confidence threshold 0.99,
augmented views) with DEC-DA's affine moves (Guo et al., ACML 2018) as the augmentation; the first confident set
is SCAN's neighbour-consistency idea applied to the clustering's labels. Nothing reads true labels. Design and
measurements: docs/design/manifold_clustering.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from research import checkpointing, checks
from research.deep import dec, pretrain, train
from research.deep.dec import IGNORED_KEYS


class SelfTrainConfig(NamedTuple):
    """The defaults are the settings measured on MNIST (docs/design/manifold_clustering.md)."""

    rounds: int = 8  # confident sets chosen, each followed by `epochs` of training
    epochs: float = 10.0  # per round, over that round's confident samples
    threshold: float = 0.99  # SCAN's: a sample is kept when its largest probability reaches this
    learning_rate: float = 1e-3  # Adam
    batch_size: int = 256
    augment: Callable | None = None  # (key, batch) -> batch, hashable, e.g. augment.random_affine(...)
    log_every: int = 0  # steps; 0: once per round


class SelfTrainResult(NamedTuple):
    params: dict  # {"ae": the encoder's layers, "head": {"w": [latent, k], "b": [k]}}
    labels: np.ndarray  # [n] argmax of proba
    proba: np.ndarray  # [n, k] the network's softmax on the untransformed x
    history: list  # per round: {"round", "kept", "kept_fraction", "changed"}


@functools.cache
def _step(model, augment, learning_rate: float):
    tx = optax.adam(learning_rate)

    def loss_fn(params, batch, key):
        x = batch["x"] if augment is None else augment(key, batch["x"])
        logits = _logits(model, params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    return train.make_step(loss_fn, tx), tx


def _logits(model, params, x):
    z = model.apply(params["ae"], x, method="encode")
    return z @ params["head"]["w"] + params["head"]["b"]


@functools.partial(jax.jit, static_argnums=0)
def _softmax(model, params, x_bd):
    return jax.nn.softmax(_logits(model, params, x_bd), axis=-1)


def predict_proba(model, params, x, *, batch_size: int = 4096) -> np.ndarray:
    """[n, k] softmax of the self-trained network on x [n, d], in batches."""
    return pretrain.map_rows(lambda x_bd: _softmax(model, params, x_bd), x, batch_size=batch_size)


def neighbour_agreement(z, labels, k: int = 20) -> np.ndarray:
    """[n] the share of each row's k - 1 nearest neighbours in z (Euclidean; the row itself left out) that carry
    its label."""
    from research.embed import neighbors

    labels = np.asarray(labels)
    nb = np.asarray(neighbors.knn(z, k).indices)[:, 1:]
    return (labels[nb] == labels[:, None]).mean(1)


def confident(labels, confidence, threshold: float) -> np.ndarray:
    """Indices of the rows whose confidence is at least `threshold`; every cluster keeps at least its most
    confident row, so none drops out of the training targets."""
    labels, confidence = np.asarray(labels), np.asarray(confidence)
    keep = confidence >= threshold
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if not keep[members].any():
            keep[members[confidence[members].argmax()]] = True
    return np.flatnonzero(keep)


def fit(
    key,
    model,
    ae_params,
    x,
    labels,
    confidence,
    cfg: SelfTrainConfig | None = None,
    log=None,
    on_round=None,
    workdir=None,
    config=None,
) -> SelfTrainResult:
    """Self-labels x [n, d] from a clustering's `labels` [n] (0..k-1) and their `confidence` [n] (module
    docstring). `log`: a runlog.MetricsLog for the training rows; `on_round(round, labels)`: called after each
    round with the network's labels (e.g. to score them). `workdir`: each finished round is checkpointed in
    <workdir>/train_ckpt (guarded by `config`, the run's settings), and a run interrupted there resumes from its
    last finished round with the same bits."""
    cfg = SelfTrainConfig() if cfg is None else cfg
    x = checks.as_matrix(x)
    labels = checks.check_labels(labels, len(x), "labels")
    if labels.min() < 0:
        raise ValueError("labels must be clusters 0..k-1; drop or relabel the noise rows (-1) first.")
    confidence = np.asarray(confidence, np.float32)
    if confidence.shape != (len(x),) or not np.isfinite(confidence).all():
        raise ValueError(f"confidence must be [n] finite values for x's {len(x)} rows, got shape {confidence.shape}.")
    if not 0.0 < cfg.threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {cfg.threshold}.")
    checks.check_positive_int(cfg.rounds, "rounds")
    k = int(labels.max()) + 1
    enc = jax.tree.map(jnp.array, dec.encoder_params(model, ae_params, x[:1]))  # a copy: training donates it
    latent = int(jax.eval_shape(lambda: model.apply(enc, x[:1], method="encode")).shape[-1])
    params = {"ae": enc, "head": {"w": jnp.zeros((latent, k)), "b": jnp.zeros((k,))}}
    step, tx = _step(model, cfg.augment, float(cfg.learning_rate))
    # What a round hands the next: a checkpoint after each round holds it all (each round starts a fresh optimiser
    # from its own key), so a resumed run continues with the same bits.
    carry = {
        "params": params,
        "labels": jnp.asarray(labels, jnp.int32),
        "confidence": jnp.asarray(confidence),
        "kept": jnp.zeros(cfg.rounds, jnp.int32),
        "changed": jnp.zeros(cfg.rounds, jnp.float32),
    }
    ckpt, start = None, 0
    if workdir is not None:
        ckpt = checkpointing.Checkpointer(
            f"{workdir}/train_ckpt", config or {}, ignore_keys=IGNORED_KEYS, max_to_keep=1
        )
        start = ckpt.latest_step() or 0
        if start:
            carry = ckpt.restore(jax.eval_shape(lambda: carry))
            logging.info("self-training: resumed after round %d of %s", start - 1, ckpt.directory)
    try:
        for r in range(start, cfg.rounds):
            carry = _round(r, key, step, tx, model, x, carry, cfg, log)
            if ckpt is not None:
                ckpt.save(r + 1, carry, force=True)
            if on_round is not None:
                on_round(r, np.asarray(carry["labels"]))
            logging.info("self-training round %d: %d samples kept (%.1f%%), %.2f%% of labels changed", r,
                         int(carry["kept"][r]), 100 * int(carry["kept"][r]) / len(x),
                         100 * float(carry["changed"][r]))  # fmt: skip
    finally:
        if ckpt is not None:
            ckpt.close()
    params, labels = carry["params"], np.asarray(carry["labels"])
    proba_nk = predict_proba(model, params, x)
    kept, changed = np.asarray(carry["kept"]), np.asarray(carry["changed"])
    history = [
        {"round": r, "kept": int(kept[r]), "kept_fraction": int(kept[r]) / len(x), "changed": float(changed[r])}
        for r in range(cfg.rounds)
    ]
    return SelfTrainResult(params, labels, proba_nk, history)


def _round(r, key, step, tx, model, x, carry, cfg, log) -> dict:
    """Round r: train on the rows whose confidence reaches the threshold, then label every row anew."""
    labels, confidence = np.asarray(carry["labels"]), np.asarray(carry["confidence"])
    idx = confident(labels, confidence, cfg.threshold)
    steps = max(1, int(np.ceil(cfg.epochs * len(idx) / cfg.batch_size)))
    round_key, data_key = jax.random.split(jax.random.fold_in(key, r))
    state = train.init_state(round_key, carry["params"], tx)
    data = {"x": jnp.asarray(x[idx]), "y": jnp.asarray(labels[idx], jnp.int32)}
    state = train.run(
        step, state, data, batch_size=min(cfg.batch_size, len(idx)), num_steps=steps,
        log_every=cfg.log_every or steps, log=log, stage=f"selftrain{r}", data_key=data_key,
    )  # fmt: skip
    proba_nk = predict_proba(model, state.params, x)
    new = proba_nk.argmax(1)
    return {
        "params": state.params,
        "labels": jnp.asarray(new, jnp.int32),
        "confidence": jnp.asarray(proba_nk.max(1)),
        "kept": carry["kept"].at[r].set(len(idx)),
        "changed": carry["changed"].at[r].set(float(np.mean(new != labels))),
    }
