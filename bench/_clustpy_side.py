"""ClustPy's side of bench.deep_vs_clustpy, run as a script in the Python that has clustpy and torch:

  python bench/_clustpy_side.py <in.npz> <out.npz>

<in.npz>: x [n, d] float32, our autoencoder's weights as "enc_<i>.kernel" / "enc_<i>.bias" / "dec_<i>..." ([in, out]
kernels, flax's layout) and "meta", a JSON string: seed, threads, n_clusters, n_init, batch_size, alpha,
widths, activation, loss, check_rows and runs, a list of {method: dec | idec, steps, optimizer,
learning_rate, momentum, gamma}. It loads the weights into ClustPy's FeedforwardAutoencoder, runs ClustPy's
DEC / IDEC through their public fit() on the given number of steps, and writes the codes of the first
check_rows samples, each run's labels, its timings and torch's float32 matmul rate to <out.npz>. It imports neither jax nor this repository.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time

import numpy as np
import torch

ACTIVATIONS = {
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "gelu": functools.partial(torch.nn.GELU, approximate="tanh"),  # flax's nn.gelu is the tanh approximation
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
}


def build_network(weights: dict, meta: dict):
    """ClustPy's FeedforwardAutoencoder d-widths, its Linear layers holding our kernels (transposed) and biases."""
    from clustpy.deep.neural_networks import FeedforwardAutoencoder

    d, widths = int(weights["enc_0.kernel"].shape[0]), list(meta["widths"])
    net = FeedforwardAutoencoder(
        layers=[d, *widths], activation_fn=ACTIVATIONS[meta["activation"]], random_state=meta["seed"]
    )
    depth = len(widths)
    state = {}
    # ClustPy's block is Linear, act, Linear, act, ..., Linear: the Linear layers sit at even positions. Our
    # decoder layer dec_i inverts enc_i, so the decoder block runs dec_{depth-1} first.
    for j in range(depth):
        for side, i in (("encoder", j), ("decoder", depth - 1 - j)):
            name = f"{'enc' if side == 'encoder' else 'dec'}_{i}"
            state[f"{side}.block.{2 * j}.weight"] = torch.from_numpy(np.ascontiguousarray(weights[name + ".kernel"].T))
            state[f"{side}.block.{2 * j}.bias"] = torch.from_numpy(np.asarray(weights[name + ".bias"]))
    net.load_state_dict(state)
    net.fitted = True  # ClustPy then skips its own pretraining
    return net


def _loss_fn(kind: str):
    # ClustPy's default reconstruction loss sums the squared errors over features (mean over samples); ours and
    # the IDEC paper's Keras code average over features too. Same loss as ours, so gamma weighs the same thing.
    if kind == "mse":
        return lambda out, x: torch.mean(torch.square(out - x))
    if kind == "bce":
        return lambda out, x: torch.nn.functional.binary_cross_entropy_with_logits(out, x)
    raise ValueError(f"unknown reconstruction loss {kind!r}")


