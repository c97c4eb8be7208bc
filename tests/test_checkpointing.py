"""Checkpointer, save_pytree/load_pytree: round trips to the bit, rotation, and the errors a user can act on."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research import checkpointing
from research.checkpointing import (
    Checkpointer,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    load_config,
    load_pytree,
    save_pytree,
)

CONFIG = {"arch": "mlp", "hidden": [500, 500, 2000], "n_clusters": 10, "workdir": "/tmp/a", "max_iter": 100}
IGNORE = {"workdir", "max_iter", "log_every"}


def make_state(seed: int = 0, hidden: int = 4) -> dict:
    key = jax.random.key(seed)
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "params": {
            "encoder": {"w": jax.random.normal(k1, (3, hidden), jnp.float32), "b": jnp.zeros(hidden, jnp.float32)},
            "decoder": {"w": jax.random.normal(k2, (hidden, 3), jnp.float32)},
        },
        "step": 7,
        "key": k3,
    }


def assert_same(a, b):
    """Leaf by leaf, bitwise; typed keys compared by their key data."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            assert y.dtype == x.dtype
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert np.asarray(x).dtype == np.asarray(y).dtype


@pytest.mark.parametrize("async_save", [True, False])
def test_round_trip_bitwise_with_typed_key(tmp_path, async_save):
    state = make_state()
    with Checkpointer(tmp_path / "ckpt", CONFIG, ignore_keys=IGNORE, async_save=async_save) as ckpt:
        assert ckpt.save(7, state)
    with Checkpointer(tmp_path / "ckpt", CONFIG, ignore_keys=IGNORE) as ckpt:
        restored = ckpt.restore(jax.eval_shape(lambda: state))
    assert_same(state, restored)
    assert int(restored["step"]) == 7
    # The restored key is a working typed key: same draws as the original.
    np.testing.assert_array_equal(jax.random.uniform(restored["key"], (5,)), jax.random.uniform(state["key"], (5,)))


def test_restore_accepts_concrete_template_and_raw_keys(tmp_path):
    state = make_state()
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        ckpt.save(1, state)
        assert_same(state, ckpt.restore(make_state(seed=5)))  # values of the template are ignored
        # A target that holds raw uint32 key data gets raw key data back, and the other way round.
        raw_target = dict(jax.eval_shape(lambda: state), key=jax.ShapeDtypeStruct((2,), jnp.uint32))
        raw = ckpt.restore(raw_target)
        np.testing.assert_array_equal(raw["key"], jax.random.key_data(state["key"]))
        ckpt.save(2, dict(state, key=jax.random.key_data(state["key"])))
        typed = ckpt.restore(jax.eval_shape(lambda: state), step=2)
        assert_same(state, typed)


def test_round_trip_train_state_with_optax(tmp_path):
    @flax.struct.dataclass
    class TrainState:
        params: dict
        opt_state: optax.OptState
        step: jax.Array
        key: jax.Array

    def init(key):
        params = {"w": jax.random.normal(key, (4, 2)), "b": jnp.zeros(2)}
        return TrainState(params, optax.adam(1e-3).init(params), jnp.asarray(0, jnp.int32), jax.random.key(1))

    state = init(jax.random.key(0))
    state = state.replace(step=state.step + 3, opt_state=jax.tree.map(lambda x: x + 1, state.opt_state))
    with Checkpointer(tmp_path, CONFIG, async_save=False) as ckpt:
        ckpt.save(3, state)
        restored = ckpt.restore(jax.eval_shape(init, jax.random.key(0)))
    assert isinstance(restored, TrainState)
    assert_same(state, restored)


def test_latest_step_and_all_steps(tmp_path):
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.all_steps() == []
        for step in (0, 10, 20):
            ckpt.save(step, make_state())
        assert ckpt.latest_step() == 20
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        assert ckpt.latest_step() == 20
        assert ckpt.all_steps() == [0, 10, 20]


