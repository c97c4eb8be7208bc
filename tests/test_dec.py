"""DEC, IDEC and DEC w/o backprop: the objective, training to a stop, exact resume, and the binaries."""

import csv
import json
import re
import subprocess
import sys

import binaries
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from binaries import kill_at_first_checkpoint, run, steps_in
from jax.test_util import check_grads
from test_environment import expected as expected_scalars
from test_environment import scalars as tensorboard_scalars

from research import augment, checkpointing, data, metrics, nets, runlog
from research.cluster import kmeans
from research.deep import dec, pretrain, train


def bits(tree):
    return [np.asarray(a).tobytes() for a in jax.tree.leaves(tree)]


def blobs(n_per=100, k=4, d=20, seed=0, noise=0.3):
    """k Gaussian blobs in d dimensions (far apart at the default noise), scaled into [0, 1] like pixels."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(k, d)) * 4
    x = np.concatenate([c + rng.normal(size=(n_per, d)) * noise for c in centroids])
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype(np.float32), np.repeat(np.arange(k), n_per)


@pytest.fixture(scope="module")
def pretrained():
    x, y = blobs()
    model = nets.build("mlp:32-2", x.shape[1])
    params = pretrain.pretrain(jax.random.key(0), model, x, pretrain.PretrainConfig(epochs=30, batch_size=32))
    return model, params, x, y


CFG = dec.DECConfig(n_clusters=4, update_interval=20, max_iter=400, batch_size=32, n_init=5, learning_rate=0.05)


# --- the objective ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_soft_assignment_is_the_students_t_kernel_and_rows_sum_to_one(alpha):
    rng = np.random.default_rng(0)
    z, mu = rng.normal(size=(50, 3)), rng.normal(size=(4, 3))
    q = np.asarray(dec.soft_assign(jnp.asarray(z, jnp.float32), jnp.asarray(mu, jnp.float32), alpha))
    kernel = (1 + ((z[:, None] - mu[None]) ** 2).sum(-1) / alpha) ** (-(alpha + 1) / 2)
    np.testing.assert_allclose(q, kernel / kernel.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)


def test_target_distribution_is_sharper_than_q():
    q = jax.nn.softmax(jax.random.normal(jax.random.key(0), (200, 5)), axis=1)
    p = dec.target_distribution(q)
    np.testing.assert_allclose(np.asarray(p.sum(1)), 1.0, rtol=1e-6)
    entropy = lambda a: -np.sum(np.asarray(a) * np.log(np.asarray(a)), 1)
    assert entropy(p).mean() < entropy(q).mean()
    assert np.array_equal(np.asarray(p.argmax(1)), np.asarray(q.argmax(1)))  # sharpening keeps the choice here
    # With equal soft cluster sizes, every row is sharper: its largest entry grows.
    q_even = jnp.array([[0.6, 0.4], [0.4, 0.6]])
    assert np.all(np.asarray(dec.target_distribution(q_even)).max(1) > 0.6)


def test_kl_gradient_matches_finite_differences():
    key_z, key_mu, key_p = jax.random.split(jax.random.key(1), 3)
    z, mu = jax.random.normal(key_z, (16, 3)), jax.random.normal(key_mu, (4, 3))
    p = dec.target_distribution(jax.nn.softmax(jax.random.normal(key_p, (16, 4)) * 2, axis=1))
    loss = lambda z, mu: dec.kl_divergence(p, jnp.log(dec.soft_assign(z, mu, 1.0)))
    check_grads(loss, (z, mu), order=1, modes=["rev"], eps=1e-2, atol=2e-2, rtol=2e-2)
    assert float(dec.kl_divergence(p, jnp.log(p))) == pytest.approx(0.0, abs=1e-6)


# --- training ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [{}, {"gamma": 0.1, "optimizer": "adam", "learning_rate": 1e-3}, {"frozen": True}])
def test_separated_blobs_are_clustered_perfectly(pretrained, variant):
    model, params, x, y = pretrained
    res = dec.fit(jax.random.key(2), model, params, x, CFG._replace(**variant), y=y)
    assert metrics.acc(y, res.labels) == 1.0
    assert res.history[-1]["acc"] == 1.0 and res.converged
    np.testing.assert_allclose(res.q.sum(1), 1.0, rtol=1e-5)
    assert res.params["centroids"].shape == (4, 2)
    if variant.get("frozen"):  # the encoder is untouched
        assert bits(res.params["ae"]) == bits(params)
    assert jax.tree.map(jnp.shape, res.params["ae"]) == jax.tree.map(jnp.shape, params)


def test_dec_da_trains_on_transformed_inputs_with_the_originals_targets(pretrained):
    model, params, x, y = pretrained
    cfg = CFG._replace(tol=0.0, max_iter=60)
    plain = dec.fit(jax.random.key(2), model, params, x, cfg, y=y)
    # The blobs' 20 features read as 4x5 images, moved by up to 0.4 pixels and turned by up to 10 degrees (they
    # are no pictures, so this mixes their features: only the mechanics are tested here, MNIST shows the gain).
    aug = augment.random_affine((4, 5), max_shift=0.1, max_rotation=10.0)
    a = dec.fit(jax.random.key(2), model, params, x, cfg._replace(augment=aug), y=y)
    b = dec.fit(jax.random.key(2), model, params, x, cfg._replace(augment=aug), y=y)
    assert bits(a.params) == bits(b.params) and bits(a.params) != bits(plain.params)
    still = augment.random_affine((4, 5), max_shift=0.0, max_rotation=0.0)
    same = dec.fit(jax.random.key(2), model, params, x, cfg._replace(augment=still), y=y)
    np.testing.assert_allclose(same.q, plain.q, atol=1e-5)
    with pytest.raises(ValueError, match="frozen"):
        dec.fit(jax.random.key(0), model, params, x, CFG._replace(augment=aug, frozen=True))


def test_stops_on_tol_or_at_maxiter(pretrained):
    model, params, x, _ = pretrained
    first = dec.fit(jax.random.key(2), model, params, x, CFG._replace(tol=1.0))
    assert first.converged and first.n_iter == CFG.update_interval and first.n_updates == 2
    never = dec.fit(jax.random.key(2), model, params, x, CFG._replace(tol=0.0, max_iter=50))
    assert not never.converged and never.n_iter == 50  # stretches of 20, 20 and 10 steps
    assert [h["step"] for h in never.history] == [0, 20, 40, 50] and never.n_updates == 4
    assert all(h["delta_label"] >= 0 for h in never.history)


@pytest.mark.parametrize("gamma", [None, 0.1])
def test_batch_target_is_the_batchs_own_p_held_constant(pretrained, gamma):
    # ClustPy's rule: P from the batch's own Q, no gradient through it. The same loss and gradient as the full
    # target's loss given that P from outside.
    model, params, x, _ = pretrained
    centroids = model.apply(params, x[::100], method="encode")  # one code of each blob
    params = {"ae": params, "centroids": centroids + 0.05}
    batch = jnp.asarray(x[::7][:32])
    z = model.apply(params["ae"], batch, method="encode")
    p = dec.target_distribution(dec.soft_assign(z, params["centroids"]))
    own = dec._loss(model, 1.0, gamma, "mse", False, None, "batch")
    given = dec._loss(model, 1.0, gamma, "mse", False, None, "full")
    key = jax.random.key(0)
    (a, ga), (b, gb) = (
        jax.jit(jax.value_and_grad(f))(params, d, key) for f, d in ((own, {"x": batch}), (given, {"x": batch, "p": p}))
    )
    np.testing.assert_allclose(a, b, rtol=1e-5)
    for u, v in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-7)


def test_batch_target_trains_fixed_steps_and_labels_only_at_the_ends(pretrained, monkeypatch):
    model, params, x, y = pretrained
    passes, encode = [], pretrain.encode
    monkeypatch.setattr(pretrain, "encode", lambda *a, **kw: passes.append(1) or encode(*a, **kw))
    cfg = CFG._replace(target="batch", tol=0.0, max_iter=50)
    res = dec.fit(jax.random.key(2), model, params, x, cfg, y=y)
    assert len(passes) == 2  # the k-means start's codes and the final labels: none between the stretches
    assert bits(res.params["ae"]["params"]["dec_0"]) == bits(params["params"]["dec_0"])  # DEC trains no decoder
    assert res.n_iter == 50 and res.n_updates == 2 and not res.converged and metrics.acc(y, res.labels) == 1.0
    assert [(h["step"], "delta_label" in h) for h in res.history] == [(0, True), (20, False), (40, False), (50, True)]
    full = dec.fit(jax.random.key(2), model, params, x, cfg._replace(target="full"), y=y)
    assert bits(full.params) != bits(res.params)  # the same batches, other targets
    # With tol, each update_interval a labelling pass checks it, as with the full target.
    checked = dec.fit(jax.random.key(2), model, params, x, cfg._replace(tol=0.05, max_iter=400), y=y)
    assert checked.converged and checked.n_iter == 20 and checked.n_updates == 2
    with pytest.raises(ValueError, match="'full'"):
        dec.fit(jax.random.key(2), model, params, x, cfg._replace(target="all"))


def test_same_seed_same_bits_and_one_compilation(pretrained):
    model, params, x, _ = pretrained
    cfg = CFG._replace(tol=0.0, max_iter=60)
    a = dec.fit(jax.random.key(3), model, params, x, cfg)
    before = train._chunk._cache_size()
    b = dec.fit(jax.random.key(3), model, params, x, cfg)
    c = dec.fit(jax.random.key(4), model, params, x, cfg)
    assert train._chunk._cache_size() == before
    assert bits(a.params) == bits(b.params) and bits(a.params) != bits(c.params)


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, pretrained, monkeypatch):
    model, params, x, y = pretrained
    cfg = CFG._replace(tol=0.0, max_iter=200, checkpoint_every=2)
    straight = dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "a", config={"k": 4})
    calls, advance = [], train.advance

    def killed_after_five(*args, **kw):  # the process dies during the sixth stretch, after the checkpoint at 80
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return advance(*args, **kw)

    monkeypatch.setattr(train, "advance", killed_after_five)
    log = runlog.MetricsLog(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "b", config={"k": 4}, log=log)
    monkeypatch.setattr(train, "advance", advance)
    assert checkpointing.Checkpointer(tmp_path / "b" / "train_ckpt").latest_step() == 80
    resumed = dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "b", config={"k": 4}, log=log)
    assert bits(resumed.params) == bits(straight.params)
    assert np.array_equal(resumed.labels, straight.labels) and resumed.n_updates == straight.n_updates
    steps = [r["step"] for r in log.rows()]
    assert steps == list(range(0, 201, 20))  # the rows read like one uninterrupted run's
    with pytest.raises(checkpointing.CheckpointMismatchError, match="alpha|k"):
        dec.fit(jax.random.key(5), model, params, x, cfg, workdir=tmp_path / "b", config={"k": 5})


def killed_at_call(monkeypatch, module, name, call):
    """Makes module.name raise KeyboardInterrupt (a kill) on its `call`-th call; returns the original."""
    calls, original = [], getattr(module, name)

    def dies(*args, **kw):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kw)

    monkeypatch.setattr(module, name, dies)
    return original


def test_log_is_rewound_when_killed_before_the_first_checkpoint(tmp_path, pretrained, monkeypatch):
    model, params, x, y = pretrained
    cfg = CFG._replace(tol=0.0, max_iter=60, checkpoint_every=100)  # no checkpoint before the last step
    log = runlog.MetricsLog(tmp_path)
    advance = killed_at_call(monkeypatch, train, "advance", 2)
    with pytest.raises(KeyboardInterrupt):
        dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path, log=log)
    monkeypatch.setattr(train, "advance", advance)
    assert [r["step"] for r in log.rows()] == [0, 20]
    dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path, log=log)
    assert [r["step"] for r in log.rows()] == [0, 20, 40, 60]


def test_stop_decision_after_a_kill_is_the_uninterrupted_runs(tmp_path, pretrained, monkeypatch):
    model, params, x, y = pretrained
    cfg = CFG._replace(checkpoint_every=1)  # tol 1e-3: these blobs stop at the first update after the start
    straight = dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "a")
    assert straight.converged and straight.n_iter == 20
    # Killed after the checkpoint at step 20, before the update there decides to stop.
    log = runlog.MetricsLog(tmp_path / "b")
    encode = killed_at_call(monkeypatch, pretrain, "encode", 2)
    with pytest.raises(KeyboardInterrupt):
        dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "b", log=log)
    monkeypatch.setattr(pretrain, "encode", encode)
    assert checkpointing.Checkpointer(tmp_path / "b" / "train_ckpt").all_steps() == [20]
    resumed = dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "b", log=log)
    assert resumed.converged and resumed.n_iter == straight.n_iter and resumed.n_updates == straight.n_updates
    assert [h["step"] for h in resumed.history] == [20]  # resumed at the checkpoint, not started over
    assert bits(resumed.params) == bits(straight.params) and np.array_equal(resumed.labels, straight.labels)
    assert [r["step"] for r in log.rows()] == [0, 20]


def test_a_stretch_lowers_kl_to_its_target_from_an_imperfect_start():
    # Overlapping blobs: k-means on the codes gets about 3 in 4 right. One stretch of steps on the target P of
    # the k-means start lowers KL(P || Q), the objective DEC minimises between two updates of P.
    x, y = blobs(noise=3.0)
    model = nets.build("mlp:32-2", x.shape[1])
    params = pretrain.pretrain(jax.random.key(0), model, x, pretrain.PretrainConfig(epochs=30, batch_size=32))
    cfg = CFG._replace(tol=0.0, max_iter=CFG.update_interval)
    res = dec.fit(jax.random.key(2), model, params, x, cfg)
    k_init, _ = jax.random.split(jax.random.key(2))  # the start dec.fit makes
    start = kmeans.fit(k_init, pretrain.encode(model, params, x), 4, n_init=cfg.n_init)
    assert np.array_equal(start.labels, res.init_labels) and metrics.acc(y, res.init_labels) < 0.9
    q0 = dec.predict_proba(model, {"ae": params, "centroids": start.centroids}, x)
    p = dec.target_distribution(jnp.asarray(q0))
    q1 = dec.predict_proba(model, res.params, x)
    kl_before, kl_after = (float(dec.kl_divergence(p, jnp.log(jnp.asarray(q)))) for q in (q0, q1))
    assert kl_after < 0.8 * kl_before


def test_bad_settings_are_named(pretrained):
    model, params, x, _ = pretrained
    with pytest.raises(ValueError, match="n_clusters"):
        dec.fit(jax.random.key(0), model, params, x[:3], CFG)
    with pytest.raises(ValueError, match="frozen"):
        dec.fit(jax.random.key(0), model, params, x, CFG._replace(gamma=0.1, frozen=True))
    with pytest.raises(ValueError, match="tol"):
        dec.fit(jax.random.key(0), model, params, x, CFG._replace(tol=-1.0))
    with pytest.raises(ValueError, match="non-finite|NaN|nan"):
        dec.fit(jax.random.key(0), model, params, np.full_like(x, np.nan), CFG)


def test_objective_is_kl_of_the_sets_own_target(pretrained):
    model, params, x, _ = pretrained
    res = dec.fit(jax.random.key(2), model, params, x, CFG)
    q = dec.predict_proba(model, res.params, x).astype(np.float64)
    np.testing.assert_allclose(q, res.q, rtol=1e-5, atol=1e-6)
    w = q**2 / q.sum(0)
    p = w / w.sum(1, keepdims=True)
    kl = np.mean(np.sum(p * np.log(p / q), 1))
    assert dec.objective(model, res.params, x) == pytest.approx(kl, rel=1e-4) and kl > 0
    # Coincident centroids give uniform q, which is its own target: the objective is 0.
    same = {**res.params, "centroids": jnp.zeros_like(res.params["centroids"])}
    assert dec.objective(model, same, x) == pytest.approx(0.0, abs=1e-6)


def test_imbalanced_subset_follows_the_retention_rates():
    ds = data.Dataset(x=np.zeros((100_000, 1), np.float32), y=np.arange(100_000) % 10, image_shape=None, name="t")
    sub = data.imbalanced(ds, 0.1, seed=0)
    kept = np.bincount(sub.y, minlength=10) / 10_000
    np.testing.assert_allclose(kept, 0.1 + 0.9 * np.arange(10) / 9, atol=0.02)
    assert np.array_equal(data.imbalanced(ds, 0.1, seed=0).y, sub.y) and len(data.imbalanced(ds, 0.1, 1).y) != len(
        sub.y
    )
    with pytest.raises(ValueError, match="retention"):
        data.imbalanced(ds, 0.0)
    train_part, val = data.split_validation(ds, 0.2, seed=0)
    assert len(val.x) == 20_000 and len(train_part.x) == 80_000


def test_snapshots_leave_the_bits_alone_and_survive_a_kill(tmp_path, pretrained, monkeypatch):
    model, params, x, y = pretrained
    cfg = CFG._replace(tol=0.0, max_iter=120, checkpoint_every=3)  # 6 updates, a checkpoint at step 60
    plain = dec.fit(jax.random.key(5), model, params, x, cfg, y=y)
    snaps = dec.Snapshots(len(x), 2, size=150, path=tmp_path / "a.npz")
    straight = dec.fit(jax.random.key(5), model, params, x, cfg, y=y, on_update=snaps)
    assert bits(straight.params) == bits(plain.params) and np.array_equal(straight.labels, plain.labels)
    want = snaps.arrays()
    assert list(want["steps"]) == [0, 40, 80, 120] and list(want["updates"]) == [0, 2, 4, 6]
    assert want["codes"].shape == (4, 150, 2) and np.array_equal(want["codes"][-1], straight.embedding[snaps.index])
    # Killed before the stretch from step 100: the panel at 80 is saved, the checkpoint is at 60.
    advance = killed_at_call(monkeypatch, train, "advance", 6)
    with pytest.raises(KeyboardInterrupt):
        dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "b",
                on_update=dec.Snapshots(len(x), 2, size=150, path=tmp_path / "b.npz"))  # fmt: skip
    monkeypatch.setattr(train, "advance", advance)
    assert list(np.load(tmp_path / "b.npz")["steps"]) == [0, 40, 80]
    # The resumed call reads them, drops the one past its checkpoint and takes it again.
    again = dec.Snapshots(len(x), 2, size=150, path=tmp_path / "b.npz")
    dec.fit(jax.random.key(5), model, params, x, cfg, y=y, workdir=tmp_path / "b", on_update=again)
    got = dict(np.load(tmp_path / "b.npz"))
    assert all(np.array_equal(got[k], want[k]) for k in want)
    points, centres = again.project()  # one projection, fitted on the pre-DEC panel: centred there only
    assert points.shape == (4, 150, 2) and centres.shape == (4, 4, 2)
    np.testing.assert_allclose(points[0].mean(0), 0, atol=1e-4)
    assert np.abs(points[-1].mean(0)).max() > 1e-3


def test_crossing_of_two_curves_is_interpolated():
    from research import plots

    ks = [3, 4, 5, 6, 7]
    nmi, g = [0.2, 0.5, 0.8, 0.9, 0.85], [1.0, 0.9, 0.7, 0.6, 0.6]
    assert plots.curve_crossings(ks, nmi, g) == pytest.approx([4.8])  # -0.4 at 4, +0.1 at 5
    assert plots.curve_crossings(ks, g, nmi) == pytest.approx([4.8])
    assert plots.curve_crossings(ks, [0.1, 0.2, 0.6, 0.3, 0.1], [0.5] * 5) == pytest.approx([4.75, 5 + 1 / 3])
    assert plots.curve_crossings(ks, [0.1, 0.5, 0.7, 0.9, 1.0], [0.5] * 5) == [4.0]  # touching at a sample
    assert plots.curve_crossings(ks, nmi, [1.5] * 5) == []


def test_k_sweep_figure_is_redrawn_from_the_csv_alone(tmp_path):
    rows = [("k", "seed", "nmi", "generalizability")]
    rows += [(k, s, 0.1 * k + 0.01 * s, 1.2 - 0.05 * k) for k in (3, 4, 5, 6, 7, 8) for s in (0, 1)]
    (tmp_path / "dec_num_clusters.csv").write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    out = run(["experiments.reproduce", "--table=dec_num_clusters", "--figure_from_csv", f"--out={tmp_path}"], tmp_path)
    # Means over the seeds: nmi 0.1 k + 0.005 meets 1.2 - 0.05 k at k = 1.195 / 0.15.
    assert f"cross at K ≈ {1.195 / 0.15:.2f}" in out.stdout and not (tmp_path / "runs").exists()
    assert (tmp_path / "dec_num_clusters.png").stat().st_size > 5_000


# --- binaries ---------------------------------------------------------------------------------------------------

AE = ["--dataset=digits", "--ae_arch=mlp:64-32-10", "--ae_epochs=20", "--seed=1"]
SMALL = [*AE, "--update_interval=30", "--n_init=5"]


def test_dec_binary_pretrains_writes_its_outputs_and_resumes_after_sigkill(tmp_path):
    flags = ["experiments.dec", *SMALL, "--max_iter=300", "--tol=0", "--checkpoint_updates=2"]
    out = run([*flags, "--tensorboard", f"--workdir={tmp_path / 'straight'}"], tmp_path)
    wd = tmp_path / "straight"
    # --tensorboard: each stage's events hold exactly its metrics.jsonl rows.
    for folder in (wd, wd / "autoencoder"):
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert tensorboard_scalars(folder / "tensorboard") == expected_scalars(rows)
    assert {tag for tag, _ in tensorboard_scalars(wd / "tensorboard")} >= {"dec/acc", "dec/nmi", "dec/delta_label"}
    results = json.loads((wd / "results.json").read_text())
    assert results["mode"] == "dec" and results["n_iter"] == 300 and not results["converged"]
    assert results["acc"] > 0.5 and "init_acc" in results
    assert out.stdout.strip().splitlines()[-1].startswith("dec digits/all K=10 (dec): acc=")
    for figure in ("clusters.png", "training.png", "embedding.png", "dec_snapshots.png"):
        assert (wd / "plots" / figure).stat().st_size > 5_000
    # The default --snapshot_every=5 of 10 updates: panels before any step, at update 5 and at the end.
    snaps = np.load(wd / "dec_snapshots.npz")
    assert list(snaps["steps"]) == [0, 150, 300] and results["snapshot_panels"] == 3
    assert snaps["points"].shape == (3, 1797, 2) and snaps["codes"].shape == (3, 1797, 10)
    rows = [r for r in runlog.MetricsLog(wd).rows() if r.get("stage") == "dec"]
    assert [r["step"] for r in rows] == list(range(0, 301, 30)) and all("acc" in r for r in rows)
    # The saved encoder is DEC's: other binaries take it with --pretrained.
    model, params, _ = pretrain.load_model(wd)
    np.testing.assert_allclose(pretrain.encode(model, params, data.load("digits").x), np.load(wd / "embedding.npy"))

    # Killed once it has checkpointed (reusing the pretrained autoencoder), resumed: the same bits.
    victim = tmp_path / "killed"
    ae = [f"--pretrained={wd / 'autoencoder'}"]
    ckpt_dir = victim / "train_ckpt"
    saved = kill_at_first_checkpoint([*flags, *ae, f"--workdir={victim}"], tmp_path, victim, ckpt_dir)
    resumed = run([*flags, *ae, f"--workdir={victim}"], tmp_path)
    # It resumed (a restart gives the same bits too): from the saved step, logging no update twice.
    assert f"dec: resumed from step {saved} of {ckpt_dir}" in resumed.stderr and steps_in(ckpt_dir)
    assert [r["step"] for r in runlog.MetricsLog(victim).rows() if r.get("stage") == "dec"] == list(range(0, 301, 30))
    assert bits(checkpointing.load_pytree(victim / "model")) == bits(checkpointing.load_pytree(wd / "model"))
    assert np.array_equal(np.load(victim / "labels.npy"), np.load(wd / "labels.npy"))
    again = np.load(victim / "dec_snapshots.npz")  # the panels of before the kill were kept or taken again
    assert list(again["steps"]) == [0, 150, 300] and np.array_equal(again["codes"], snaps["codes"])
    # The same workdir with other settings is refused, not overwritten.
    (victim / "results.json").unlink()
    other = run([*flags, *ae, "--alpha=2", f"--workdir={victim}"], tmp_path, ok=False)
    assert other.returncode != 0 and "alpha" in other.stderr


def test_dec_binary_old_flag_names_are_aliases_and_mixed_modes_are_refused(tmp_path):
    # Last release's names still set the new flags: DEC's stage lost its --dec_ prefix, pretraining gained --ae_.
    probe = (
        "from absl import flags; from experiments import dec; F = flags.FLAGS; "
        "F(['x', '--dec_optimizer=adam', '--dec_learning_rate=0.5', '--maxiter=7', '--epochs=3', '--arch=dense64']); "
        "print(F.optimizer, F.learning_rate, F.max_iter, F.ae_epochs, F.ae_arch); F.unparse_flags(); "
        # Panels at every few updates, where batch targets without tol make no update between the first and last.
        "F(['x', '--target=batch', '--tol=0', '--snapshot_every=2']); dec.main([])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=False, cwd=tmp_path, env=binaries.env(), capture_output=True, text=True
    )
    assert out.stdout.split() == ["adam", "0.5", "7", "3.0", "dense64"], out.stderr[-2000:]
    assert "--snapshot_every: with --target=batch --tol=0" in out.stderr, out.stderr[-2000:]
    # IDEC's weight without IDEC, and augmentation with a frozen encoder, would be silently ignored: refused.
    gamma = run(["experiments.dec", "--gamma=0.2", f"--workdir={tmp_path / 'g'}"], tmp_path, ok=False)
    assert gamma.returncode != 0 and "--mode=idec" in gamma.stderr
    frozen = run(
        ["experiments.dec", "--mode=frozen", "--augment=affine", f"--workdir={tmp_path / 'f'}"], tmp_path, ok=False
    )
    assert frozen.returncode != 0 and "--mode=frozen" in frozen.stderr
    assert not (tmp_path / "g").exists() and not (tmp_path / "f").exists()


def test_quick_reproduce_writes_every_row_and_reuses_finished_runs(tmp_path):
    common = ["--quick", "--seeds=0", f"--root={tmp_path / 'runs'}", f"--out={tmp_path / 'results'}"]
    # The two k-means rows' binaries have end-to-end tests of their own: their finished runs are planted here and
    # must be read, while the autoencoder and the three DEC-family rows really run.
    for planted in ("kmeans", "ae_kmeans"):
        wd = tmp_path / "runs" / planted / "digits-quick-seed0"
        wd.mkdir(parents=True)
        (wd / "results.json").write_text(json.dumps({"acc": 0.61, "nmi": 0.52, "ari": 0.43, "fit_seconds": 1.0}))
    first = run(["experiments.reproduce", "--table=dec_mnist", *common], tmp_path)
    assert "running kmeans" not in first.stdout and "running ae_kmeans" not in first.stdout
    assert "running autoencoder" in first.stdout and "running idec" in first.stdout
    table = (tmp_path / "results" / "dec_mnist_quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    names = [r.split(" | ")[0][2:] for r in rows]
    assert names == ["k-means (pixels)", "AE + k-means", "DEC w/o backprop", "DEC", "IDEC"]
    assert all(re.search(r"\| 0\.\d{4} \| 0\.\d{4} \| 0\.\d{4} \|", r) for r in rows), table
    with open(tmp_path / "results" / "dec_mnist_quick.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 5 and all(0 < float(r["acc"]) <= 1 for r in csv_rows)
    runs = tmp_path / "runs"
    idec = runs / "idec" / "digits-quick-seed0"
    assert json.loads((idec / "results.json").read_text())["mode"] == "idec"
    assert json.loads((idec / "config.json").read_text())["gamma"] == 0.1
    assert json.loads((runs / "dec" / "digits-quick-frozen-seed0" / "results.json").read_text())["mode"] == "frozen"
    # The K sweep reuses the seed's autoencoder and holds out 20% for G.
    out = run(["experiments.reproduce", "--table=dec_num_clusters", "--ks=3", *common], tmp_path)
    assert "running autoencoder" not in out.stdout and "running dec" in out.stdout
    k3 = json.loads((runs / "dec" / "digits-quick-k3-val-seed0" / "results.json").read_text())
    assert k3["n_clusters"] == 3 and k3["n_samples"] == 1438 and k3["generalizability"] > 0
    assert (tmp_path / "results" / "dec_num_clusters_quick.png").stat().st_size > 5_000
    # Finished runs are read, not run again.
    again = run(["experiments.reproduce", "--table=dec_mnist", *common], tmp_path)
    assert "running" not in again.stdout


def test_manifold_table_reads_the_runs_of_every_row(tmp_path):
    """The beyond-DEC table gathers its seven rows from their workdirs (finished runs are read, not rerun; the
    binaries themselves have their own end-to-end tests)."""
    runs = tmp_path / "runs"
    cells = {
        "dec/digits-quick": 0.71,
        "idec/digits-quick": 0.72,
        "tsne_dbscan/digits-quick": 0.73,
        "manifold_cluster/digits-quick": 0.74,
        "manifold_cluster/digits-quick-ae": 0.75,
        "pipeline/digits-quick-affine": 0.76,  # the top row: experiments.pipeline (stage 1: the augmented AE)
        "dec/digits-quick-affine-da": 0.77,
    }
    for seed in (0, 1):
        for tag in ("digits-quick", "digits-quick-affine"):
            ae = runs / "autoencoder" / f"{tag}-seed{seed}"
            ae.mkdir(parents=True)
            (ae / "results.json").write_text(json.dumps({"n_samples": 1797, "reconstruction_mse": 0.01}))
        for name, acc in cells.items():
            wd = runs / f"{name}-seed{seed}"
            wd.mkdir(parents=True)
            scores = {"acc": acc + 0.01 * seed, "nmi": 0.5, "ari": 0.4, "wall_seconds_this_invocation": 3.0}
            (wd / "results.json").write_text(json.dumps(scores))
    common = ["--quick", f"--root={runs}", f"--out={tmp_path / 'results'}"]
    out = run(["experiments.reproduce", "--table=manifold_mnist", *common], tmp_path)
    assert "running" not in out.stdout
    table = (tmp_path / "results" / "manifold_mnist_quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    got = {r.split(" | ")[0][2:]: r.split(" | ")[1] for r in rows}
    assert got == {
        "DEC": "0.7150 ± 0.0071",
        "IDEC": "0.7250 ± 0.0071",
        "t-SNE + HDBSCAN (pixels)": "0.7350 ± 0.0071",
        "neighbour embedding + GMM (pixels)": "0.7450 ± 0.0071",
        "AE + neighbour embedding + GMM": "0.7550 ± 0.0071",
        "AE (augmented) + neighbour embedding + GMM": "0.7650 ± 0.0071",
        "DEC-DA": "0.7750 ± 0.0071",
    }, table
    assert "Autoencoder pretraining, augmented (digits-quick-affine," in table
    assert rows[0].startswith("| AE (augmented) + neighbour embedding + GMM |")  # the pipeline's row on top
    assert "`python -m experiments.pipeline --flagfile=experiments/configs/best.flags --dataset=digits" in table
