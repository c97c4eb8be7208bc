"""Environments that reproduce, and metrics where researchers look.

constraints.txt (tools/make_constraints.py) pins every dependency of setup.py; the versions a run and a table
name; TensorBoard event files beside metrics.jsonl, read back here with a reader of our own (TFRecord framing,
masked CRC32C, then tensorboardX's Event protobuf), also after a resume and through a binary.
"""

import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from binaries import run
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from research import report, runlog
from research import tensorboard as tb

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_constraints", ROOT / "tools" / "make_constraints.py")
make_constraints = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_constraints)


def parse_constraints(text: str) -> dict[str, str]:
    """{canonical name: version} of a constraints file; every line a comment or one exact pin."""
    pinned = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==" and not req.marker and not req.extras, line
        pinned[canonicalize_name(req.name)] = spec.version
    return pinned


def assert_pins_satisfy_setup_py(pinned: dict[str, str]) -> None:
    for req in make_constraints.roots():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req} is not pinned"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} breaks {req}"


def test_constraints_of_this_environment_pin_every_dependency_of_setup_py():
    text = make_constraints.render(make_constraints.pins(make_constraints.roots()))
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any(f"Python {sys.version.split()[0]}" in line for line in header)
    pinned = parse_constraints(text)
    assert_pins_satisfy_setup_py(pinned)
    # Transitive requirements too (jax pulls jaxlib and ml_dtypes, flax pulls orbax's tensorstore, ...).
    assert {"jaxlib", "ml-dtypes", "tensorstore", "protobuf"} <= pinned.keys()
    assert "jaxcluster" not in pinned and "torch" not in pinned


def test_committed_constraints_pin_setup_pys_requirements_within_their_bounds():
    assert_pins_satisfy_setup_py(parse_constraints((ROOT / "constraints.txt").read_text()))


def test_runs_and_tables_name_the_library_versions():
    versions = runlog.versions()
    line = report.machine()
    for name in ("jax", "flax", "optax", "orbax-checkpoint", "numpy", "scipy", "scikit-learn"):
        assert versions[name], name
        assert f"{name} {versions[name]}" in line


# --- TensorBoard ---------------------------------------------------------------------------------------------------


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(folder: Path) -> list:
    """The Event protos of the folder's single event file, each record's checksums verified."""
    from tensorboardX.proto import event_pb2

    (path,) = folder.glob(tb.PREFIX + "*")
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8 : at + 12])[0] == _masked(header)
        payload = data[at + 12 : at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length : at + 16 + length])[0] == _masked(payload)
        events.append(event_pb2.Event.FromString(payload))
        at += 16 + length
    return events


def scalars(folder: Path) -> dict[tuple[str, int], float]:
    """{(tag, step): value}, failing on a (tag, step) written twice."""
    events = read_events(folder)
    assert events[0].file_version == "brain.Event:2"
    out = {}
    for event in events[1:]:
        for value in event.summary.value:
            assert (value.tag, event.step) not in out, f"{value.tag} at step {event.step} written twice"
            out[value.tag, event.step] = value.simple_value
    return out


def expected(rows) -> dict[tuple[str, int], float]:
    """What the rows should read back as (TensorBoard stores scalars as float32)."""
    return {(tag, r["step"]): float(np.float32(v)) for r in rows for tag, v in tb.scalars(r).items()}


def test_every_logged_number_becomes_a_scalar_of_its_stage(tmp_path):
    log = runlog.MetricsLog(tmp_path, tensorboard=True)
    log.log(0, stage="pretrain", loss=0.5, samples_per_s=100.0, note="text", converged=True, sizes=[1, 2])
    log.log(10, stage="pretrain", loss=0.25, samples_per_s=120.0)
    log.log(10, loss=2.0)  # no stage: "train"
    got = scalars(tmp_path / "tensorboard")
    assert got == {
        ("pretrain/loss", 0): 0.5,
        ("pretrain/samples_per_s", 0): 100.0,
        ("pretrain/loss", 10): 0.25,
        ("pretrain/samples_per_s", 10): 120.0,
        ("train/loss", 10): 2.0,
    }
    assert got == expected(log.rows())


def test_a_resumed_run_writes_each_step_once_as_metrics_jsonl_has_it(tmp_path):
    first = runlog.MetricsLog(tmp_path, tensorboard=True)
    for s in range(4):
        first.log(s * 10, stage="pretrain", loss=1.0 / (s + 1))
    for s in range(4):
        first.log(s, stage="dec", acc=0.1 * s)
    # Killed; the next invocation restores the dec checkpoint of step 1 and logs steps 2 and 3 again.
    second = runlog.MetricsLog(tmp_path, tensorboard=True)
    second.rewind(1, stage="dec")
    for s in (2, 3):
        second.log(s, stage="dec", acc=0.5 * s)
    got = scalars(tmp_path / "tensorboard")
    assert got == expected(second.rows())
    assert got["dec/acc", 3] == 1.5 and got["pretrain/loss", 30] == 0.25 and len(got) == 8
    # A third invocation with nothing to redo leaves the same scalars.
    runlog.MetricsLog(tmp_path, tensorboard=True)
    assert scalars(tmp_path / "tensorboard") == got


def test_without_tensorboardx_the_error_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "tensorboardX.event_file_writer", None)
    assert not tb.available()
    with pytest.raises(ImportError, match=r"pip install -e '\.\[tensorboard\]'"):
        runlog.MetricsLog(tmp_path, tensorboard=True)
    blocker = tmp_path / "blocked" / "tensorboardX"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    out = run(
        ["experiments.autoencoder", "--tensorboard", f"--workdir={tmp_path / 'wd'}"],
        tmp_path,
        ok=False,
        PYTHONPATH=f"{blocker.parent}:{ROOT}",
    )
    assert out.returncode == 2 and "error: flag --tensorboard" in out.stderr, out.stderr
    assert "pip install -e '.[tensorboard]'" in out.stderr
    assert not (tmp_path / "wd").exists()