def test_max_to_keep_keeps_the_last_n(tmp_path):
    with Checkpointer(tmp_path / "a", CONFIG, max_to_keep=3) as ckpt:
        for step in range(6):
            ckpt.save(step, make_state(seed=step))
    assert Checkpointer(tmp_path / "a", CONFIG).all_steps() == [3, 4, 5]
    with Checkpointer(tmp_path / "b", CONFIG, max_to_keep=2, keep_period=2) as ckpt:
        for step in range(6):
            ckpt.save(step, make_state(seed=step))
        ckpt.wait()
        assert ckpt.all_steps() == [0, 2, 4, 5]


def test_interval_and_forced_final_step_is_kept(tmp_path):
    with Checkpointer(tmp_path, CONFIG, max_to_keep=2, save_interval_steps=4) as ckpt:
        saved = [step for step in range(1, 11) if ckpt.save(step, make_state(seed=step))]
        assert saved == [4, 8]
        assert ckpt.save(10, make_state(seed=10), force=True)
        ckpt.wait()
        assert ckpt.all_steps() == [8, 10]
        assert_same(make_state(seed=10), ckpt.restore(jax.eval_shape(make_state)))


def test_save_never_overwrites_an_existing_step(tmp_path):
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        assert ckpt.save(5, make_state(seed=1))
        assert not ckpt.save(5, make_state(seed=2), force=True)
        assert not ckpt.save(3, make_state(seed=3), force=True)
        assert ckpt.all_steps() == [5]
        assert_same(make_state(seed=1), ckpt.restore(jax.eval_shape(make_state)))
        with pytest.raises(ValueError, match="step"):
            ckpt.save(-1, make_state())


def test_config_mismatch_raises_and_lists_the_keys(tmp_path):
    with Checkpointer(tmp_path, CONFIG, ignore_keys=IGNORE) as ckpt:
        ckpt.save(1, make_state())
    other = dict(CONFIG, n_clusters=20, arch="conv", workdir="/tmp/b", extra=True)
    with Checkpointer(tmp_path, other, ignore_keys=IGNORE) as ckpt:
        with pytest.raises(CheckpointMismatchError) as err:
            ckpt.restore(jax.eval_shape(make_state))
        msg = str(err.value)
        assert isinstance(err.value, ValueError)
        assert str(tmp_path) in msg and "--workdir" in msg and "delete" in msg
        assert "n_clusters: stored 10, current 20" in msg
        assert "arch: stored 'mlp', current 'conv'" in msg
        assert "extra: stored <missing>, current True" in msg
        assert "workdir:" not in msg  # ignored keys are not listed as differences
        # Saving into the directory is refused too, and nothing there is touched.
        with pytest.raises(CheckpointMismatchError):
            ckpt.save(2, make_state())
    assert Checkpointer(tmp_path, CONFIG).all_steps() == [1]


def test_ignore_keys_are_not_compared(tmp_path):
    with Checkpointer(tmp_path, CONFIG, ignore_keys=IGNORE) as ckpt:
        ckpt.save(1, make_state())
    resumed = dict(CONFIG, workdir="/elsewhere", max_iter=1000, log_every=5)
    with Checkpointer(tmp_path, resumed, ignore_keys=IGNORE) as ckpt:
        assert_same(make_state(), ckpt.restore(jax.eval_shape(make_state)))
        assert ckpt.save(2, make_state())
        assert ckpt.stored_config(2) == checkpointing._normalize_config(resumed)
    assert load_config(tmp_path, step=1)["workdir"] == "/tmp/a"


@pytest.mark.parametrize(
    "target, what",
    [
        (lambda: make_state(hidden=5), "params/encoder/w: checkpoint has float32[3,4], target asks for float32[3,5]"),
        (
            lambda: jax.tree.map(
                lambda x: x.astype(jnp.float16) if getattr(x, "dtype", None) == jnp.float32 else x, make_state()
            ),
            "float16",
        ),
        (lambda: dict(make_state(), extra=jnp.zeros(2)), "extra: not in the checkpoint"),
        (lambda: {k: v for k, v in make_state().items() if k != "key"}, "key: in the checkpoint but not in the target"),
    ],
    ids=["shape", "dtype", "extra-leaf", "missing-leaf"],
)
def test_other_architecture_raises_checkpoint_error(tmp_path, target, what):
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        ckpt.save(4, make_state())
        with pytest.raises(CheckpointError) as err:
            ckpt.restore(jax.eval_shape(target))
    msg = str(err.value)
    assert what in msg
    assert str(tmp_path) in msg and "step 4" in msg


