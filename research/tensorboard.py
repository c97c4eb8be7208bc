"""TensorBoard event files that mirror a run's metrics.jsonl (optional: `pip install -e '.[tensorboard]'`).

  events = tensorboard.EventMirror(workdir / "tensorboard", rows)   # one fresh event file holding `rows`
  events.add(row)                                                    # then each new row as it is logged

Every number of a row becomes the scalar `<stage>/<field>` (stage "train" for a row without one) at the row's
step; step, time, stage and fields that are not numbers are left out. The folder holds a single event file,
written anew from the rows whenever `rewrite` is called (by runlog.MetricsLog when an invocation starts and when
a resume rewinds metrics.jsonl), so a resumed run shows each step once, exactly as metrics.jsonl has it. Rows
of earlier invocations carry the wall time of that rewrite. Written with tensorboardX (pure Python on protobuf),
synchronously: each row is on disk when `add` returns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

INSTALL = "pip install -e '.[tensorboard]'"
MISSING = f"TensorBoard event files are written with tensorboardX, which is not installed: {INSTALL}"
PREFIX = "events.out.tfevents."
_NOT_SCALARS = ("step", "time", "stage")


def available() -> bool:
    """Whether tensorboardX can be imported."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


def scalars(row: dict) -> dict[str, float]:
    """The row's numbers as {"<stage>/<field>": value} (bools and non-numbers left out)."""
    stage = row.get("stage") or "train"
    return {
        f"{stage}/{k}": float(v)
        for k, v in row.items()
        if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class EventMirror:
    """The event file of <folder>: every row of a MetricsLog as TensorBoard scalars."""

    def __init__(self, folder, rows: Iterable[dict] = ()):
        try:
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto import event_pb2, summary_pb2
        except ImportError as e:
            raise ImportError(MISSING) from e
        self._events_writer, self._event, self._summary = EventsWriter, event_pb2.Event, summary_pb2.Summary
        self.folder = Path(folder)
        self._writer = None
        self.rewrite(rows)

    def rewrite(self, rows: Iterable[dict]) -> None:
        """Replaces the folder's event files by one that holds `rows`."""
        self.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(PREFIX + "*"):
            old.unlink()
        # The pid keeps two invocations started within the same second apart.
        self._writer = self._events_writer(str(self.folder / "events"), filename_suffix=f".{os.getpid()}")
        for row in rows:
            self._write(row)
        self._writer.flush()

    def add(self, row: dict) -> None:
        """Appends one row's scalars and flushes them to disk."""
        self._write(row)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, row: dict) -> None:
        values = [self._summary.Value(tag=t, simple_value=v) for t, v in scalars(row).items()]
        if values:
            event = self._event(
                wall_time=time.time(), step=int(row.get("step", 0)), summary=self._summary(value=values)
            )
            self._writer.write_event(event)
