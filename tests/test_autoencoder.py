"""Autoencoders, the shared training loop, pretraining, exact resume, and the two binaries."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from binaries import kill_at_first_checkpoint, run, steps_in

from research import augment, checkpointing, data, nets, runlog
from research.deep import pretrain, train


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def bits(tree):
    return [np.asarray(a).tobytes() for a in jax.tree.leaves(tree)]


@pytest.mark.parametrize(
    "arch,d,image_shape,latent",
    [
        ("dec", 784, None, 10),
        ("dense64", 784, None, 64),
        ("mlp:32-8-3", 64, None, 3),
        ("cae", 784, (28, 28), 64),
        ("dcec", 784, (28, 28), 10),
        ("cae", 64, (8, 8), 64),
        ("dcec", 3 * 20 * 18, (20, 18, 3), 10),
    ],
)
def test_every_preset_has_the_right_shapes(arch, d, image_shape, latent):
    model = nets.build(arch, d, image_shape=image_shape, activation="elu")
    x = jax.ShapeDtypeStruct((5, d), jnp.float32)  # shapes only: traced, not compiled
    params = jax.eval_shape(model.init, jax.random.key(0), x)
    z, x_hat = jax.eval_shape(model.apply, params, x)
    assert z.shape == (5, latent) and x_hat.shape == (5, d)
    assert jax.eval_shape(lambda p, x: model.apply(p, x, method="encode"), params, x).shape == (5, latent)


def test_encode_is_the_first_half_of_the_network():
    model = nets.build("cae", 64, image_shape=(8, 8))
    x = jnp.asarray(np.random.default_rng(0).random((3, 64)), jnp.float32)
    params = model.init(jax.random.key(0), x)
    assert np.array_equal(model.apply(params, x, method="encode"), model.apply(params, x)[0])


def test_dec_preset_is_the_papers_network():
    params = nets.build("dec", 784, init="dec").init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
    shapes = {k: v["kernel"].shape for k, v in params.items()}
    assert shapes == {
        "enc_0": (784, 500), "enc_1": (500, 500), "enc_2": (500, 2000), "enc_3": (2000, 10),
        "dec_3": (10, 2000), "dec_2": (2000, 500), "dec_1": (500, 500), "dec_0": (500, 784),
    }  # fmt: skip
    assert abs(float(jnp.std(params["enc_1"]["kernel"])) - 0.01) < 1e-3  # N(0, 0.01^2), as in DEC
    # Keras DEC's MNIST init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), so std 1/sqrt(3 fan_in) and |w| < 1/sqrt(fan_in).
    keras = nets.build("mlp:500-10", 784, init="fan_in_uniform").init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
    w = np.asarray(keras["enc_0"]["kernel"])
    assert abs(w.std() - 1 / np.sqrt(3 * 784)) < 1e-3 and np.abs(w).max() <= 1 / np.sqrt(784)


def test_bad_architectures_are_named():
    with pytest.raises(ValueError, match="unknown arch"):
        nets.build("resnet", 10)
    with pytest.raises(ValueError, match="needs images"):
        nets.build("cae", 10)
    with pytest.raises(ValueError, match="positive integer widths"):
        nets.build("mlp:10-x", 10)
    with pytest.raises(ValueError, match="unknown activation"):
        nets.build("dec", 10, activation="swish!")


def test_a_few_steps_overfit_a_tiny_batch():
    x = np.random.default_rng(0).random((16, 20)).astype(np.float32)
    model = nets.build("mlp:64-8", 20)
    cfg = pretrain.PretrainConfig(epochs=300, batch_size=16, learning_rate=3e-3)
    params = pretrain.pretrain(jax.random.key(0), model, x, cfg)
    before = pretrain.reconstruct(model, model.init(jax.random.key(0), x[:1]), x)
    after = pretrain.reconstruct(model, params, x)
    assert np.mean((after - x) ** 2) < 0.05 * np.mean((before - x) ** 2)


def test_same_seed_same_bits_other_seed_other_bits(digits):
    model = nets.build("dense64", 64)
    cfg = pretrain.PretrainConfig(epochs=3, batch_size=100)
    a = pretrain.pretrain(jax.random.key(1), model, digits.x, cfg)
    b = pretrain.pretrain(jax.random.key(1), model, digits.x, cfg)
    c = pretrain.pretrain(jax.random.key(2), model, digits.x, cfg)
    assert bits(a) == bits(b) and bits(a) != bits(c)


def test_resumed_training_equals_uninterrupted_bitwise(tmp_path, digits):
    model = nets.build("dense64", 64)
    full = pretrain.PretrainConfig(epochs=6, batch_size=100, log_every=5)
    straight = pretrain.pretrain(jax.random.key(3), model, digits.x, full, workdir=tmp_path / "a")
    # The same run stopped after 3 epochs (step 51: not a multiple of log_every, so the last checkpoint is 50
    # and steps 51.. are run again), then started again: it resumes from its checkpoint.
    part = full._replace(epochs=3)
    pretrain.pretrain(jax.random.key(3), model, digits.x, part, workdir=tmp_path / "b")
    assert checkpointing.Checkpointer(tmp_path / "b" / "ckpt" / "pretrain").latest_step() == 51
    resumed = pretrain.pretrain(jax.random.key(3), model, digits.x, full, workdir=tmp_path / "b")
    assert bits(resumed) == bits(straight)
    rows = runlog.MetricsLog(tmp_path / "b").rows()
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})  # no step logged twice


def test_augmented_pretraining_is_keyed_and_resumes_bitwise(tmp_path, digits):
    model = nets.build("dense64", 64)
    aug = augment.random_affine((8, 8), max_shift=0.1, max_rotation=10.0)
    full = pretrain.PretrainConfig(epochs=2, batch_size=100, log_every=5, augment=aug)
    straight = pretrain.pretrain(jax.random.key(3), model, digits.x, full, workdir=tmp_path / "a")
    pretrain.pretrain(jax.random.key(3), model, digits.x, full._replace(epochs=1), workdir=tmp_path / "b")
    resumed = pretrain.pretrain(jax.random.key(3), model, digits.x, full, workdir=tmp_path / "b")
    assert bits(resumed) == bits(straight)
    plain = pretrain.pretrain(jax.random.key(3), model, digits.x, full._replace(augment=None))
    assert bits(plain) != bits(straight)


def test_conv_autoencoder_trains_step_by_step_and_resumes_bitwise(tmp_path, digits):
    # Conv nets run each step as its own dispatch (train.run(scan=False)); the resume guarantee is the same.
    model = nets.build("cae", 64, image_shape=(8, 8), activation="elu")
    full = pretrain.PretrainConfig(epochs=2, batch_size=100, log_every=5)
    straight = pretrain.pretrain(jax.random.key(3), model, digits.x, full, workdir=tmp_path / "a")
    pretrain.pretrain(jax.random.key(3), model, digits.x, full._replace(epochs=1), workdir=tmp_path / "b")
    resumed = pretrain.pretrain(jax.random.key(3), model, digits.x, full, workdir=tmp_path / "b")
    assert bits(resumed) == bits(straight)
    rows = runlog.MetricsLog(tmp_path / "a").rows()
    assert rows[-1]["step"] == 34 and rows[-1]["loss"] < rows[0]["loss"]


def test_layerwise_then_finetune(tmp_path, digits):
    model = nets.build("mlp:32-16-4", 64, init="dec")
    cfg = pretrain.PretrainConfig(optimizer="adam", learning_rate=1e-2, layerwise_steps=100, epochs=3, batch_size=64)
    params = pretrain.pretrain(jax.random.key(0), model, digits.x, cfg, workdir=tmp_path)
    stages = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert stages == ["finetune", "layer0", "layer1", "layer2"]
    init = model.init(jax.random.key(0), digits.x[:1])
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, init)
    # From DEC's N(0, 0.01) init, three epochs end to end stay at the mean image; the greedy stage gets going.
    direct = pretrain.pretrain(jax.random.key(0), model, digits.x, cfg._replace(layerwise_steps=0))
    base = np.mean((digits.x - digits.x.mean(0)) ** 2)
    mse = {name: np.mean((pretrain.reconstruct(model, p, digits.x) - digits.x) ** 2) / base
           for name, p in (("layerwise", params), ("direct", direct))}  # fmt: skip
    assert mse["layerwise"] < 0.7 and mse["direct"] > 0.9, mse
    with pytest.raises(TypeError, match="dense autoencoders"):
        pretrain.pretrain(jax.random.key(0), nets.build("cae", 64, image_shape=(8, 8)), digits.x, cfg)


def test_nan_loss_stops_with_the_step(tmp_path):
    # SGD at rate 1 on a loss whose gradient is 1 takes c from 5.5 down by 1 a step: the loss, log(c), is
    # computed from c = -0.5 at step 7 (counted from 1), in the middle of a chunk of a resumed run.
    def loss_fn(params, batch, key):
        c = params["c"] + 0.0 * batch.sum()
        return c + jax.lax.stop_gradient(jnp.log(c) - c)

    tx = optax.sgd(1.0)
    step = train.make_step(loss_fn, tx)
    x = jnp.zeros((8, 1))
    state = train.init_state(jax.random.key(0), {"c": jnp.float32(5.5)}, tx)
    ckpt = checkpointing.Checkpointer(tmp_path, {}, async_save=False)
    train.run(step, state, x, batch_size=4, num_steps=4, log_every=4, ckpt=ckpt)
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 7 \(steps counted from 1\)"):
        train.run(step, state, x, batch_size=4, num_steps=20, log_every=10, ckpt=ckpt)
    ckpt.close()


def test_train_step_compiles_once_per_chunk_length(digits):
    model = nets.build("dense64", 64)
    cfg = pretrain.PretrainConfig(epochs=4, batch_size=100, log_every=7)  # chunks of 7 and a last one of 3
    pretrain.pretrain(jax.random.key(0), model, digits.x, cfg)
    before = train._chunk._cache_size()
    pretrain.pretrain(jax.random.key(1), model, digits.x, cfg)
    assert train._chunk._cache_size() == before


def test_batch_indices_are_epoch_permutations():
    idx = np.asarray(train.batch_indices(jax.random.key(0), 10, 3, 0, 6))  # 3 batches per epoch, 1 row left out
    for epoch in idx.reshape(2, 9):
        assert len(set(epoch.tolist())) == 9
    assert np.array_equal(np.asarray(train.batch_indices(jax.random.key(0), 10, 3, 2, 3)), idx[2:5])
    assert train.boundaries(5, 23, 4, 10) == [8, 10, 12, 16, 20, 23]


# --- binaries ---------------------------------------------------------------------------------------------------


AE = ["experiments.autoencoder", "--dataset=digits", "--arch=dense64", "--batch_size=64", "--seed=4"]


def test_autoencoder_binary_killed_and_resumed_ends_with_the_same_bits(tmp_path):
    flags = [*AE, "--epochs=60", "--checkpoint_every=28"]
    # The straight run also scores k-means on its codes every 20 epochs (560 steps): that must not change the
    # training, and a resumed run may turn it on or off. The three runs compared compile at XLA's default
    # optimisation level, the users' (the other runs of the suite use the cheapest).
    straight = tmp_path / "straight"
    run([*flags, "--cluster_every=20", f"--workdir={straight}"], tmp_path, smoke=False)
    victim = tmp_path / "killed"
    ckpt_dir = victim / "ckpt" / "pretrain"
    saved = kill_at_first_checkpoint([*flags, f"--workdir={victim}"], tmp_path, victim, ckpt_dir, smoke=False)
    # The interrupted workdir is refused to other settings, not started afresh over.
    other = run([*flags, "--arch=mlp:32-4", f"--workdir={victim}"], tmp_path, ok=False)
    assert other.returncode != 0 and "different configuration" in other.stderr and "arch" in other.stderr
    augmented = run([*flags, "--augment=affine", f"--workdir={victim}"], tmp_path, ok=False)
    assert augmented.returncode != 0 and "different configuration" in augmented.stderr and "augment" in augmented.stderr
    # A copy with its checkpoint zeroed is refused as damaged.
    broken = tmp_path / "broken"
    shutil.copytree(victim, broken)
    step = max(p for p in (broken / "ckpt" / "pretrain").iterdir() if p.name.isdigit())
    for f in (step / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 1000:
            f.write_bytes(b"\0" * f.stat().st_size)
    damaged = run([*flags, f"--workdir={broken}"], tmp_path, ok=False)
    assert damaged.returncode != 0 and "damaged" in damaged.stderr
    assert steps_in(ckpt_dir) == [saved]  # the refused runs left the checkpoint alone
    resumed = run([*flags, f"--workdir={victim}"], tmp_path, smoke=False)
    # It resumed (a restart gives the same bits too): from the saved step, logging no step twice.
    assert f"pretrain: resumed from step {saved} of {ckpt_dir}" in resumed.stderr
    steps = [r["step"] for r in runlog.MetricsLog(victim).rows() if r.get("stage") == "pretrain"]
    assert steps == [r["step"] for r in runlog.MetricsLog(straight).rows() if r.get("stage") == "pretrain"]
    assert steps == sorted(set(steps))
    a = checkpointing.load_pytree(straight / "model")
    b = checkpointing.load_pytree(victim / "model")
    assert bits(a) == bits(b)
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    probed = [r for r in rows if "kmeans_acc" in r]
    assert [r["step"] for r in probed] == [560, 1120, 1680]
    assert all(0.5 < r["kmeans_acc"] <= 1 and 0.4 < r["kmeans_nmi"] <= 1 for r in probed)
    assert json.loads((straight / "results.json").read_text())["kmeans_acc"] == probed[-1]["kmeans_acc"]
    assert (straight / "plots" / "clustering.png").stat().st_size > 5_000
    assert not (victim / "plots" / "clustering.png").exists()
    results = json.loads((victim / "results.json").read_text())
    assert results["reconstruction_mse"] < 0.05 and results["n_params"] == 64 * 64 * 2 + 64 + 64
    assert (victim / "plots" / "reconstructions.png").stat().st_size > 5_000


def test_ae_kmeans_pretrains_then_reuses(tmp_path):
    flags = [
        "experiments.ae_kmeans",
        "--dataset=digits",
        "--ae_arch=dense64",
        "--ae_epochs=5",
        "--n_init=3",
        "--seed=4",
    ]
    out = run([*flags, f"--workdir={tmp_path / 'one'}"], tmp_path)
    results = json.loads((tmp_path / "one" / "results.json").read_text())
    assert results["acc"] > 0.4 and results["embedding_dim"] == 64
    assert out.stdout.strip().splitlines()[-1].startswith("ae_kmeans digits/all K=10: acc=")
    for figure in ("reconstructions.png", "clusters.png"):
        assert (tmp_path / "one" / "plots" / figure).stat().st_size > 5_000
    # Branching from the saved autoencoder gives the same codes, so the same clustering.
    run([*flags, f"--pretrained={tmp_path / 'one' / 'autoencoder'}", f"--workdir={tmp_path / 'two'}"], tmp_path)
    assert np.array_equal(np.load(tmp_path / "one" / "labels.npy"), np.load(tmp_path / "two" / "labels.npy"))
    missing = run([*flags, f"--pretrained={tmp_path / 'nowhere'}", f"--workdir={tmp_path / 'x'}"], tmp_path, ok=False)
    assert "holds no trained autoencoder" in missing.stderr


# --- the notes' networks, their losses and optimizer, validation loss, augmentation preview -----------------------


def kernel_shapes(model, d):
    params = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((2, d), jnp.float32))["params"]
    return {name: layer["kernel"].shape for name, layer in params.items()}


def test_the_notes_presets_have_their_layer_sizes():
    # 784-784-64-784 and 784-200-784: every layer activated, one dense layer back to the pixels.
    assert kernel_shapes(nets.build("dense784-64", 784), 784) == {
        "enc_0": (784, 784), "enc_1": (784, 64), "out": (64, 784)
    }  # fmt: skip
    assert kernel_shapes(nets.build("dense200", 784), 784) == {"enc_0": (784, 200), "out": (200, 784)}
    # 2x2 stride-2 convolutions 28 -> 14 -> 7 with 32 and 64 filters, no dense layer, transposed back up.
    cae = nets.build("cae32-64k2", 784, image_shape=(28, 28), activation="elu")
    assert kernel_shapes(cae, 784) == {
        "conv_0": (2, 2, 1, 32), "conv_1": (2, 2, 32, 64), "deconv_1": (2, 2, 64, 32), "deconv_0": (2, 2, 32, 1)
    }  # fmt: skip
    x = jax.ShapeDtypeStruct((3, 784), jnp.float32)
    z, out = jax.eval_shape(cae.apply, jax.eval_shape(cae.init, jax.random.key(0), x), x)
    assert z.shape == (3, 7 * 7 * 64) and out.shape == (3, 784)
    small = nets.build("dense:30-5", 64)
    assert kernel_shapes(small, 64) == {"enc_0": (64, 30), "enc_1": (30, 5), "out": (5, 64)}
    x = jnp.asarray(np.random.default_rng(0).normal(size=(40, 64)), jnp.float32)
    z, out = small.apply(small.init(jax.random.key(0), x), x)
    assert z.shape == (40, 5) and out.shape == (40, 64)
    assert float(z.min()) == 0  # the code goes through the relu too (DEC's mlp code is linear)


def test_bce_and_sigmoid_mse_equal_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 8, (6, 50)).astype(np.float32)
    logits[0, :3] = [-60.0, 60.0, 0.0]  # far out, where log(sigmoid) in float32 would give -inf
    x = rng.random((6, 50)).astype(np.float32)
    x[0, :3] = [1.0, 0.0, 0.5]
    z = logits.astype(np.float64)
    log_p, log_1p = -np.logaddexp(0, -z), -np.logaddexp(0, z)  # log sigmoid(z), log(1 - sigmoid(z))
    bce = -np.mean(x * log_p + (1 - x) * log_1p)
    assert np.isclose(float(pretrain.reconstruction_loss(logits, x, "bce")), bce, rtol=1e-6)
    mse = np.mean((1 / (1 + np.exp(-z)) - x) ** 2)
    assert np.isclose(float(pretrain.reconstruction_loss(logits, x, "sigmoid_mse")), mse, rtol=1e-6)
    assert [pretrain.objective(*a) for a in (("mse",), ("mse", "sigmoid"), ("bce",), ("bce", "sigmoid"))] == [
        "mse", "sigmoid_mse", "bce", "bce"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="sigmoid output"):
        pretrain.objective("bce", "linear")


def test_adadelta_is_keras_rule():
    # Keras 2: a = rho a + (1 - rho) g^2; u = g sqrt(d + eps) / sqrt(a + eps); p -= lr u; d = rho d + (1 - rho) u^2.
    tx = pretrain.optimizer("adadelta", 1.0)
    p = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.2])]
    state, want = tx.init(p), np.array([1.0, -2.0, 3.0])
    a, d = np.zeros(3), np.zeros(3)
    for g in grads:
        updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, p)
        p = optax.apply_updates(p, updates)
        a = 0.95 * a + 0.05 * g**2
        u = g * np.sqrt(d + 1e-7) / np.sqrt(a + 1e-7)
        want, d = want - u, 0.95 * d + 0.05 * u**2
    np.testing.assert_allclose(np.asarray(p["w"]), want, rtol=1e-5)


def test_eval_loss_rows_loss_plot_and_augment_preview(tmp_path):
    from experiments import common, stages

    run = common.RunConfig(experiment="autoencoder", workdir=tmp_path, dataset="digits", split="train")
    cfg = stages.AutoencoderConfig(
        arch="dense:16", loss="bce", optimizer="adadelta", learning_rate=1.0, batch_size=100, epochs=2,
        eval_split="test", augment="affine",
    )  # fmt: skip
    ds = run.load()
    model, params, spec, results = stages.train_autoencoder(run, tmp_path, ds, cfg)
    rows = [r for r in runlog.MetricsLog(tmp_path).rows() if r.get("stage") == "pretrain"]
    assert [r["step"] for r in rows] == [15, 30] and all("eval_loss" in r for r in rows)
    test = run.load("test").x
    assert np.isclose(rows[-1]["eval_loss"], pretrain.evaluate(model, params, test, "bce"), rtol=1e-6)
    assert rows[-1]["eval_loss"] < rows[0]["eval_loss"]  # adadelta trains
    assert results["eval_split"] == "test" and results["test_loss"] == results["eval_loss"] == rows[-1]["eval_loss"]
    assert spec["loss"] == "bce"
    for figure in ("loss.png", "augment_preview.png"):  # the preview: with --augment, before training
        assert (tmp_path / "plots" / figure).stat().st_size > 5_000
    with pytest.raises(ValueError, match="part of the training data"):
        stages.train_autoencoder(dataclasses.replace(run, split="all"), tmp_path / "b", ds, cfg)


def test_augment_preview_draws_what_the_augmenter_makes(tmp_path, digits, monkeypatch):
    from experiments import stages
    from research import plots

    aug = stages.augmenter((8, 8), "affine", 0.2, 30.0, "augment")
    drawn, draw = [], plots.augment_preview
    monkeypatch.setattr(
        plots, "augment_preview", lambda columns, *a, **k: drawn.append(columns) or draw(columns, *a, **k)
    )
    key = jax.random.key(1)
    path = stages.augment_preview(aug, digits, tmp_path / "augment_preview.png", key, seed=2, n=4)
    assert path.stat().st_size > 5_000
    names = [name for name, _ in drawn[0]]
    assert names == ["original", "shifted", "turned", "shifted + turned", "shifted + turned", "shifted + turned"]
    x = drawn[0][0][1]
    assert x.shape == (4, 64) and all(any(np.array_equal(row, d) for d in digits.x) for row in x)
    np.testing.assert_allclose(drawn[0][3][1], jax.jit(aug)(jax.random.fold_in(key, 2), x), atol=1e-6)
    assert not np.allclose(drawn[0][3][1], drawn[0][4][1])  # each draw its own


def test_notes_flagfiles_name_networks_that_build():
    from pathlib import Path

    from experiments import stages

    files = sorted(Path(__file__).parents[1].glob("experiments/configs/notes_*.flags"))
    assert len(files) == 5
    for f in files:
        values = dict(line[2:].split("=", 1) for line in f.read_text().splitlines() if line.startswith("--"))
        fields = {k: v for k, v in values.items() if k in stages.FIELDS}
        assert set(values) - set(fields) <= {"dataset", "split"}, f
        cfg = stages.AutoencoderConfig(**{k: type(getattr(stages.AutoencoderConfig, k))(v) for k, v in fields.items()})
        assert cfg.objective() in ("sigmoid_mse", "bce") and values["split"] == "train"
        nets.build(cfg.arch, 784, image_shape=(28, 28), activation=cfg.activation)
