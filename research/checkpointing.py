"""Checkpoints through Orbax: the only module in jaxcluster that imports orbax.

    ckpt = Checkpointer(workdir / "ckpt", config=flags, ignore_keys={"workdir", "max_iter", "log_every"})
    if ckpt.latest_step() is not None:
        state = ckpt.restore(jax.eval_shape(init_state, key))   # abstract target: no memory, no compute
    ...  ckpt.save(step, state)                                  # every step % save_interval_steps == 0
    ckpt.save(last_step, state, force=True); ckpt.close()       # the final step, whatever the interval
    save_pytree(workdir / "ckpt", {"centroids": c_kd}); load_pytree(workdir / "ckpt")   # a one-off fitted model

Each step is `<directory>/<step>/` with two items, `state` (StandardSave) and `config` (the run's flags), so a
resumed run refuses a directory written with another configuration (`CheckpointMismatchError`). Typed PRNG
keys are saved natively and converted to or from raw keys on restore. Every step also holds `SHA256SUMS`, the
SHA-256 of each of its files in `sha256sum` format, written before Orbax commits the step; restoring checks it,
refuses a damaged step (`CheckpointError`) and, when no step is named, falls back to the newest intact one.
Design: docs/design/checkpointing.md.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import pathlib
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Self

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from research.checks import check_positive_int

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "Checkpointer",
    "load_config",
    "load_pytree",
    "save_pytree",
]

_STATE = "state"
_CONFIG = "config"
_MISSING = "<missing>"
# How many differing leaves or keys an error message lists before "... and N more".
_MAX_LISTED = 12
# The checksum manifest of a step, in `sha256sum` format ("<64 hex>  <path>" per line): `sha256sum -c` reads it.
SUMS_FILE = "SHA256SUMS"
# Orbax rewrites its step metadata (the commit time) after the manifest is written, so that file is not listed.
_UNLISTED = frozenset({SUMS_FILE, "_CHECKPOINT_METADATA"})
# Where Orbax writes a step before renaming it to `<step>` (orbax.checkpoint's TMP_DIR_SUFFIX).
_ORBAX_TMP_SUFFIX = ".orbax-checkpoint-tmp"
_SUMS_LINE = re.compile(r"([0-9a-f]{64})  ([^\n]+)")


class CheckpointError(ValueError):
    """A checkpoint cannot be restored into the requested target: another architecture, or a damaged file."""


class CheckpointMismatchError(ValueError):
    """The directory holds checkpoints written with a different configuration than the current run's."""


class CheckpointNotFoundError(FileNotFoundError):
    """There is no checkpoint where one was asked for (missing or empty directory, unknown step)."""


# --- logging -----------------------------------------------------------------------------------------------------

_ORBAX_DIR = os.path.dirname(os.path.abspath(ocp.__file__))


