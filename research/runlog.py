"""A run's records: config.json, metrics.jsonl, results.json and progress lines.

Every file is written atomically (a temporary file, then a rename), so a run
killed mid-write leaves the previous version, never half a file. In a run of
several processes (jax.distributed) only process 0 writes (`is_writer`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from absl import logging as absl_logging


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic, np.ndarray)) or type(v).__module__.startswith("jax"):
        a = np.asarray(v)
        return a.item() if a.ndim == 0 else a.tolist()
    if isinstance(v, Path):
        return str(v)
    return v


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it, a race with other threads' files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_writer() -> bool:
    """Whether this process writes the run's files (records, arrays, plots): the only process of a run, or
    process 0 of a run over several (jax.distributed); the others compute alongside and write nothing."""
    jax = sys.modules.get("jax")  # not imported: a one-process tool
    return jax is None or jax.process_index() == 0


def save_array(path, array) -> None:
    """np.save(path, array) from the writing process (`is_writer`) only."""
    if is_writer():
        np.save(path, np.asarray(array))


def _write_atomic(path, text: str) -> None:
    if not is_writer():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; give it the mode open() would, like every other file of the run.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, obj) -> None:
    """Writes obj as indented JSON to path atomically (NumPy and JAX values converted)."""
    _write_atomic(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


# The distributions whose versions decide a result: recorded in results.json and named under every table.
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy", "scikit-learn")


def library_versions() -> dict:
    """{distribution: installed version (None when absent)} for LIBRARIES."""
    return {name: _installed(name) for name in LIBRARIES}


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """Versions and device of this run, for results.json."""
    import jax

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **library_versions(),
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.devices()],
    }


class MetricsLog:
    """Appends one JSON line per log step to metrics.jsonl and echoes it as a progress line.

    With `tensorboard`, every row also goes to TensorBoard event files in <workdir>/tensorboard/
    (research.tensorboard), rewritten from metrics.jsonl now and after a rewind, so both hold the same steps.
    """

    def __init__(self, workdir, tensorboard: bool = False):
        self.path = Path(workdir) / "metrics.jsonl"
        self._writes = is_writer()
        if self._writes:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()
        self._events = None
        if tensorboard and self._writes:
            from research import tensorboard as tb

            self._events = tb.EventMirror(self.path.parent / "tensorboard", self.rows())

    def rows(self) -> list[dict]:
        """The rows logged so far (by this run and earlier invocations in the same workdir)."""
        if not self.path.exists():
            return []
        text = self.path.read_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a row cut short by a kill mid-write: it is logged again
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def rewind(self, step: int, **match) -> None:
        """Drops the rows after `step` whose fields equal `match` (e.g. stage="pretrain"): a run resumed from a
        checkpoint at `step` logs those steps again, and the file should read like an uninterrupted run's."""
        if not self.path.exists():
            return
        rows = self.rows()
        kept = [r for r in rows if not (r.get("step", 0) > step and all(r.get(k) == v for k, v in match.items()))]
        if len(kept) < len(rows) or not self.path.read_text().endswith("\n"):
            _write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        if self._events is not None and len(kept) < len(rows):
            self._events.rewrite(kept)

    def log(self, step: int, **metrics) -> None:
        row = {"step": int(step), "time": round(time.time() - self._t0, 3), **_jsonable(metrics)}
        if not self._writes:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._events is not None:
            self._events.add(row)
        absl_logging.info("step %d: %s", step, " ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)
