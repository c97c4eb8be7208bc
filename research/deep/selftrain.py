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

from research import checks
from research.deep import dec, train


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
    x = np.asarray(x, np.float32)
    return np.concatenate(
        [np.asarray(_softmax(model, params, x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    )


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
    key, model, ae_params, x, labels, confidence, cfg: SelfTrainConfig | None = None, log=None, on_round=None
) -> SelfTrainResult:
    """Self-labels x [n, d] from a clustering's `labels` [n] (0..k-1) and their `confidence` [n] (module
    docstring). `log`: a runlog.MetricsLog for the training rows; `on_round(round, labels)`: called after each
    round with the network's labels (e.g. to score them)."""
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
    history = []
    for r in range(cfg.rounds):
        idx = confident(labels, confidence, cfg.threshold)
        y = labels[idx]
        steps = max(1, int(np.ceil(cfg.epochs * len(idx) / cfg.batch_size)))
        round_key, data_key = jax.random.split(jax.random.fold_in(key, r))
        state = train.init_state(round_key, params, tx)
        data = {"x": jnp.asarray(x[idx]), "y": jnp.asarray(y, jnp.int32)}
        log_every = cfg.log_every or steps
        state = train.run(
            step, state, data, batch_size=min(cfg.batch_size, len(idx)), num_steps=steps, log_every=log_every,
            log=log, stage=f"selftrain{r}", data_key=data_key,
        )  # fmt: skip
        params = state.params
        proba_nk = predict_proba(model, params, x)
        new, confidence = proba_nk.argmax(1), proba_nk.max(1)
        row = {"round": r, "kept": len(idx), "kept_fraction": len(idx) / len(x)}
        row["changed"] = float(np.mean(new != labels))
        labels = new
        history.append(row)
        if on_round is not None:
            on_round(r, labels)
        logging.info("self-training round %d: %d samples kept (%.1f%%), %.2f%% of labels changed", r, len(idx),
                     100 * row["kept_fraction"], 100 * row["changed"])  # fmt: skip
    return SelfTrainResult(params, labels, proba_nk, history)
