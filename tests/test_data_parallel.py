"""Data-parallel training: the shared loop (research/deep/train.py) on 1, 2 and 4 host devices.

A fresh process with 4 CPU devices (the count is fixed when JAX starts). The global batch is split over the
devices and the gradients are summed across them, so the losses and parameters match the one-device run's to
float rounding; a checkpoint written on 4 devices resumes on 2.
"""

from __future__ import annotations

import json

import binaries
import numpy as np

_CODE = """
import tempfile
import jax, jax.numpy as jnp, numpy as np, optax
from research import checkpointing
from research.deep import train

assert jax.device_count() == 4
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(512, 12)).astype(np.float32))


def loss_fn(params, batch, key):  # a tiny autoencoder, with dropout so the step keys matter
    h = jnp.tanh(batch @ params["w1"])
    h = h * jax.random.bernoulli(key, 0.9, h.shape) / 0.9
    return jnp.mean((h @ params["w2"] - batch) ** 2)


params = {"w1": jnp.asarray(rng.normal(size=(12, 4)) * 0.3, jnp.float32),
          "w2": jnp.asarray(rng.normal(size=(4, 12)) * 0.3, jnp.float32)}
tx = optax.adam(1e-2)
step = train.make_step(loss_fn, tx)


def fresh():  # the loop donates its state: every run starts from copies
    return train.init_state(jax.random.key(0), jax.tree.map(jnp.copy, params), tx)


def fit(devices, num_steps=40, scan=True, ckpt=None):
    state = fresh()
    return train.run(step, state, x, batch_size=64, num_steps=num_steps, log_every=10, devices=devices, scan=scan,
                     ckpt=ckpt, checkpoint_every=10)


def close(a, b):
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=2e-5, atol=2e-6)


one = fit(1)
assert len(one.params["w1"].sharding.device_set) == 1
four = fit(None)  # the default: every visible device
assert len(four.params["w1"].sharding.device_set) == 4  # replicated over the mesh
close(one, four)
close(one, fit(2))
close(one, fit(4, scan=False))  # the step-by-step loop of the convolutional networks

# A checkpoint written on 4 devices, resumed on 2: the uninterrupted run's parameters.
with tempfile.TemporaryDirectory() as d:
    ckpt = checkpointing.Checkpointer(d + "/ckpt")
    fit(4, num_steps=20, ckpt=ckpt)
    ckpt.close()
    ckpt = checkpointing.Checkpointer(d + "/ckpt")
    resumed = fit(2, ckpt=ckpt)
    ckpt.close()
assert int(resumed.step) == 40
close(four, resumed)
# advance (DEC's stretches between target updates) runs on the mesh by default, too.
s_one, _ = train.advance(step, one, x, batch_size=64, count=3, data_key=train.default_data_key(one), devices=1)
s_four, losses = train.advance(step, four, x, batch_size=64, count=3, data_key=train.default_data_key(four))
assert losses.shape == (3,) and int(s_four.step) == 43
close(s_one, s_four)

try:
    train.run(step, fresh(), x, batch_size=66, num_steps=1, log_every=1)
except ValueError as e:
    assert "batch_size 66 does not split evenly over the 4 devices" in str(e), e
else:
    raise AssertionError("a batch of 66 on 4 devices was not refused")
try:
    train.data_mesh(5)
except ValueError as e:
    assert "must be a whole number in [1, 4], the visible devices; got 5" in str(e), e
else:
    raise AssertionError("5 of 4 devices was not refused")
print("ok")
"""


def test_training_data_parallel_matches_one_device_and_resumes_on_another_count():
    binaries.run_on_host_devices(_CODE, n_devices=4, timeout=600)


def test_idec_binary_on_four_devices_and_on_two_processes_gives_the_one_device_labels(tmp_path):
    # Pretraining and IDEC's stage both go through the shared loop: the default takes every visible device, in
    # one process or over several (jax.distributed on 127.0.0.1: 2 processes x 2 devices, the batch split over
    # all four; only process 0 writes and prints).
    four = f"{binaries.SMOKE_XLA_FLAGS} --xla_force_host_platform_device_count=4"
    tiny = ["--dataset=digits", "--mode=idec", "--ae_arch=mlp:16-10", "--ae_epochs=1", "--max_iter=30"]
    tiny += ["--n_init=2", "--update_interval=10", "--batch_size=64", "--ae_batch_size=64"]
    for name, extra in (("one", ["--num_devices=1"]), ("four", [])):
        binaries.run(["experiments.dec", *tiny, *extra, f"--workdir={tmp_path / name}"], tmp_path, XLA_FLAGS=four)
    outs = binaries.run_processes(["experiments.dec", *tiny, f"--workdir={tmp_path / 'two'}"], tmp_path, timeout=300)
    for i, (rc, _, err) in enumerate(outs):
        assert rc == 0, f"process {i} failed:\n{err[-3000:]}"
    summary = [[ln for ln in out.splitlines() if ln.startswith("idec digits/all")] for _, out, _ in outs]
    assert len(summary[0]) == 1 and summary[1] == []  # (gloo prints lines of its own to stdout in both)
    one, four_, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "four", "two"))
    assert one["n_devices"] == four_["n_devices"] == two["n_devices"] == 4
    assert (one["n_processes"], two["n_processes"]) == (1, 2)
    for name, other in (("four", four_), ("two", two)):
        np.testing.assert_array_equal(np.load(tmp_path / "one" / "labels.npy"), np.load(tmp_path / name / "labels.npy"))
        assert abs(one["acc"] - other["acc"]) < 1e-9
