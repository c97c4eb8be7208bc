"""A run's records across kills: metrics.jsonl rewound on every start, files written with the user's umask."""

import os

import jax
import numpy as np
import pytest

from research import nets, runlog
from research.deep import pretrain, train


def steps_of(log, stage):
    return [r["step"] for r in log.rows() if r.get("stage") == stage]


def test_log_is_rewound_when_killed_before_the_first_checkpoint(tmp_path, monkeypatch):
    x = np.random.default_rng(0).random((64, 8)).astype(np.float32)
    model = nets.build("mlp:8-2", 8)
    # 4 steps an epoch, 20 in all: rows every 2 steps, the only checkpoint at the end.
    cfg = pretrain.PretrainConfig(epochs=5, batch_size=16, log_every=2, checkpoint_every=100)
    calls, advance = [], train.advance

    def killed_in_the_third_chunk(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return advance(*args, **kw)

    monkeypatch.setattr(train, "advance", killed_in_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(jax.random.key(0), model, x, cfg, workdir=tmp_path)
    monkeypatch.setattr(train, "advance", advance)
    log = runlog.MetricsLog(tmp_path)
    assert steps_of(log, "pretrain") == [2, 4] and not (tmp_path / "ckpt" / "pretrain" / "20").exists()
    pretrain.pretrain(jax.random.key(0), model, x, cfg, workdir=tmp_path)
    assert steps_of(log, "pretrain") == list(range(2, 21, 2))


def test_a_row_cut_short_by_a_kill_is_dropped_and_repaired(tmp_path):
    log = runlog.MetricsLog(tmp_path)
    log.log(1, stage="a", loss=0.5)
    with open(log.path, "a") as f:
        f.write('{"step": 2, "stage": "a", "lo')  # the process died mid-write
    assert [r["step"] for r in log.rows()] == [1]
    log.rewind(1, stage="a")
    log.log(2, stage="a", loss=0.25)
    assert [r["step"] for r in log.rows()] == [1, 2]


def test_run_records_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        runlog.write_json(tmp_path / "config.json", {"a": 1})
        np.save(tmp_path / "labels.npy", np.zeros(3))
        log = runlog.MetricsLog(tmp_path)
        log.log(1, loss=1.0)
        log.rewind(0)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"config.json": 0o640, "labels.npy": 0o640, "metrics.jsonl": 0o640}