class _DropOrbaxInfo(logging.Filter):
    """Drops Orbax's INFO/DEBUG records (about fifty lines per save), and its tracebacks of a full disk (one per
    thread of the save, reported instead as one CheckpointError); its other warnings and errors still show.

    Orbax logs through absl, i.e. the single "absl" logger, so the records are told apart by the file that
    emitted them. Nothing else that logs through absl is affected.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.pathname.startswith(_ORBAX_DIR):
            return True
        if record.levelno >= logging.ERROR and record.exc_info and _is_disk_full(record.exc_info[1]):
            return False  # Checkpointer raises it as one CheckpointError; Orbax logs it once per thread.
        return record.levelno >= logging.WARNING


class _DropDiskFullTasks(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" records of Orbax's write tasks that a full disk
    failed: Checkpointer reports the full disk once, as a CheckpointError."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_disk_full(record.exc_info[1]))


def _unraisable_hook(previous):
    """sys.unraisablehook without the "Event loop is closed" errors of TensorStore's threads. When a save fails,
    they still complete its abandoned writes on Orbax's closed asyncio loop, each such error reaching the hook,
    whose default prints a bare traceback (46 of them on a full disk); they are logged at debug level instead.
    Every other unraisable exception goes to `previous`."""

    def hook(unraisable):
        if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
            absl_logging.debug("an abandoned checkpoint write finished on a closed loop")
            return
        previous(unraisable)

    hook.drops_closed_loop_errors = True
    return hook


def _quiet_orbax() -> None:
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
        absl_logger.addFilter(_DropOrbaxInfo())
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _DropDiskFullTasks) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(_DropDiskFullTasks())
    if not getattr(sys.unraisablehook, "drops_closed_loop_errors", False):
        sys.unraisablehook = _unraisable_hook(sys.unraisablehook)


_quiet_orbax()


# --- the checkpointer --------------------------------------------------------------------------------------------


class Checkpointer:
    """Saves and restores a pytree every N steps with Orbax, guarded by the run's config.

    Args:
      directory: where the step folders go (created if missing), e.g. `<workdir>/ckpt`. Relative paths are
        taken from the current directory.
      config: the run's flags / architecture, JSON-serializable (values that are not, like paths, are stored
        as strings). Stored with every checkpoint. Before the first save or restore, every checkpoint already
        in `directory` is compared with it and `CheckpointMismatchError` is raised on any difference outside
        `ignore_keys`. `None` stores `{}` and skips the comparison (for reading someone else's checkpoints).
      ignore_keys: config keys that may differ between a run and its resumption, e.g.
        `{"workdir", "max_iter", "log_every"}`.
      max_to_keep: how many of the most recent checkpoints to keep (Orbax `LatestN`); `None` keeps all. The
        newest one is always kept, so the final step of a run, saved with `save(..., force=True)`, survives.
      keep_period: also keep, forever, every checkpoint whose step is a multiple of this (Orbax `EveryNSteps`).
      save_interval_steps: `save` writes only when `step % save_interval_steps == 0` (or `force=True`).
      async_save: write in a background thread (Orbax async checkpointing): `save` returns once the arrays
        are copied to host memory, so the train step can donate its state. Call `wait()` or `close()` (or use
        the Checkpointer as a context manager) before reading the files or exiting.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        config: Mapping[str, Any] | None = None,
        *,
        ignore_keys: Iterable[str] = (),
        max_to_keep: int | None = 3,
        keep_period: int | None = None,
        save_interval_steps: int = 1,
        async_save: bool = True,
    ):
        self._directory = _abs_path(directory)
        self._config = _normalize_config(config)
        self._check_against = None if config is None else self._config
        self._ignore_keys = frozenset(ignore_keys)
        if max_to_keep is not None:
            max_to_keep = check_positive_int(max_to_keep, "max_to_keep")
        preserve = [ocp.checkpoint_managers.LatestN(n=max_to_keep)]
        if keep_period is not None:
            preserve.append(ocp.checkpoint_managers.EveryNSteps(check_positive_int(keep_period, "keep_period")))
        save_when = ocp.checkpoint_managers.AnySavePolicy(
            [
                ocp.checkpoint_managers.FixedIntervalPolicy(
                    check_positive_int(save_interval_steps, "save_interval_steps")
                ),
                # Multi-host TPU jobs: save when the scheduler announces a preemption.
                ocp.checkpoint_managers.PreemptionCheckpointingPolicy(),
            ]
        )
        self._async = bool(async_save)
        # Manifests are written and checked on local disks only, written by process 0 (jax.distributed).
        self._local = "://" not in self._directory
        writes_sums = self._local and jax.process_index() == 0
        self._writing: int | None = None  # the step Orbax is saving now, for `_write_sums`
        self._verdicts: dict[int, str | None] = {}  # step -> its damage (None: intact), checked once
        # Saves always go through Orbax's async checkpointer: its post-finalization callback runs after every
        # file of a step is written and before the rename that commits it, so the manifest commits with it.
        # A synchronous Checkpointer waits for each save to finish.
        options = ocp.CheckpointManagerOptions(
            create=True,
            enable_async_checkpointing=True,
            async_options=ocp.AsyncOptions(post_finalization_callback=self._write_sums if writes_sums else None),
            save_decision_policy=save_when,
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(preserve),
        )
        try:
            self._manager = ocp.CheckpointManager(
                self._directory,
                options=options,
                # Declared up front so that a fresh manager can read metadata before any save or restore.
                item_handlers={_STATE: ocp.StandardCheckpointHandler(), _CONFIG: ocp.JsonCheckpointHandler()},
            )
        except Exception as e:
            raise CheckpointError(f"cannot open checkpoint directory {self._directory}: {e}") from e
        self._config_checked = False
        self._closed = False

    # --- inspection ---

    @property
    def directory(self) -> str:
        """The absolute checkpoint directory."""
        return self._directory

    @property
    def config(self) -> dict:
        """The config stored with each checkpoint (normalized through JSON)."""
        return json.loads(json.dumps(self._config))

    def latest_step(self) -> int | None:
        """The newest step on disk (including saves still being written asynchronously), or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """The steps on disk, ascending."""
        return sorted(int(s) for s in self._manager.all_steps())

    def stored_config(self, step: int | None = None) -> dict:
        """The config stored with `step` (default: the latest)."""
        step = self._resolve_step(step)
        self.verify(step)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**{_CONFIG: ocp.args.JsonRestore()}))
            stored = restored[_CONFIG]
        except Exception as e:
            raise CheckpointError(
                f"cannot read the config stored with step {step} in {self._directory}: {_brief(e)}. "
                "The step is damaged or was not written by jaxcluster; start again in another --workdir."
            ) from e
        if not isinstance(stored, dict):
            raise CheckpointError(
                f"the config stored with step {step} in {self._directory} is {type(stored).__name__}, not a dict."
            )
        return stored

    def check_config(self) -> None:
        """Raises CheckpointMismatchError if a checkpoint in the directory was written with a different config.

        Runs by itself before the first `save` and `restore`; call it to fail before a long computation.
        """
        if self._config_checked:
            return
        if self._check_against is not None:
            for step in self.all_steps():
                if self._damage(step):
                    continue  # not resumed from (see restore), so it cannot mix two runs
                diffs = _config_diffs(self.stored_config(step), self._check_against, self._ignore_keys)
                if diffs:
                    raise CheckpointMismatchError(self._mismatch_message(step, diffs))
        self._config_checked = True

    # --- save / restore ---

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves `state` as checkpoint `step` if the save interval says so (or `force`); returns whether it did.

        Save the last step of a run with `force=True`: it is written whatever `save_interval_steps` says, and
        as the newest checkpoint it is kept by the `max_to_keep` rotation.
        `state` is a pytree of jax/numpy arrays and Python scalars (a dict, a `flax.struct.dataclass`, optax
        states, typed or raw PRNG keys). A step at or below `latest_step()` is never written (Orbax's rule): the
        checkpoint already there stays as it is and False is returned, so re-saving the final step of a run
        that was resumed after it finished is harmless. Then the oldest checkpoints beyond `max_to_keep` are
        deleted.
        """
        step = _as_step(step)
        self.check_config()
        latest = self.latest_step()
        if latest is not None and step <= latest:
            return False
        if not (force or self._manager.should_save(step)):
            return False
        # The previous save must be committed before `_writing` names the next one (Orbax would wait anyway).
        self.wait()
        if jax.process_count() > 1:  # a run of several processes (jax.distributed): every process saves together
            state = jax.tree.map(_collective_leaf, state)
        args = ocp.args.Composite(**{_STATE: ocp.args.StandardSave(state), _CONFIG: ocp.args.JsonSave(self._config)})
        self._writing = step
        try:
            saved = bool(self._manager.save(step, args=args, force=force))
        except Exception as e:
            raise self._save_failed(e, f"step {step}") from e
        if not self._async:
            self.wait()
        return saved

    def restore(self, abstract_state: Any = None, step: int | None = None) -> Any:
        """Restores checkpoint `step` (default: the latest) into the structure of `abstract_state`.

        Args:
          abstract_state: the target, best a pytree of `jax.ShapeDtypeStruct` from
            `jax.eval_shape(init_fn, ...)`: no memory is allocated and nothing is computed for it. Leaves with
            a `sharding` are restored with it; the others on the device they were saved from, or on the
            default device when that device is gone (e.g. saved on GPU, restored on CPU). A concrete pytree
            is accepted as a template (its values are ignored): jax arrays become `ShapeDtypeStruct`s with
            their sharding, numpy arrays and Python scalars come back as the same types. `None` restores the
            saved structure (dicts and lists) as numpy arrays; typed PRNG keys then come back as their raw
            uint32 key data.
          step: which checkpoint; default the latest.

        Returns:
          The restored state, of the structure and types of `abstract_state`.

        Raises:
          CheckpointNotFoundError: no checkpoint in the directory, or no such step.
          CheckpointMismatchError: the directory holds checkpoints of another config (see `check_config`).
          CheckpointError: the checkpoint's structure, shapes or dtypes differ from `abstract_state`, or its
            files are damaged (with no `step` given: every step is damaged).

        Each step's files are checked against its SHA256SUMS first. With no `step` given, a damaged newest step is
        skipped with a warning naming it (it stays on disk) and the newest intact one is restored: read the
        restored state's step counter to know which.
        """
        self.wait()
        if step is None:
            step = self._newest_intact_step()
        else:
            self.verify(self._resolve_step(step))
        self.check_config()
        stored = self._stored_tree(step)
        if abstract_state is None:
            target = jax.tree.map(_numpy_target, stored)
        else:
            target = _restore_target(abstract_state, stored)
            problems = _tree_diffs(stored, target)
            if problems:
                raise CheckpointError(self._wrong_target_message(step, problems))
        restore_args = ocp.args.StandardRestore(
            target, fallback_sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0])
        )
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**{_STATE: restore_args}))[_STATE]
        except Exception as e:
            raise CheckpointError(
                f"cannot restore step {step} from {self._directory}: {_brief(e)}\n"
                f"The checkpoint is damaged (a file under {self._step_dir(step)} is missing, truncated or "
                "overwritten) or does not fit the target: start again in another --workdir. "
                "(In Python: Checkpointer.restore(step=...) reads an older step; all_steps() lists them.)"
            ) from e
        if abstract_state is not None:
            restored = _match_key_types(restored, target)
        return restored

    # --- lifetime ---

    def wait(self) -> None:
        """Blocks until asynchronous saves (and the deletions after them) are on disk."""
        if self._closed:
            return
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise self._save_failed(e, "a checkpoint") from e

    def close(self) -> None:
        """Waits for pending saves and releases Orbax's threads. Idempotent."""
        if self._closed:
            return
        try:
            self.wait()
        finally:
            if not self._closed:
                self._manager.close()
                self._closed = True

    # --- integrity ---

    def verify(self, step: int) -> None:
        """Raises CheckpointError if a file of checkpoint `step` is missing or differs from its SHA256SUMS.

        A step without SHA256SUMS (written before jaxcluster checked its checkpoints) passes, with a warning.
        """
        damage = self._damage(_as_step(step))
        if damage:
            raise CheckpointError(
                f"the checkpoint {self._step_dir(step)} is damaged: {damage}. It cannot be used: run the experiment "
                "again in another --workdir (or with --overwrite where the binary has it)."
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpointer({self._directory!r}, steps={self.all_steps()})"

    # --- helpers ---

    def _step_dir(self, step: int) -> str:
        return os.path.join(self._directory, str(step))

    def _write_sums(self) -> None:
        # Orbax's post-finalization callback: in its save thread, every file written, the step not yet renamed.
        tmp = self._step_dir(self._writing) + _ORBAX_TMP_SUFFIX
        if not os.path.isdir(tmp):
            raise CheckpointError(f"cannot write {SUMS_FILE}: Orbax's temporary folder {tmp} is not there.")
        write_sums(tmp)

    def _damage(self, step: int) -> str | None:
        """What is wrong with the files of `step` (None: nothing, or no manifest to tell), checked once."""
        if not self._local:
            return None
        if step not in self._verdicts:
            damage = check_sums(self._step_dir(step))
            if damage == _NO_SUMS:
                absl_logging.warning(
                    "%s has no %s (written before jaxcluster checksummed its checkpoints): used unverified.",
                    self._step_dir(step),
                    SUMS_FILE,
                )
                damage = None
            self._verdicts[step] = damage
        return self._verdicts[step]

    def _newest_intact_step(self) -> int:
        steps = self.all_steps()
        if not steps:
            raise CheckpointNotFoundError(_no_checkpoint_message(self._directory))
        intact = [step for step in steps if not self._damage(step)]
        if not intact and len(steps) == 1:
            self.verify(steps[0])
        if not intact:
            raise CheckpointError(
                f"every checkpoint in {self._directory} is damaged (step {steps[-1]}: {self._damage(steps[-1])}), "
                "so there is nothing to resume from: start again in another --workdir (the damaged steps are left "
                "as they are)."
            )
        for step in steps:
            if step > intact[-1]:
                absl_logging.warning(
                    "the checkpoint %s is damaged (%s); it is left as it is, and step %d, the newest intact one, "
                    "is restored instead.",
                    self._step_dir(step),
                    self._damage(step),
                    intact[-1],
                )
        return intact[-1]

    def _save_failed(self, e: BaseException, what: str) -> CheckpointError:
        """The CheckpointError for a failed save, after Orbax's threads of it have ended (for a clean exit)."""
        self._abandon()
        if _is_disk_full(e):
            return CheckpointError(
                f"no space left on device while writing {what} to {self._directory}; free space or choose "
                "another --workdir."
            )
        return CheckpointError(f"saving {what} to {self._directory} failed: {_brief(e)}")

    def _abandon(self) -> None:
        # Each of Orbax's save threads raises its error once when joined; the manager closes when none is left.
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and type(thread).__module__.startswith("orbax"):
                with contextlib.suppress(Exception):  # its own error: part of the one being reported
                    thread.join(timeout=60)
        for _ in range(8):
            with contextlib.suppress(Exception):
                self._manager.close()
                break
        self._closed = True

    def _delete_all_steps(self) -> None:
        # Deliberately not public: only save_pytree(overwrite=True) deletes checkpoints outside the rotation.
        for step in self.all_steps():
            self._manager.delete(step)

    def _resolve_step(self, step: int | None) -> int:
        steps = self.all_steps()
        if not steps:
            raise CheckpointNotFoundError(_no_checkpoint_message(self._directory))
        if step is None:
            return steps[-1]
        step = _as_step(step)
        if step not in steps:
            raise CheckpointNotFoundError(f"no checkpoint for step {step} in {self._directory}; it holds {steps}.")
        return step

    def _stored_tree(self, step: int) -> Any:
        """The saved state's metadata tree: nested dicts/lists of ArrayMetadata / ScalarMetadata."""
        try:
            meta = self._manager.item_metadata(step)[_STATE]
        except Exception as e:
            raise CheckpointError(
                f"cannot read the metadata of step {step} in {self._directory}: {_brief(e)}\n"
                f"The checkpoint is damaged (a file under {self._step_dir(step)} is missing or overwritten). "
                "Restore an older step (all_steps() lists them), or start again in another --workdir."
            ) from e
        if meta is None:
            raise CheckpointError(
                f"step {step} in {self._directory} has no '{_STATE}' item; it was not written by "
                "research.checkpointing or is damaged."
            )
        return getattr(meta, "tree", meta)

    def _mismatch_message(self, step: int, diffs: list[tuple[str, Any, Any]]) -> str:
        lines = [f"  {k}: stored {_show(a)}, current {_show(b)}" for k, a, b in diffs[:_MAX_LISTED]]
        if len(diffs) > _MAX_LISTED:
            lines.append(f"  ... and {len(diffs) - _MAX_LISTED} more")
        ignored = ", ".join(sorted(self._ignore_keys)) or "none"
        return (
            f"{self._directory} holds checkpoints of a run with a different configuration "
            f"(step {step} differs in {len(diffs)} key{'s' * (len(diffs) != 1)}):\n"
            + "\n".join(lines)
            + "\nResuming from it would mix two runs, and saving would rotate its checkpoints away. "
            f"Use another --workdir for this configuration, or delete {self._directory} yourself if that run "
            f"is no longer needed. (Keys not compared: {ignored}.)"
        )

    def _wrong_target_message(self, step: int, problems: list[str]) -> str:
        lines = [f"  {p}" for p in problems[:_MAX_LISTED]]
        if len(problems) > _MAX_LISTED:
            lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
        return (
            f"step {step} in {self._directory} does not fit the requested state "
            f"({len(problems)} difference{'s' * (len(problems) != 1)}):\n"
            + "\n".join(lines)
            + "\nIt was written by another model or architecture: use another --workdir for these settings, or the "
            "settings it was written with. (In Python: build the target with jax.eval_shape of the same init.)"
        )


# --- one-off fitted models -----------------------------------------------------------------------------------------


def _collective_leaf(a):
    """A leaf as Orbax saves it from several processes: global arrays as they are, an array on one process's
    own device as NumPy (the same values on every process; process 0 writes it)."""
    if isinstance(a, jax.Array) and a.is_fully_addressable and not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        return np.asarray(a)
    return a


def save_pytree(
    directory: str | os.PathLike, pytree: Any, config: Mapping[str, Any] | None = None, *, overwrite: bool = False
) -> str:
    """Saves a fitted model (e.g. `{"centroids": c_kd}`) as step 0 of a checkpoint directory; returns its path.

    Raises FileExistsError if `directory` already holds a checkpoint, unless `overwrite=True`, which deletes
    every checkpoint in it first (never anything else in the directory). The write itself is atomic (Orbax
    writes to a temporary folder and renames it), but with `overwrite=True` a crash between the deletion and
    the write leaves no checkpoint at all.
    """
    with Checkpointer(directory, config, max_to_keep=None, async_save=False) as ckpt:
        steps = ckpt.all_steps()
        if steps and not overwrite:
            raise FileExistsError(
                f"{ckpt.directory} already holds a checkpoint (steps {steps}); rerun with --overwrite to replace "
                "it, or choose another --workdir. (In Python: save_pytree(..., overwrite=True).)"
            )
        ckpt._delete_all_steps()
        ckpt.save(0, pytree, force=True)
        return ckpt.directory


def load_pytree(directory: str | os.PathLike, abstract: Any = None, *, hint: str | None = None) -> Any:
    """Loads the latest checkpoint in `directory` (step 0 for `save_pytree`'s).

    `abstract` as in `Checkpointer.restore`; None restores numpy arrays in the saved structure. The stored
    config is not compared with anything (read it with `load_config`). `hint` completes the error raised when
    there is no checkpoint, e.g. "run `python -m experiments.kmeans --workdir=...` first".
    """
    path = _abs_path(directory)
    if not os.path.isdir(path):
        raise CheckpointNotFoundError(_no_checkpoint_message(path, hint))
    with Checkpointer(path, None, max_to_keep=None, async_save=False) as ckpt:
        if not ckpt.all_steps():
            raise CheckpointNotFoundError(_no_checkpoint_message(path, hint))
        return ckpt.restore(abstract)


def load_config(directory: str | os.PathLike, step: int | None = None) -> dict:
    """The config stored with a checkpoint in `directory` (default: the latest step)."""
    path = _abs_path(directory)
    if not os.path.isdir(path):
        raise CheckpointNotFoundError(_no_checkpoint_message(path))
    with Checkpointer(path, None, max_to_keep=None, async_save=False) as ckpt:
        return ckpt.stored_config(step)


# --- checksum manifests ---------------------------------------------------------------------------------------------

_NO_SUMS = "no manifest"


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _listed_files(step_dir: str) -> list[str]:
    """The files of a step a manifest lists: relative '/'-separated paths, sorted."""
    names = []
    for root, _, files in os.walk(step_dir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), step_dir).replace(os.sep, "/")
            if rel not in _UNLISTED:
                names.append(rel)
    return sorted(names)


