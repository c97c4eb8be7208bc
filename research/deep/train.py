"""The training loop every deep model shares: a jitted, donated step run over chunks of steps, checkpointed
with Orbax at chunk boundaries and resumed to the bit.

    state = train.init_state(key, params, tx)
    step = train.make_step(loss_fn, tx)          # (state, batch, key) -> (state, loss): pure
    state = train.run(step, state, data, batch_size=256, num_steps=..., ckpt=Checkpointer(...), log=MetricsLog(...))

`loss_fn(params, batch, key)` sees one batch (rows of `data`, a pytree of [n, ...] arrays) and the key
`fold_in(state.key, step)`. A chunk is one `lax.scan` (`scan=True`: dense networks) or one dispatch per step
(`scan=False`: convolutional ones, which XLA's CPU backend runs slowly inside loops). Chunks end at multiples
of `log_every` and `checkpoint_every` counted from step 0, so a resumed run repeats exactly the batches and
keys of an uninterrupted one. Design and measurements: docs/design/training_loop.md.

Data-parallel over all visible devices by default (`devices`): the state and the data are replicated, each
batch is split along a 1-D mesh axis "data" (`data_mesh`), and XLA sums the gradients across the devices. The
batch size is the global one (every device takes batch_size / devices rows), so a run means the same thing on
any device count; its losses and parameters match the one-device run's to float rounding (docs/scaling.md).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from research import checkpointing, distributed
from research.checks import check_positive_int


@flax.struct.dataclass
class TrainState:
    """step: int32 []; params, opt_state: pytrees; key: the run's training key (steps fold their index in)."""

    step: jax.Array
    params: Any
    opt_state: Any
    key: jax.Array


def init_state(key, params, tx: optax.GradientTransformation) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), key=key)


def make_step(loss_fn: Callable, tx: optax.GradientTransformation) -> Callable:
    """The pure train step (state, batch, key) -> (state, loss) for `loss_fn(params, batch, key) -> scalar`."""

    def step(state: TrainState, batch, key):
        loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), loss

    return step


@functools.cache
def data_mesh(devices: int | None = None):
    """The 1-D mesh ("data",) over the first `devices` visible devices (default: all of them), or None for one
    device (nothing to split): `distributed.data_mesh`, cached."""
    return distributed.data_mesh(devices)


def _placed(mesh, state, data, idx):
    """(state, data, idx) on `mesh`: the state and data replicated, the batch rows (idx's last axis) split."""
    if mesh is None:
        return state, data, idx
    replicated = jax.sharding.NamedSharding(mesh, jax.P())
    split = jax.sharding.NamedSharding(mesh, jax.P(*[None] * (idx.ndim - 1), "data"))
    put = distributed.put
    return put(state, replicated), put(data, replicated), put(idx, split)


def place_data(data, devices: int | None = None):
    """`data` replicated over the devices that `devices` names (`data_mesh`), once, so the stretches of steps
    that follow do not copy it again; unchanged on one device."""
    mesh = data_mesh(devices)
    return data if mesh is None else distributed.put(data, jax.sharding.NamedSharding(mesh, jax.P()))


def check_batch_split(batch_size: int, mesh) -> None:
    """Refuses a batch that the devices of a data-parallel mesh cannot share evenly."""
    if mesh is not None and batch_size % mesh.size:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly over the {mesh.size} devices the step runs on; use a "
            f"multiple of {mesh.size}, or fewer devices (devices=, or --num_devices in the binaries)."
        )


def jit_step(step: Callable) -> Callable:
    """`step` jitted with its state donated: one update at a time, for loops that need the host in between."""
    return jax.jit(step, donate_argnums=0)


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(1,))
def _chunk(step, state, idx_sb, data):
    """Runs len(idx_sb) steps; row b of batch s is data[idx_sb[s, b]]. Returns (state, loss per step)."""

    def body(s, idx_b):
        batch = jax.tree.map(lambda a: a[idx_b], data)
        return step(s, batch, jax.random.fold_in(s.key, s.step))

    return jax.lax.scan(body, state, idx_sb)


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(1,))
def _one(step, state, idx_b, data):
    """One step on the rows idx_b [B] of data: the body of `_chunk`, dispatched on its own."""
    batch = jax.tree.map(lambda a: a[idx_b], data)
    return step(state, batch, jax.random.fold_in(state.key, state.step))


