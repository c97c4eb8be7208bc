"""Self-labelling after a clustering (research.deep.selftrain): the confident set, its mistakes mended, bad input."""

import jax
import numpy as np
import pytest

from research import metrics
from research.deep import pretrain, selftrain
from research.nets import build


def blobs(n_per=100, k=4, d=20, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + rng.normal(size=(n_per, d)) * 0.3 for c in rng.normal(size=(k, d)) * 4])
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32), np.repeat(np.arange(k), n_per)


@pytest.fixture(scope="module")
def setup():
    x, y = blobs()
    model = build("mlp:32-2", x.shape[1])
    params = pretrain.pretrain(jax.random.key(0), model, x, pretrain.PretrainConfig(epochs=20, batch_size=32))
    return model, params, x, y


def test_wrong_labels_are_left_out_of_the_confident_set_and_mended(setup):
    model, params, x, y = setup
    wrong = np.random.default_rng(1).choice(len(y), 12, replace=False)
    labels = y.copy()
    labels[wrong] = (y[wrong] + 1) % 4  # a clustering with 12 mistakes
    conf = selftrain.neighbour_agreement(np.asarray(pretrain.encode(model, params, x)), labels, k=6)
    kept = selftrain.confident(labels, conf, 0.99)
    assert not np.isin(wrong, kept).any() and len(kept) > 0.6 * len(y)
    cfg = selftrain.SelfTrainConfig(rounds=1, epochs=30, learning_rate=1e-2, batch_size=32)
    a = selftrain.fit(jax.random.key(3), model, params, x, labels, conf, cfg)
    b = selftrain.fit(jax.random.key(3), model, params, x, labels, conf, cfg)
    assert metrics.acc(y, labels) == 0.97 and metrics.acc(y, a.labels) == 1.0
    np.testing.assert_array_equal(a.proba, b.proba)  # same key, same bits
    assert a.history[0]["kept"] == len(kept) and a.proba.shape == (len(y), 4)


def test_an_interrupted_run_resumes_after_its_last_round_with_the_same_bits(setup, tmp_path):
    model, params, x, y = setup
    conf = np.ones(len(y))
    cfg = selftrain.SelfTrainConfig(rounds=2, epochs=2, batch_size=32)
    whole = selftrain.fit(jax.random.key(5), model, params, x, y, conf, cfg)

    def stop(r, labels):
        if r == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        selftrain.fit(jax.random.key(5), model, params, x, y, conf, cfg, on_round=stop, workdir=tmp_path)
    rounds = []
    resumed = selftrain.fit(
        jax.random.key(5), model, params, x, y, conf, cfg, on_round=lambda r, _: rounds.append(r), workdir=tmp_path
    )
    np.testing.assert_array_equal(whole.proba, resumed.proba)
    assert rounds == [1] and whole.history == resumed.history and resumed.history[0]["kept"] == len(y)


def test_every_cluster_keeps_a_row_and_bad_input_is_named(setup):
    model, params, x, y = setup
    conf = np.where(y == 3, 0.5, 1.0)  # no row of cluster 3 reaches the threshold
    kept = selftrain.confident(y, conf, 0.99)
    assert set(y[kept]) == {0, 1, 2, 3} and (y[kept] == 3).sum() == 1
    with pytest.raises(ValueError, match="noise rows"):
        selftrain.fit(jax.random.key(0), model, params, x, np.where(y == 0, -1, y), conf)
    with pytest.raises(ValueError, match="confidence must be"):
        selftrain.fit(jax.random.key(0), model, params, x, y, conf[:-1])
    with pytest.raises(ValueError, match="threshold"):
        selftrain.fit(jax.random.key(0), model, params, x, y, conf, selftrain.SelfTrainConfig(threshold=1.0))
