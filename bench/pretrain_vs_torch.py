r"""Autoencoder pretraining speed: jaxcluster (Flax, jitted scan over steps) vs PyTorch, same network, same run.

  pip install -e '.[bench]'     # torch==2.13.0, the CPU build
  JAXCLUSTER_DATA=../shared/datasets python -m bench.pretrain_vs_torch

Both train DEC's d-500-500-2000-10 autoencoder (ReLU, linear code and output, Glorot-uniform weights, zero
biases), MSE, Adam (lr 1e-3), batch 256, a fresh shuffle per epoch, for --epochs passes over MNIST-70k, on the
same threads (torch.set_num_threads = the machine's cores; XLA uses them all). We report samples/s per epoch
(median over epochs after the first; the first epoch's compile time for ours apart) and the final loss.
Also timed: a plain jitted Flax step called from Python once per batch, the usual way to write it.

Writes results/pretrain_vs_torch.md and .csv.
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench import common
from research import data, nets
from research.deep import pretrain, train

WIDTHS = (500, 500, 2000, 10)


def ours_scan(x, epochs, batch_size, seed):
    """Our pretraining loop: each epoch is one jitted lax.scan over its steps."""
    model = nets.build("dec", x.shape[1])
    tx = pretrain.optimizer("adam", 1e-3)
    step = train.make_step(pretrain._loss_end_to_end(model, "mse"), tx)
    state = train.init_state(jax.random.key(seed), model.init(jax.random.key(seed), x[:1]), tx)
    n, per_epoch = x.shape[0], x.shape[0] // batch_size
    times, losses, compile_s = [], [], None
    for e in range(epochs):
        idx = train.batch_indices(jax.random.key(seed + 1), n, batch_size, e * per_epoch, per_epoch)
        if compile_s is None:
            t0 = time.perf_counter()
            chunk = train._chunk.lower(step, state, idx, x).compile()
            compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        state, loss = chunk(state, idx, x)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.mean()))
    return times, losses, compile_s


def ours_plain_step(x, epochs, batch_size, seed):
    """A jitted (state, batch) -> state step called once per batch from Python: the common baseline."""
    model = nets.build("dec", x.shape[1])
    tx = pretrain.optimizer("adam", 1e-3)
    step = train.jit_step(train.make_step(pretrain._loss_end_to_end(model, "mse"), tx))
    state = train.init_state(jax.random.key(seed), model.init(jax.random.key(seed), x[:1]), tx)
    n, per_epoch = x.shape[0], x.shape[0] // batch_size
    x_host = np.asarray(x)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    key = jax.random.key(0)  # the MSE loss draws no randomness; one key for every step
    state, _ = step(state, jnp.asarray(x_host[:batch_size]), key)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    times, losses = [], []
    for _ in range(epochs):
        perm = rng.permutation(n)
        t0 = time.perf_counter()
        for b in range(per_epoch):
            state, loss = step(state, jnp.asarray(x_host[perm[b * batch_size : (b + 1) * batch_size]]), key)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    return times, losses, compile_s


def torch_train(x, epochs, batch_size, seed):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    d = x.shape[1]
    dims = (d, *WIDTHS)
    enc, dec = [], []
    for i in range(len(WIDTHS)):
        enc += [torch.nn.Linear(dims[i], dims[i + 1])] + ([torch.nn.ReLU()] if i < len(WIDTHS) - 1 else [])
    for i in reversed(range(len(WIDTHS))):
        dec += [torch.nn.Linear(dims[i + 1], dims[i])] + ([torch.nn.ReLU()] if i > 0 else [])
    model = torch.nn.Sequential(*enc, *dec)
    for m in model:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(np.asarray(x))
    n, per_epoch = x.shape[0], x.shape[0] // batch_size
    times, losses = [], []
    for _ in range(epochs):
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        for b in range(per_epoch):
            xb = xt[perm[b * batch_size : (b + 1) * batch_size]]
            loss = torch.nn.functional.mse_loss(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    return times, losses, None


METHODS = {"ours (jitted scan)": ours_scan, "ours (plain jitted step)": ours_plain_step, "pytorch": torch_train}


def main():
    p = common.parser(__doc__, "results/pretrain_vs_torch", repeats=None)
    p.add_argument("--n_samples", type=int, default=0, help="use the first n samples (0: all)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per method; the first is left out of the median")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--methods", default=",".join(METHODS))
    args = p.parse_args()
    ds = data.load(args.dataset, "all", args.data_dir)
    x = ds.x[: args.n_samples or None]
    rows = []
    for name in args.methods.split(","):
        times, losses, compile_s = METHODS[name](jnp.asarray(x), args.epochs, args.batch_size, 0)
        per_epoch = (x.shape[0] // args.batch_size) * args.batch_size
        steady = times[1:] or times
        rate = per_epoch / statistics.median(steady)
        rows.append(
            {
                "method": name,
                "samples_per_s": round(rate),
                "epoch_seconds": [round(t, 2) for t in times],
                "compile_seconds": None if compile_s is None else round(compile_s, 2),
                "final_loss": round(losses[-1], 5),
            }
        )
        print(rows[-1], flush=True)
    torch_rate = next((r["samples_per_s"] for r in rows if r["method"] == "pytorch"), None)
    for r in rows:
        r["vs_pytorch"] = round(r["samples_per_s"] / torch_rate, 2) if torch_rate else None
    caption = (
        f"DEC autoencoder (d-500-500-2000-10) pretraining on {ds.name} ({x.shape[0]}x{x.shape[1]}), Adam, MSE, batch "
        f"{args.batch_size}; PyTorch on {os.cpu_count()} threads. Median samples/s over epochs 2..{args.epochs}."
    )
    common.write_table(rows, COLUMNS, args.out, "bench.pretrain_vs_torch", caption=caption)


COLUMNS = [
    ("method", "method"),
    ("samples/s", "samples_per_s"),
    ("vs PyTorch", lambda r: None if r["vs_pytorch"] is None else f"{r['vs_pytorch']}x"),
    ("epoch times (s)", "epoch_seconds"),
    ("compile (s)", "compile_seconds"),
    ("loss after last epoch", "final_loss"),
]


if __name__ == "__main__":
    main()