def _stepped(step, state, idx_sb, data, mesh=None):
    """`_chunk` as a Python loop of `_one` (the device works while Python queues the next step)."""
    losses = []
    for idx_b in np.asarray(idx_sb):
        state, data, idx_b = _placed(mesh, state, data, idx_b)
        state, loss = _one(step, state, idx_b, data)
        losses.append(loss)
    return state, jnp.stack(losses)


@functools.partial(jax.jit, static_argnums=(1,))
def _permutation(key, n):
    return jax.random.permutation(key, n).astype(jnp.int32)


_RECENT_PERMUTATIONS: list = []  # (key, epoch, n, permutation): the last few drawn


def _epoch_permutation(key, epoch: int, n: int) -> jax.Array:
    """The permutation of epoch `epoch`, from fold_in(key, epoch). The stretches of a few hundred steps that DEC
    runs between its updates share epochs, and drawing 70k rows' costs tens of ms: the last few are kept (by
    the key object itself, which the entry holds, so a new key never meets an old entry)."""
    for k, e, m, perm in _RECENT_PERMUTATIONS:
        if k is key and e == epoch and m == n:
            return perm
    perm = _permutation(jax.random.fold_in(key, epoch), n)
    _RECENT_PERMUTATIONS[:] = [*_RECENT_PERMUTATIONS[-3:], (key, epoch, n, perm)]
    return perm


def batch_indices(key, n: int, batch_size: int, start: int, count: int) -> jax.Array:
    """Rows of steps [start, start + count): epoch e is a permutation drawn from fold_in(key, e), cut into
    floor(n / batch_size) batches (the remainder waits for another epoch's shuffle). Returns int32 [count, B]."""
    per_epoch = n // batch_size
    first, last = start // per_epoch, (start + count - 1) // per_epoch
    perms = [_epoch_permutation(key, e, n)[: per_epoch * batch_size] for e in range(first, last + 1)]
    idx = jnp.concatenate(perms).reshape(-1, batch_size)
    offset = start - first * per_epoch
    return idx[offset : offset + count]


