"""Deep Embedded Clustering (Xie et al., 2016) and its variants on a pretrained autoencoder.

    model, ae_params, _ = pretrain.load_model("checkpoints/autoencoder/mnist-dec-seed0")
    res = dec.fit(key, model, ae_params, x_nd, DECConfig(n_clusters=10), y=y, workdir=wd)
    res.labels, res.params["centroids"]               # [n]; [k, latent]

Soft assignments q_ij ∝ (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2), sharpened into the target
p_ij ∝ q_ij^2 / sum_i q_ij, train encoder and centroids to minimise KL(P || Q); P is recomputed on all samples
every `update_interval` steps, and training stops when fewer than `tol` of the labels changed. `target="batch"`
is ClustPy's rule instead: each step's P comes from its own batch's Q, with no pass over the data. `DECConfig` selects
IDEC (`gamma`, Guo et al. 2017), DEC w/o backprop (`frozen`) and DEC-DA (`augment`, Guo et al. 2018). The
steps run on `train.advance`; a checkpoint holds the last update's labels, so a resumed run ends bit-equal.
`fit(..., on_update=Snapshots(n, every))` keeps a subset's codes every few updates: the DEC paper's picture.

The method, the variants and the results: docs/design/dec.md.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from research import checkpointing, distributed, metrics, runlog
from research.checks import as_matrix, check_n_clusters, check_positive_float, check_positive_int
from research.cluster import kmeans
from research.deep import pretrain, train
from research.nets.conv import ConvAutoencoder


class DECConfig(NamedTuple):
    """DEC's settings; the defaults are the DEC paper's for MNIST (and Keras DEC's)."""

    n_clusters: int = 10
    alpha: float = 1.0  # degrees of freedom of the Student's t kernel
    update_interval: int = 140  # steps between recomputations of the target P
    tol: float = 1e-3  # stop when fewer than this fraction of labels changed between two updates
    max_iter: int = 20000  # steps at most
    batch_size: int = 256
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9  # sgd only
    gamma: float | None = None  # None: DEC. A weight: IDEC, loss = reconstruction + gamma * KL(P || Q)
    loss: str = "mse"  # IDEC: the reconstruction loss the autoencoder was trained with
    frozen: bool = False  # DEC w/o backprop: the encoder is fixed, only the centroids are trained
    n_init: int = 20  # k-means restarts that place the initial centroids
    checkpoint_every: int = 5  # target updates between checkpoints (with a workdir)
    augment: Callable | None = None  # DEC-DA: (key, batch) -> batch, hashable; the step's inputs only
    devices: int | None = None  # devices each batch is split over (train.data_mesh; None: all visible)
    # "full": P from all n samples every update_interval steps (the DEC paper). "batch": each step's P from its own
    # batch's Q (ClustPy's rule); then update_interval only spaces the labelling passes that check tol, and with
    # tol = 0 there are none: exactly max_iter steps, labelled once at the end (ClustPy's fixed epochs).
    target: str = "full"


class DECResult(NamedTuple):
    """params: {"ae": autoencoder params, "centroids": [k, latent]}; labels: argmax q at the last update [n];
    q: [n, k] at the last update; embedding: the codes [n, latent] q was computed from; init_labels: the
    k-means labels the centroids started from (AE + k-means);
    n_iter: steps trained; n_updates: updates, i.e. passes that labelled all samples (step 0 included; with
    target="full" each also made the target); converged: stopped by `tol` (not `max_iter`); history: one dict
    per stretch of steps made by this call (a resumed call starts at its checkpoint), and for the start: step,
    loss and samples/s of the stretch before it and, at updates, delta_label and (when y was given) acc/nmi/ari.
    With target="batch" and tol = 0 only the first and last rows are updates."""

    params: Any
    labels: np.ndarray
    q: np.ndarray
    embedding: np.ndarray
    init_labels: np.ndarray
    n_iter: int
    n_updates: int
    converged: bool
    history: list


class Update(NamedTuple):
    """What `fit`'s `on_update` sees at each target update: step; index (updates before it, so 0 at step 0);
    z: the codes [n, latent] the update computed q from (no extra encoding); labels: argmax q [n];
    centroids [k, latent]; last: this update ends the fit (converged or at max_iter)."""

    step: int
    index: int
    z: np.ndarray
    labels: np.ndarray
    centroids: np.ndarray
    last: bool


# --- the objective --------------------------------------------------------------------------------------------------


def _log_soft_assign(z_nd, mu_kd, alpha):
    d2 = jnp.sum(z_nd**2, 1, keepdims=True) - 2.0 * z_nd @ mu_kd.T + jnp.sum(mu_kd**2, 1)
    logits = -0.5 * (alpha + 1.0) * jnp.log1p(jnp.maximum(d2, 0.0) / alpha)
    return jax.nn.log_softmax(logits, axis=1)


def soft_assign(z_nd, mu_kd, alpha: float = 1.0):
    """q [n, k]: Student's t similarity of each embedded point to each centroid, rows summing to 1."""
    return jnp.exp(_log_soft_assign(z_nd, mu_kd, alpha))


def target_distribution(q_nk):
    """p [n, k] = q^2 / f (f: the soft cluster sizes sum_i q_ij), normalised per row. Squaring sharpens the
    confident assignments; dividing by f keeps large clusters from drawing every point."""
    w = jnp.square(q_nk) / jnp.maximum(jnp.sum(q_nk, 0), 1e-12)
    return w / jnp.sum(w, 1, keepdims=True)


def kl_divergence(p_nk, log_q_nk):
    """KL(P || Q) summed over clusters, averaged over samples (Keras' "kld"); 0 log 0 counts as 0."""
    return jnp.mean(jnp.sum(jax.scipy.special.xlogy(p_nk, p_nk) - p_nk * log_q_nk, axis=1))


def batch_target(log_q_nk):
    """ClustPy's target: P of the batch's own Q (its cluster frequencies are the batch's), held constant."""
    return jax.lax.stop_gradient(target_distribution(jnp.exp(log_q_nk)))


@functools.cache
def _loss(model, alpha: float, gamma: float | None, recon: str, frozen: bool, augment=None, target: str = "full"):
    """loss_fn(params, batch, key) for `train.make_step`; batch = {"x": inputs (codes when frozen), "p": targets}
    (target="full"), or {"x": ...} alone (target="batch": P from the batch's own Q)."""

    def loss_fn(params, batch, key):
        x = batch["x"] if augment is None else augment(key, batch["x"])
        if frozen:
            z = x
        elif gamma is None:
            z = model.apply(params["ae"], x, method="encode")
        else:
            z, out = model.apply(params["ae"], x)
        log_q = _log_soft_assign(z, params["centroids"], alpha)
        if target == "full":
            p = batch["p"]
        elif augment is None:
            p = batch_target(log_q)
        else:  # DEC-DA: the targets are the untransformed samples' (one more forward pass through the encoder)
            clean = model.apply(params["ae"], batch["x"], method="encode")
            p = batch_target(_log_soft_assign(clean, params["centroids"], alpha))
        kl = kl_divergence(p, log_q)
        if gamma is None or frozen:
            return kl
        return pretrain.reconstruction_loss(out, x, recon) + gamma * kl

    return loss_fn


@functools.cache
def _step(model, alpha, gamma, recon, frozen, optimizer, learning_rate, momentum, augment, target="full"):
    # One step object per setting, so its jitted stretch compiles once however many fits run in a process.
    tx = pretrain.optimizer(optimizer, learning_rate, momentum=momentum)
    return train.make_step(_loss(model, alpha, gamma, recon, frozen, augment, target), tx), tx


_soft_assign_jit = jax.jit(soft_assign, static_argnums=2)


def encoder_params(model, ae_params, x_1d):
    """ae_params with only the layers that `encode` reads, the decoder's left out: Flax creates a submodule's
    parameters only when it is called, so initialising `encode` alone on x_1d [1, d] (shapes only) names them."""
    used = jax.eval_shape(lambda: model.init(jax.random.key(0), x_1d, method="encode"))["params"]
    return {**ae_params, "params": {name: layer for name, layer in ae_params["params"].items() if name in used}}


def embed(model, params, x, frozen: bool = False) -> np.ndarray:
    """The embedding DEC clusters: the encoder's codes of x (x itself when `frozen`: it holds the codes)."""
    return np.asarray(x) if frozen else pretrain.encode(model, params["ae"], x)


def predict_proba(model, params, x, alpha: float = 1.0) -> np.ndarray:
    """q [n, k] of x [n, d] under a trained DEC (params as in `DECResult.params`)."""
    z = embed(model, params, as_matrix(x))
    return np.asarray(_soft_assign_jit(jnp.asarray(z), params["centroids"], float(alpha)))


def objective(model, params, x, alpha: float = 1.0) -> float:
    """KL(P || Q) on x with P the target of x's own Q: the DEC paper's L for its generalizability
    G = L_train / L_validation (section 5.3)."""
    q = jnp.asarray(predict_proba(model, params, x, alpha))
    return float(kl_divergence(target_distribution(q), jnp.log(jnp.maximum(q, 1e-30))))


def generalizability(model, params, x_train, x_val, alpha: float = 1.0) -> dict:
    """The DEC paper's G = L_train / L_validation (section 5.3): {loss_train, loss_validation, generalizability}."""
    l_train = objective(model, params, x_train, alpha)
    l_val = objective(model, params, x_val, alpha)
    return {"loss_train": l_train, "loss_validation": l_val, "generalizability": l_train / max(l_val, 1e-30)}


# --- training ---------------------------------------------------------------------------------------------------------

# Settings a resumed run may change: where it writes and how often (and whether to TensorBoard) it logs.
IGNORED_KEYS = (
    frozenset(
        {
            "workdir",
            "overwrite",
            "data_dir",
            "verbosity",
            "checkpoint_updates",
            "log_every",
            "tensorboard",
            "snapshot_every",
        }
    )
    | distributed.PLACEMENT_FLAGS
)


TARGETS = ("full", "batch")


def _labels_only_at_ends(cfg: DECConfig) -> bool:
    """With batch targets and no tol, nothing needs the labels between the start and the end: no passes."""
    return cfg.target == "batch" and cfg.tol == 0


def _update_index(cfg: DECConfig, step: int) -> int:
    """Updates before the one at `step` (which is at an update_interval boundary, or at max_iter)."""
    return int(step > 0) if _labels_only_at_ends(cfg) else -(-step // cfg.update_interval)


def _check(cfg: DECConfig, n: int) -> DECConfig:
    check_n_clusters(cfg.n_clusters, n)
    check_positive_float(cfg.alpha, "alpha")
    check_positive_int(cfg.update_interval, "update_interval")
    check_positive_int(cfg.max_iter, "max_iter")
    check_positive_int(cfg.checkpoint_every, "checkpoint_every")
    check_positive_float(cfg.tol, "tol", allow_zero=True, meaning="the fraction of changed labels that stops DEC")
    if cfg.target not in TARGETS:
        raise ValueError(f"target {cfg.target!r}: use 'full' (the DEC paper) or 'batch' (ClustPy's rule).")
    if cfg.gamma is not None:
        check_positive_float(cfg.gamma, "gamma", meaning="IDEC's weight of the clustering loss")
        if cfg.frozen:
            raise ValueError(
                "gamma (IDEC) trains the autoencoder; it cannot be combined with frozen (DEC w/o backprop)."
            )
    if cfg.augment is not None and cfg.frozen:
        raise ValueError(
            "augment (DEC-DA) transforms what the encoder sees while it trains; with frozen (DEC w/o backprop) the "
            "encoder does not train. Use one or the other."
        )
    train.check_batch_size(cfg.batch_size, n)
    return cfg


def fit(
    key,
    model,
    ae_params,
    x,
    cfg: DECConfig | None = None,
    *,
    y=None,
    workdir=None,
    config: dict | None = None,
    log=None,
    on_update: Callable[[Update], None] | None = None,
) -> DECResult:
    """Trains DEC (or IDEC, or DEC w/o backprop) on x [n, d] from a pretrained autoencoder.

    Args:
      key: the run's key: k-means on the embedding and the batch shuffles derive from it.
      model, ae_params: the pretrained autoencoder (`pretrain.load_model`), not modified.
      y: true labels [n], for the acc/nmi/ari logged at each update (never used for training).
      workdir: checkpoints go to <workdir>/train_ckpt/ and an interrupted call resumes there, to the bit.
      config: the run's settings stored with each checkpoint; a checkpoint of other settings is refused.
      log: a `research.runlog.MetricsLog` for one row per update, or None.
      on_update: called with an `Update` at each target update, e.g. a `Snapshots`; it must not modify what it
        is given. A resumed call makes its starting update again (the one at the restored step).
    """
    cfg = DECConfig() if cfg is None else cfg
    x = as_matrix(x)
    cfg = _check(cfg, x.shape[0])
    k_init, k_train = jax.random.split(key)
    z0 = embed(model, {"ae": ae_params}, x)
    init = kmeans.fit(k_init, z0, cfg.n_clusters, n_init=cfg.n_init)
    init_labels = np.asarray(init.labels)
    step, tx = _step(
        model,
        float(cfg.alpha),
        cfg.gamma,
        cfg.loss,
        cfg.frozen,
        cfg.optimizer,
        cfg.learning_rate,
        cfg.momentum,
        cfg.augment,
        cfg.target,
    )
    # A copy: the train step donates its state, and the caller's autoencoder must outlive the fit.
    # DEC trains the encoder alone: the decoder stays out of the state, so no step runs the optimiser over it.
    trained = ae_params if cfg.gamma is not None else encoder_params(model, ae_params, x[:1])
    params = (
        {"centroids": init.centroids}
        if cfg.frozen
        else {"ae": jax.tree.map(jnp.copy, trained), "centroids": init.centroids}
    )
    state = {"train": train.init_state(k_train, params, tx), "labels": jnp.asarray(init_labels, jnp.int32)}
    data_x = jnp.asarray(z0 if cfg.frozen else x)
    ckpt = None
    if workdir is not None:
        ckpt = checkpointing.Checkpointer(
            f"{workdir}/train_ckpt", config or {}, ignore_keys=IGNORED_KEYS, max_to_keep=2
        )
    try:
        state, z, q, history, converged = _loop(step, state, data_x, z0, cfg, model, y, ckpt, log, on_update)
    finally:
        if ckpt is not None:
            ckpt.close()
    params = dict(state["train"].params)
    if cfg.frozen:
        params["ae"] = ae_params
    elif cfg.gamma is None:  # the trained encoder with the pretrained decoder
        params["ae"] = {**ae_params, "params": {**ae_params["params"], **params["ae"]["params"]}}
    return DECResult(
        params=params,
        labels=q.argmax(1),
        q=q,
        embedding=np.asarray(z),
        init_labels=init_labels,
        n_iter=int(state["train"].step),
        n_updates=_update_index(cfg, int(state["train"].step)) + 1,
        converged=converged,
        history=history,
    )


def _loop(step, state, data_x, z0, cfg, model, y, ckpt, log, on_update):
    if ckpt is not None and ckpt.latest_step() is not None:
        state = ckpt.restore(jax.eval_shape(lambda: state))
        logging.info("dec: resumed from step %d of %s", int(state["train"].step), ckpt.directory)
    if ckpt is not None and log is not None:
        # The loop logs the update at its starting step again (step 0 without a checkpoint): drop it and later rows.
        log.rewind(int(state["train"].step) - 1, stage="dec")
    data_key = train.default_data_key(state["train"])
    data_x = train.place_data(data_x, cfg.devices)  # on every device of a data-parallel run once, not at each stretch
    # XLA's CPU convolutions are much slower inside a scan (train.py); the frozen variant trains centroids only.
    scan = cfg.frozen or not isinstance(model, ConvAutoencoder)
    history, loss, t_rate = [], None, None
    while True:
        s = int(state["train"].step)
        params = state["train"].params
        # The pretrained codes serve the first update of a fresh run (the k-means start encoded them already).
        fresh = s == 0 and not history
        row = {"stage": "dec"}
        if loss is not None:
            row |= {"loss": loss, "samples_per_s": t_rate}
        update = fresh or s >= cfg.max_iter or not _labels_only_at_ends(cfg)
        if update:  # a pass over all samples: their labels, and with target="full" the next target
            z = z0 if cfg.frozen or fresh else pretrain.encode(model, params["ae"], data_x)
            q = np.asarray(_soft_assign_jit(jnp.asarray(z), params["centroids"], float(cfg.alpha)))
            labels = q.argmax(1).astype(np.int32)
            delta = float(np.mean(labels != np.asarray(state["labels"])))
            row["delta_label"] = delta
            if y is not None:
                row |= {m: v for m, v in metrics.evaluate(y, labels).items() if m != "purity"}
        history.append({"step": s, **row})
        if log is not None:
            log.log(s, **row)
        converged = update and s > 0 and delta < cfg.tol
        last = converged or s >= cfg.max_iter
        if update and on_update is not None:
            centroids = np.array(params["centroids"])  # a copy: the next stretch donates the state's buffers
            on_update(Update(s, _update_index(cfg, s), np.asarray(z), labels, centroids, last))
        if last:
            break
        batches = {"x": data_x, "p": target_distribution(jnp.asarray(q))} if cfg.target == "full" else {"x": data_x}
        t0 = time.perf_counter()
        count = min(cfg.update_interval, cfg.max_iter - s)
        tr, losses = train.advance(
            step,
            state["train"],
            batches,
            batch_size=cfg.batch_size,
            count=count,
            data_key=data_key,
            scan=scan,
            stage="dec",
            devices=cfg.devices,
        )
        state = {"train": tr, "labels": state["labels"] if not update else jnp.asarray(labels)}
        loss, t_rate = float(losses.mean()), round(count * cfg.batch_size / (time.perf_counter() - t0), 1)
        if ckpt is not None and (int(tr.step) // cfg.update_interval) % cfg.checkpoint_every == 0:
            ckpt.save(int(tr.step), state, force=True)
    if ckpt is not None:
        ckpt.save(s, state, force=True)
        ckpt.wait()
    return state, z, q, history, converged


# --- pictures of the training -------------------------------------------------------------------------------------


class Snapshots:
    """An `on_update` for `fit` that keeps the codes of a fixed random subset of the samples at every `every`-th
    target update and at the last one: the panels of the DEC paper's picture of the embedding as it trains.

    It reads the codes the update computed anyway, so the training and its bits are unchanged. With a `path`
    (.npz) the panels are rewritten there after each one: a killed run keeps those it took, and its resumed
    call, which makes the update at its checkpoint again, drops the panels from that step on and records them
    anew. Arrays: index [m] (the subset's rows), steps [p], updates [p], codes [p, m, latent], labels [p, m]
    (the clusters at that update), centroids [p, k, latent].
    """

    def __init__(self, n: int, every: int, *, size: int = 3000, seed: int = 0, path=None):
        check_positive_int(every, "every")
        self.every, self.path = every, path
        self.index = np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))
        self.panels: list[dict] = []
        if path is not None and Path(path).exists():
            with np.load(path) as saved:
                if np.array_equal(saved["index"], self.index):
                    names = ("steps", "updates", "codes", "labels", "centroids")
                    self.panels = [dict(zip(names, row)) for row in zip(*(saved[k] for k in names))]

    def __call__(self, u: Update) -> None:
        # Panels at or past this step came from an interrupted call: this one records them again.
        self.panels = [p for p in self.panels if p["steps"] < u.step]
        if u.index % self.every and not u.last:
            return
        self.panels.append(
            {
                "steps": u.step,
                "updates": u.index,
                "codes": np.asarray(u.z[self.index], np.float32),
                "labels": np.asarray(u.labels[self.index], np.int32),
                "centroids": np.asarray(u.centroids, np.float32),
            }
        )
        if self.path is not None:
            self.save(self.path)

    def arrays(self) -> dict:
        """The panels as stacked arrays (see the class docstring)."""
        names = ("steps", "updates", "codes", "labels", "centroids")
        return {"index": self.index, **{k: np.stack([p[k] for p in self.panels]) for k in names}}

    def project(self) -> tuple[np.ndarray, np.ndarray]:
        """Every panel's codes and centroids on the first two principal axes of the first panel's codes (the
        pre-DEC ones when the fit was recorded from its start): one projection, so the panels compare.
        Returns (points [p, m, 2], centroids [p, k, 2])."""
        a = self.arrays()
        codes, centroids = a["codes"], a["centroids"]
        first = codes[0].astype(np.float64)
        mean = first.mean(0)
        axes = np.linalg.svd(first - mean, full_matrices=False)[2][:2]  # [2, latent], NumPy: nothing to compile
        axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])[:, None]  # signs fixed as svd_flip's
        points, centres = ((v - mean) @ axes.T for v in (codes, centroids))
        if points.shape[-1] == 1:  # a one-dimensional embedding: drawn on a line
            points, centres = (np.concatenate([v, np.zeros_like(v)], -1) for v in (points, centres))
        return points, centres

    def save(self, path, **extra) -> None:
        """Writes `arrays()` (and `extra` arrays) to the .npz `path` (from the writing process, `runlog.is_writer`)."""
        if not runlog.is_writer():
            return
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **self.arrays(), **extra)
        tmp.replace(path)  # whole or not at all, should the process die while writing