def write_sums(step_dir: str | os.PathLike) -> None:
    """Writes `<step_dir>/SHA256SUMS`: one line "<sha256 hex>  <relative path>" per file, as `sha256sum` does."""
    step_dir = os.fspath(step_dir)
    text = "".join(f"{_sha256(os.path.join(step_dir, rel))}  {rel}\n" for rel in _listed_files(step_dir))
    tmp = os.path.join(step_dir, f".{SUMS_FILE}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(step_dir, SUMS_FILE))


def _read_sums(path: str) -> dict[str, str] | str:
    """{relative path: sha256 hex} from a manifest, or what is wrong with it. Strict: any changed byte shows."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
    except (OSError, UnicodeDecodeError) as e:
        return f"{SUMS_FILE} is unreadable ({type(e).__name__})"
    if not text.endswith("\n"):
        return f"{SUMS_FILE} is truncated"
    sums = {}
    for number, line in enumerate(text[:-1].split("\n"), 1):
        match = _SUMS_LINE.fullmatch(line)
        if match is None or match[2] in sums or match[2].startswith("/") or ".." in match[2].split("/"):
            return f"line {number} of {SUMS_FILE} is malformed"
        sums[match[2]] = match[1]
    return sums


def check_sums(step_dir: str | os.PathLike) -> str | None:
    """What is wrong with a step's files, checked against its SHA256SUMS: None when all match, "no manifest"
    when there is none, else the first problem (a missing or changed file, or a damaged manifest)."""
    step_dir = os.fspath(step_dir)
    path = os.path.join(step_dir, SUMS_FILE)
    if not os.path.exists(path):
        return _NO_SUMS
    sums = _read_sums(path)
    if isinstance(sums, str):
        return sums
    for rel, digest in sums.items():
        file = os.path.join(step_dir, *rel.split("/"))
        if not os.path.isfile(file):
            return f"{rel} is missing"
        if _sha256(file) != digest:
            return f"{rel} does not match its SHA-256 in {SUMS_FILE}"
    return None


def _is_disk_full(e: BaseException | None) -> bool:
    """Whether an error, or one it was raised from or wraps, says the disk is full."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if "no space left on device" in str(e).lower():
            return True
        e = e.__cause__ or e.__context__
    return False


# --- pure helpers ----------------------------------------------------------------------------------------------------


def _abs_path(directory: str | os.PathLike) -> str:
    directory = os.fspath(directory)
    if "://" in directory:  # gs://, s3://: Orbax and tensorstore handle these themselves.
        return directory
    return str(pathlib.Path(directory).expanduser().absolute())


def _no_checkpoint_message(directory: str, hint: str | None = None) -> str:
    what = "directory does not exist" if not os.path.exists(directory) else "directory holds no checkpoint steps"
    return f"no checkpoint in {directory} ({what}); " + (
        hint or "run the experiment that writes it first, or check the path (--workdir / --pretrained)."
    )


def _brief(e: BaseException) -> str:
    """The first line of an exception, without tensorstore's spec dump; the whole one stays chained (`from e`)."""
    text = str(e).split(" [tensorstore_spec=")[0].strip()
    text = text.splitlines()[0] if text else ""
    if len(text) > 400:
        text = text[:400] + " ..."
    return f"{type(e).__name__}: {text}"


def _as_step(step: Any) -> int:
    try:
        value = int(step)
    except (TypeError, ValueError):
        raise ValueError(f"step must be a whole number >= 0, got {step!r}.") from None
    if isinstance(step, bool) or value != step or value < 0:
        raise ValueError(f"step must be a whole number >= 0, got {step!r}.")
    return value


def _normalize_config(config: Mapping[str, Any] | None) -> dict:
    """The config as it will read back from JSON (tuples -> lists, paths -> str), so comparisons are fair."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict of flags, got {type(config).__name__}.")
    return json.loads(json.dumps(dict(config), sort_keys=True, default=str))


def _config_diffs(stored: Mapping[str, Any], current: Mapping[str, Any], ignore: frozenset) -> list:
    keys = sorted((set(stored) | set(current)) - ignore)
    return [
        (k, stored.get(k, _MISSING), current.get(k, _MISSING))
        for k in keys
        if stored.get(k, _MISSING) != current.get(k, _MISSING)
    ]


def _show(value: Any) -> str:
    return value if value is _MISSING else repr(value)


def _is_typed_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _abstract_leaf(x: Any) -> Any:
    """A restore target leaf: jax arrays -> ShapeDtypeStruct (keeping sharding); other leaves unchanged."""
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x


def _restore_target(abstract_state: Any, stored_tree: Any) -> Any:
    """The target Orbax restores into: `abstract_state` with jax arrays made abstract.

    A Python scalar in the checkpoint (an `int` step) whose target is a weakly typed scalar (what
    `jax.eval_shape` makes of a Python scalar) is restored as a Python scalar again, not as a 0-d array.
    """
    stored = _flat(stored_tree)

    def leaf(path, x):
        meta = stored.get(_path_name(path))
        if (
            isinstance(meta, ocp.metadata.ScalarMetadata)
            and isinstance(x, jax.ShapeDtypeStruct)
            and x.shape == ()
            and x.weak_type
        ):
            return _numpy_target(meta)
        return _abstract_leaf(x)

    return jax.tree_util.tree_map_with_path(leaf, abstract_state)


def _numpy_target(meta: Any) -> Any:
    """A target leaf that makes Orbax restore the saved leaf as numpy (or a Python scalar, if one was saved)."""
    if isinstance(meta, ocp.metadata.ScalarMetadata):
        return np.dtype(meta.dtype).type(0).item()
    if isinstance(meta, ocp.metadata.StringMetadata):
        return ""
    return np.empty(tuple(meta.shape), np.dtype(meta.dtype))


def _path_name(path: tuple) -> tuple[str, ...]:
    """A key path as Orbax names it on disk: dict keys, attribute names and sequence indices, as strings."""
    out = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            out.append(str(k.key))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            out.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            out.append(str(k.idx))
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            out.append(str(k.key))
        else:
            out.append(str(k))
    return tuple(out)


def _flat(tree: Any) -> dict[tuple[str, ...], Any]:
    return {_path_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _stored_spec(leaf: Any) -> tuple[tuple[int, ...], np.dtype | None]:
    """(shape, dtype) that a checkpoint must hold for this target leaf; dtype None for Python scalars."""
    if _is_typed_key(leaf):
        data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype))
        return tuple(data.shape), np.dtype(data.dtype)
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), np.dtype(leaf.dtype)
    return (), None


def _fmt(shape: tuple, dtype: Any) -> str:
    return f"{np.dtype(dtype).name if dtype is not None else 'scalar'}[{','.join(map(str, shape))}]"


def _tree_diffs(stored_tree: Any, target: Any) -> list[str]:
    """Differences in structure, shape and dtype between the saved metadata and the target, one line each."""
    stored, wanted = _flat(stored_tree), _flat(target)
    problems = []
    for name in sorted(wanted.keys() - stored.keys()):
        problems.append(f"{'/'.join(name)}: not in the checkpoint")
    for name in sorted(stored.keys() - wanted.keys()):
        problems.append(f"{'/'.join(name)}: in the checkpoint but not in the target")
    for name in sorted(wanted.keys() & stored.keys()):
        meta = stored[name]
        if isinstance(meta, ocp.metadata.StringMetadata):
            continue
        shape, dtype = _stored_spec(wanted[name])
        m_shape = tuple(getattr(meta, "shape", ()) or ())
        m_dtype = getattr(meta, "dtype", None)
        # A Python scalar restores exactly into any numeric target, so only its shape is compared.
        scalar = isinstance(meta, ocp.metadata.ScalarMetadata) or dtype is None or m_dtype is None
        if m_shape != shape or (not scalar and np.dtype(m_dtype) != dtype):
            problems.append(
                f"{'/'.join(name)}: checkpoint has {_fmt(m_shape, None if scalar else m_dtype)}, "
                f"target asks for {_fmt(shape, None if scalar else dtype)}"
            )
    return problems


def _key_impl_name(dtype: Any) -> str:
    for name in ("threefry2x32", "rbg", "unsafe_rbg"):
        if jax.eval_shape(lambda n=name: jax.random.key(0, impl=n)).dtype == dtype:
            return name
    raise CheckpointError(f"unknown PRNG key type {dtype}; store raw uint32 keys (jax.random.key_data) instead.")


def _match_key_types(restored: Any, target: Any) -> Any:
    """Typed keys where the target has typed keys, raw uint32 key data where it has raw data."""

    def fix(want, got):
        if _is_typed_key(want) and not _is_typed_key(got):
            return jax.random.wrap_key_data(got, impl=_key_impl_name(want.dtype))
        if _is_typed_key(got) and not _is_typed_key(want) and hasattr(want, "dtype"):
            return jax.random.key_data(got)
        return got

    if not any(_is_typed_key(x) for x in jax.tree.leaves(target) + jax.tree.leaves(restored)):
        return restored
    return jax.tree.map(fix, target, restored)