def boundaries(start: int, num_steps: int, *every: int) -> list[int]:
    """The chunk ends after `start`: multiples of each of `every`, and num_steps."""
    ends = {num_steps}
    for e in every:
        ends.update(range((start // e + 1) * e, num_steps, e))
    return sorted(s for s in ends if s > start)


def advance(
    step: Callable,
    state: TrainState,
    data,
    *,
    batch_size: int,
    count: int,
    data_key,
    scan: bool = True,
    stage: str = "train",
    devices: int | None = None,
) -> tuple[TrainState, np.ndarray]:
    """Runs steps [state.step, state.step + count) on batches of `data`: the building block of `run`, for loops
    that do work of their own between stretches of steps (DEC recomputes its target every few hundred).

    Batches are those of `batch_indices(data_key, n, batch_size, ...)`, so stretches of any lengths give the
    batches of one long run. devices: how many of the visible devices share each batch (default all; see the
    module docstring). Returns (state, loss per step as numpy [count]).

    Raises:
      FloatingPointError: the loss became NaN or infinite, naming the first such step.
    """
    s0 = int(state.step)
    n = jax.tree.leaves(data)[0].shape[0]
    mesh = data_mesh(devices)
    check_batch_split(batch_size, mesh)
    idx = batch_indices(data_key, n, batch_size, s0, count)
    if scan:
        state, data, idx = _placed(mesh, state, data, idx)
        state, losses = _chunk(step, state, idx, data)
    else:
        state, losses = _stepped(step, state, idx, data, mesh)
    losses = np.asarray(losses)
    if not np.isfinite(losses).all():
        bad = s0 + int(np.argmin(np.isfinite(losses)))
        raise FloatingPointError(
            f"{stage}: the loss became {losses[bad - s0]} at step {bad + 1} (steps counted from 1). "
            "Lower the learning rate, check the data's scale, or resume from an earlier checkpoint."
        )
    return state, losses


def default_data_key(state: TrainState):
    """The key of the epoch shuffles when none is given: fold_in(state.key, 1 << 30), apart from the step keys."""
    return jax.random.fold_in(state.key, 1 << 30)


def check_batch_size(batch_size: int, n: int) -> None:
    """Refuses a batch larger than the data, in words for library and binary users alike."""
    if batch_size > n:
        raise ValueError(
            f"batch_size {batch_size} is larger than the data ({n} samples); lower it (in the binaries: "
            "--batch_size for DEC's stage, --ae_batch_size or the autoencoder binary's --batch_size for pretraining)."
        )


def run(
    step: Callable,
    state: TrainState,
    data,
    *,
    batch_size: int,
    num_steps: int,
    log_every: int,
    checkpoint_every: int | None = None,
    ckpt: checkpointing.Checkpointer | None = None,
    log=None,
    stage: str = "train",
    data_key=None,
    on_chunk: Callable[[TrainState], dict] | None = None,
    scan: bool = True,
    devices: int | None = None,
) -> TrainState:
    """Trains `state` to `num_steps` with batches of `data`, resuming from `ckpt`'s latest checkpoint.

    Args:
      step: from `make_step` (the same Python object across calls, so the chunk compiles once per length).
      state: the freshly initialised state; replaced by the checkpoint when `ckpt` has one.
      data: pytree of [n, ...] arrays, already on the device; batches gather rows of every leaf.
      log_every / checkpoint_every: in steps. A checkpoint is written at each multiple of `checkpoint_every`
        and at `num_steps`; a log row (loss, samples/s, time left) at each multiple of `log_every`.
      log: a `research.runlog.MetricsLog`, or None. With `ckpt`, its rows of `stage` after the starting step
        (the restored one, or 0 when there is no checkpoint yet) are dropped, so metrics.jsonl reads like the
        uninterrupted run's.
      data_key: the key of the epoch shuffles (default: fold_in(state.key, 1 << 30), set apart from the keys
        the steps fold in).
      on_chunk: called with the state after each chunk; its dict joins the log row.
      scan: run each chunk as one `lax.scan` (dense networks) or step by step (convolutional ones); see above.
      devices: how many of the visible devices share each batch (default: all); see the module docstring.
        Checkpoints hold the state as plain arrays, so a run resumes on any device count.

    Raises:
      FloatingPointError: the loss became NaN or infinite, naming the first such step.
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    n = jax.tree.leaves(data)[0].shape[0]
    check_batch_size(batch_size, n)
    check_batch_split(batch_size, data_mesh(devices))
    data = place_data(data, devices)
    if ckpt is not None and ckpt.latest_step() is not None:
        state = ckpt.restore(jax.eval_shape(lambda: state))
        logging.info("%s: resumed from step %d of %s", stage, int(state.step), ckpt.directory)
    if ckpt is not None and log is not None:
        # Rows past the starting step came from an interrupted invocation (with no checkpoint yet, all of them):
        # this one logs those steps again.
        log.rewind(int(state.step), stage=stage)
    start = int(state.step)
    if start >= num_steps:
        return state
    data_key = default_data_key(state) if data_key is None else data_key
    every = [check_positive_int(log_every, "log_every")]
    if ckpt is not None:
        every.append(check_positive_int(checkpoint_every or log_every, "checkpoint_every"))
    t_start, done_start = time.perf_counter(), start
    for end in boundaries(start, num_steps, *every):
        s0, t0 = int(state.step), time.perf_counter()
        state, losses = advance(
            step,
            state,
            data,
            batch_size=batch_size,
            count=end - s0,
            data_key=data_key,
            scan=scan,
            stage=stage,
            devices=devices,
        )
        if ckpt is not None and (end % every[-1] == 0 or end == num_steps):
            ckpt.save(end, state, force=True)
        if log is not None and (end % every[0] == 0 or end == num_steps):
            now = time.perf_counter()
            # This chunk's rate (the first one includes compilation); the time left from the average so far.
            mean_rate = (end - done_start) * batch_size / max(now - t_start, 1e-9)
            extra = on_chunk(state) if on_chunk is not None else {}
            log.log(
                end,
                stage=stage,
                loss=float(losses[-min(len(losses), log_every) :].mean()),
                samples_per_s=round((end - s0) * batch_size / max(now - t0, 1e-9), 1),
                eta_s=round((num_steps - end) * batch_size / max(mean_rate, 1e-9), 1),
                **extra,
            )
    if ckpt is not None:
        ckpt.wait()
    return state


def steps_for(epochs: float, n: int, batch_size: int) -> int:
    """Steps in `epochs` passes over n samples (at least 1)."""
    return max(1, math.ceil(epochs * (n // batch_size)))