class _Clock:
    """Wraps functions of clustpy.deep.dec so that fit() runs unchanged while the time of each part is kept."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.values: dict[str, object] = {}

    def wrap(self, name, fn, keep=None):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            if keep is not None:
                self.values.update(keep(args, out))
            return out

        return timed


def run_one(net, x: np.ndarray, meta: dict, run: dict, probe: bool = True) -> dict:
    import clustpy.deep.dec as cdec
    from clustpy.deep import DEC, IDEC
    from clustpy.deep._data_utils import _ClustpyDataset, get_dataloader

    seed, bs, steps = int(meta["seed"]), int(meta["batch_size"]), int(run["steps"])
    # ClustPy counts epochs and has no stopping rule of its own: one "epoch" of a sampler that draws exactly
    # `steps` batches (fresh permutations of the data, one after another) trains the same number of steps as ours.
    data = _ClustpyDataset(torch.from_numpy(x))
    sampler = torch.utils.data.RandomSampler(
        data, num_samples=steps * bs, generator=torch.Generator().manual_seed(seed)
    )
    trainloader = torch.utils.data.DataLoader(data, batch_size=bs, sampler=sampler, drop_last=True)
    testloader = get_dataloader(x, bs, shuffle=False)
    if run["optimizer"] == "sgd":
        opt, opt_params = torch.optim.SGD, {"lr": run["learning_rate"], "momentum": run["momentum"]}
    else:
        opt, opt_params = torch.optim.Adam, {"lr": run["learning_rate"]}
    common = {
        "n_clusters": int(meta["n_clusters"]),
        "alpha": float(meta["alpha"]),
        "batch_size": bs,
        "pretrain_epochs": 0,
        "clustering_epochs": 1,
        "optimizer_class": opt,
        "clustering_optimizer_params": opt_params,
        "ssl_loss_fn": _loss_fn(meta["loss"]),
        "neural_network": net,
        "custom_dataloaders": (trainloader, testloader),
        "initial_clustering_params": {"n_init": int(meta["n_init"])},
        "device": "cpu",
        "random_state": seed,
    }
    if run["method"] == "idec":
        algo = IDEC(clustering_loss_weight=float(run["gamma"]), ssl_loss_weight=1.0, **common)
    else:
        algo = DEC(**common)

    clock = _Clock()
    saved = (cdec.get_default_deep_clustering_initialization, cdec._DEC_Module.fit, cdec.predict_batchwise)
    cdec.get_default_deep_clustering_initialization = clock.wrap(
        "init", saved[0], keep=lambda a, out: {"init_labels": np.asarray(out[7])}
    )
    cdec._DEC_Module.fit = clock.wrap("train", saved[1], keep=lambda a, out: {"centers_dtype": str(a[0].centers.dtype)})
    cdec.predict_batchwise = clock.wrap("predict", saved[2])
    try:
        t0 = time.perf_counter()
        algo.fit(x)
        total = time.perf_counter() - t0
    finally:
        cdec.get_default_deep_clustering_initialization, cdec._DEC_Module.fit, cdec.predict_batchwise = saved

    loader_ms = None
    if probe:  # the loader alone: ClustPy's Dataset indexes one sample at a time and collates each batch in Python
        count = min(steps, 200, len(x) // bs)
        it, t0 = (
            iter(torch.utils.data.DataLoader(data, batch_size=bs, shuffle=True, drop_last=True)),
            time.perf_counter(),
        )
        for _ in range(count):
            next(it)
        loader_ms = 1e3 * (time.perf_counter() - t0) / max(1, count)
    s = clock.seconds
    return {
        "labels": np.asarray(algo.dec_labels_),
        "init_labels": clock.values["init_labels"],
        "fit_seconds": total,  # ClustPy's whole fit(): the stage plus its final re-encoding and k-means
        "init_seconds": s["init"],  # encode the data + sklearn KMeans(n_init)
        "train_seconds": s["train"],  # the optimisation steps
        "predict_seconds": s["predict"],  # the final hard labels
        "stage_seconds": s["init"] + s["train"] + s["predict"],
        "steps": steps,
        "loader_ms_per_step": loader_ms,
        "centers_dtype": clock.values["centers_dtype"],
        "load_1m": os.getloadavg()[0],  # > the cores: others shared the CPUs, and torch's threads wait on each other
    }


def matmul_gflops(size: int = 2048, reps: int = 20) -> float:
    """torch's float32 rate for a size x size matmul on this process's threads (GFLOP/s)."""
    a = torch.ones(size, size)
    a @ a
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ a
    return 2.0 * size**3 * reps / (time.perf_counter() - t0) / 1e9


def main(argv):
    src, dst = argv[1], argv[2]
    with np.load(src) as f:
        x = np.ascontiguousarray(f["x"], dtype=np.float32)
        weights = {k: f[k] for k in f.files if k.startswith(("enc_", "dec_"))}
        meta = json.loads(str(f["meta"]))
    torch.set_num_threads(int(meta["threads"]))
    net = build_network(weights, meta)
    with torch.no_grad():
        codes = net.encode(torch.from_numpy(x[: int(meta["check_rows"])])).numpy()
    out = {"codes": codes}
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "runs": []}
    info["matmul_gflops"] = matmul_gflops()
    import clustpy

    info["clustpy"] = getattr(clustpy, "__version__", "?")
    for i, run in enumerate(meta["runs"]):
        # Warm-up, untimed: a short fit of the same shapes pays the process's first-call costs (thread pools,
        # lazy imports, allocator), as ours is compiled before it is timed.
        warm = run_one(net, x, meta, {**run, "steps": min(int(run["steps"]), 10)}, probe=False)
        res = run_one(net, x, meta, run) | {"warmup_seconds": warm["fit_seconds"]}
        out[f"labels_{i}"], out[f"init_labels_{i}"] = res.pop("labels"), res.pop("init_labels")
        info["runs"].append({**run, **res})
        print(f"clustpy {run['method']} seed={meta['seed']}: {res}", flush=True)
    np.savez(dst, info=json.dumps(info), **out)


if __name__ == "__main__":
    main(sys.argv)