def _damage(step_dir, how):
    """Garbage-overwrites, truncates or deletes every file of the saved state that is not metadata."""
    touched = 0
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(root, name)
            if name.startswith("_") or name in ("commit_success.txt", "metadata", checkpointing.SUMS_FILE):
                continue
            size = os.path.getsize(path)
            if how == "garbage":
                with open(path, "wb") as f:
                    f.write((b"\x00garbage" * (size // 8 + 1))[:size])
            elif how == "truncate":
                with open(path, "r+b") as f:
                    f.truncate(size // 2)
            else:
                os.remove(path)
            touched += 1
    assert touched


# Orbax's restore leaves tensorstore callbacks behind when a read fails; they hit a closed asyncio loop later.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["garbage", "truncate", "delete"])
def test_corrupt_checkpoint_raises_checkpoint_error(tmp_path, how):
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        ckpt.save(3, make_state())
    legacy = tmp_path / "legacy"
    shutil.copytree(tmp_path / "3", legacy / "3")
    _damage(tmp_path / "3", how)
    with Checkpointer(tmp_path, CONFIG) as ckpt, pytest.raises(CheckpointError) as err:
        ckpt.restore(jax.eval_shape(make_state))
    assert f"{tmp_path / '3'} is damaged: state/" in str(err.value) and "--workdir" in str(err.value)
    # Without its manifest (a checkpoint written before them) Orbax's own reading still refuses it.
    (legacy / "3" / checkpointing.SUMS_FILE).unlink()
    _damage(legacy / "3", how)
    with Checkpointer(legacy, CONFIG) as ckpt, pytest.raises(CheckpointError) as err:
        ckpt.restore(jax.eval_shape(make_state))
    assert str(legacy) in str(err.value) and "step 3" in str(err.value)
    assert err.value.__cause__ is not None  # the Orbax / tensorstore error, chained


def test_every_step_lists_its_files_in_sha256sum_format(tmp_path):
    save_pytree(tmp_path / "model", {"centroids": np.ones((3, 2), np.float32)})
    with Checkpointer(tmp_path / "train", CONFIG, async_save=True) as ckpt:
        ckpt.save(5, make_state())
    for step_dir in (tmp_path / "model" / "0", tmp_path / "train" / "5"):
        lines = (step_dir / checkpointing.SUMS_FILE).read_text().splitlines()
        listed = {line[66:]: line[:64] for line in lines}
        assert all(line[64:66] == "  " for line in lines)
        on_disk = {
            p.relative_to(step_dir).as_posix()
            for p in step_dir.rglob("*")
            if p.is_file() and p.parent != step_dir  # the step's own top-level files are Orbax's commit records
        }
        assert set(listed) == on_disk and any(name.startswith("state/") for name in listed)
        for name, digest in listed.items():
            assert hashlib.sha256((step_dir / name).read_bytes()).hexdigest() == digest


def _flip_bytes(path, rng, count=8):
    """Overwrites `count` random bytes of a file with other values."""
    data = bytearray(path.read_bytes())
    for at in rng.choice(len(data), size=min(count, len(data)), replace=False):
        data[at] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["train_step", "model"])
def test_flipped_bytes_are_refused_every_time(tmp_path, kind):
    pristine = tmp_path / "pristine"
    if kind == "model":
        save_pytree(pristine, make_state(), config=CONFIG)
        step_dir = pristine / "0"
    else:
        with Checkpointer(pristine, CONFIG) as ckpt:
            ckpt.save(7, make_state())
        step_dir = pristine / "7"
    listed = [line[66:] for line in (step_dir / checkpointing.SUMS_FILE).read_text().splitlines()]
    largest = max(listed, key=lambda name: (step_dir / name).stat().st_size)
    rng = np.random.default_rng(0)
    # The probe's case (8 bytes of the largest file), then any listed file or the manifest itself.
    targets = [largest, checkpointing.SUMS_FILE, *rng.choice(listed + [checkpointing.SUMS_FILE], size=10)]
    for trial, name in enumerate(targets):
        copy = tmp_path / f"trial{trial}"
        shutil.copytree(pristine, copy)
        _flip_bytes(copy / step_dir.name / name, rng, count=int(rng.choice([1, 8])))
        with pytest.raises(CheckpointError, match="is damaged") as err:
            load_pytree(copy, jax.eval_shape(make_state)) if kind == "model" else Checkpointer(copy, CONFIG).restore(
                jax.eval_shape(make_state)
            )
        assert str(copy / step_dir.name) in str(err.value), name
    assert_same(make_state(), load_pytree(pristine, jax.eval_shape(make_state)))


def test_resume_falls_back_to_the_newest_intact_step(tmp_path, caplog):
    with Checkpointer(tmp_path, CONFIG, max_to_keep=None) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(step, make_state(seed=step))
    _flip_bytes(tmp_path / "3" / "config" / "metadata", np.random.default_rng(0), count=1)
    caplog.set_level(logging.WARNING)
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        assert_same(make_state(seed=2), ckpt.restore(jax.eval_shape(make_state)))
        with pytest.raises(CheckpointError, match=f"{tmp_path / '3'} is damaged: config/metadata"):
            ckpt.restore(jax.eval_shape(make_state), step=3)
        assert not ckpt.save(3, make_state())  # the damaged step is never overwritten...
    assert (tmp_path / "3").is_dir()  # ...nor deleted
    assert any(f"{tmp_path / '3'} is damaged" in r.getMessage() and "step 2" in r.getMessage() for r in caplog.records)
    for step in (1, 2):
        _flip_bytes(tmp_path / str(step) / "state" / "_METADATA", np.random.default_rng(step), count=1)
    with Checkpointer(tmp_path, CONFIG) as ckpt, pytest.raises(CheckpointError, match="every checkpoint in"):
        ckpt.restore(jax.eval_shape(make_state))


def test_checkpoint_without_manifest_loads_with_a_warning(tmp_path, caplog):
    save_pytree(tmp_path, {"c": np.arange(3.0)})
    (tmp_path / "0" / checkpointing.SUMS_FILE).unlink()  # as written before manifests
    caplog.set_level(logging.WARNING)
    np.testing.assert_array_equal(load_pytree(tmp_path)["c"], np.arange(3.0))
    assert any("used unverified" in r.getMessage() for r in caplog.records)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax: "Event loop is closed"
@pytest.mark.parametrize("async_save", [True, False])
def test_disk_full_is_one_clear_error_and_orbax_stops(tmp_path, monkeypatch, async_save):
    from etils import epath

    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(epath.Path, "write_text", disk_full)
    monkeypatch.setattr(epath.Path, "write_bytes", disk_full)
    ckpt = Checkpointer(tmp_path, CONFIG, async_save=async_save)
    with pytest.raises(CheckpointError) as err:
        ckpt.save(1, make_state())
        ckpt.close()
    assert str(err.value) == (
        f"no space left on device while writing a checkpoint to {tmp_path}; free space or choose another --workdir."
    )
    ckpt.close()  # harmless after the failure
    assert not [t for t in threading.enumerate() if type(t).__module__.startswith("orbax")]
    assert not (tmp_path / "1").exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax: "Event loop is closed"
def test_corrupt_metadata_raises_checkpoint_error(tmp_path):
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        ckpt.save(3, make_state())
    (tmp_path / "3" / "state" / "_METADATA").write_bytes(b"not json")
    with Checkpointer(tmp_path, CONFIG) as ckpt, pytest.raises(CheckpointError, match="3 is damaged: state/_METADATA"):
        ckpt.restore(jax.eval_shape(make_state))
    (tmp_path / "3" / checkpointing.SUMS_FILE).unlink()  # unchecked: Orbax's reading still refuses it
    with Checkpointer(tmp_path, CONFIG) as ckpt, pytest.raises(CheckpointError, match="step 3") as err:
        ckpt.restore(jax.eval_shape(make_state))
    assert err.value.__cause__ is not None


def test_save_pytree_refuses_to_overwrite(tmp_path):
    d = tmp_path / "ckpt"
    first = {"centroids": np.arange(6, dtype=np.float32).reshape(3, 2)}
    save_pytree(d, first, config={"n_clusters": 3})
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_pytree(d, {"centroids": np.zeros((3, 2), np.float32)})
    np.testing.assert_array_equal(load_pytree(d)["centroids"], first["centroids"])
    second = {"centroids": np.ones((4, 2), np.float32)}
    save_pytree(d, second, config={"n_clusters": 4}, overwrite=True)
    np.testing.assert_array_equal(load_pytree(d)["centroids"], second["centroids"])
    assert load_config(d) == {"n_clusters": 4}
    assert Checkpointer(d).all_steps() == [0]


def test_load_pytree_without_abstract_gives_numpy(tmp_path):
    fitted = {
        "centroids": np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32),
        "counts": np.arange(5, dtype=np.int32),
        "inertia": 12.5,
        "jax_leaf": jnp.arange(4, dtype=jnp.float32),
    }
    save_pytree(tmp_path, fitted)
    loaded = load_pytree(tmp_path)
    for name in ("centroids", "counts", "jax_leaf"):
        assert isinstance(loaded[name], np.ndarray)
        np.testing.assert_array_equal(loaded[name], np.asarray(fitted[name]))
        assert loaded[name].dtype == np.asarray(fitted[name]).dtype
    assert loaded["inertia"] == 12.5
    with_abstract = load_pytree(tmp_path, jax.eval_shape(lambda: fitted))
    np.testing.assert_array_equal(with_abstract["centroids"], fitted["centroids"])


def test_restore_without_checkpoint_is_a_clear_error(tmp_path):
    with Checkpointer(tmp_path / "empty", CONFIG) as ckpt:
        with pytest.raises(CheckpointNotFoundError, match="no checkpoint in .*empty"):
            ckpt.restore(jax.eval_shape(make_state))
        ckpt.save(2, make_state())
        with pytest.raises(CheckpointNotFoundError, match=r"step 1 .* \[2\]"):
            ckpt.restore(jax.eval_shape(make_state), step=1)
    missing = tmp_path / "never-written"
    with pytest.raises(FileNotFoundError, match="run `kmeans` first"):
        load_pytree(missing, hint="run `kmeans` first")
    assert not missing.exists()  # loading does not create directories


def test_orbax_info_logging_is_silenced(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with Checkpointer(tmp_path, CONFIG) as ckpt:
        ckpt.save(1, make_state())
        ckpt.restore(jax.eval_shape(make_state))
    orbax_info = [r for r in caplog.records if "orbax" in r.pathname and r.levelno < logging.WARNING]
    assert orbax_info == []
    logging.getLogger("absl").info("still shown")
    assert any(r.getMessage() == "still shown" for r in caplog.records)


def test_a_failed_saves_leftover_thread_errors_stay_quiet_and_others_still_show():
    # After a failed save, TensorStore's threads finish the abandoned writes on Orbax's closed asyncio loop: each
    # raises "Event loop is closed" into sys.unraisablehook, and asyncio logs each failed write task. On a full
    # disk (checked by hand on a 600 kB tmpfs) that was ~300 lines around the one error the binary prints.
    import sys
    import types

    seen = []
    hook = checkpointing._unraisable_hook(seen.append)
    closed = types.SimpleNamespace(exc_value=RuntimeError("Event loop is closed"))
    other = types.SimpleNamespace(exc_value=RuntimeError("something else"))
    hook(closed)
    hook(other)
    assert seen == [other]
    assert getattr(sys.unraisablehook, "drops_closed_loop_errors", False)  # installed on import

    def record(exc):
        return logging.LogRecord(
            "asyncio",
            logging.ERROR,
            "base_events.py",
            1,
            "Task exception was never retrieved",
            None,
            (type(exc), exc, None),
        )

    drop = checkpointing._DropDiskFullTasks()
    assert not drop.filter(record(OSError(errno.ENOSPC, "No space left on device")))
    assert drop.filter(record(ValueError("a real bug")))
