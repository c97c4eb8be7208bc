"""One run over two processes (jax.distributed on 127.0.0.1, gloo CPU collectives), as docs/scaling.md runs it.

Two processes of two CPU devices each run the binaries side by side, each holding its own rows (k-means and the
mixture) or the whole of the small data (DEC's training, whose batches are split over the four devices), and
must give the labels of one process. A process that fails, or a coordinator that never answers, must end every
process within the timeout, never hang.
"""

from __future__ import annotations

import json
import time

import binaries
import numpy as np
import pytest

from research import distributed

DEC = ["--ae_arch=mlp:64-32-10", "--ae_epochs=1", "--update_interval=10", "--n_init=2", "--max_iter=20", "--tol=0"]
CASES = {  # binary: its flags (digits, 1797 rows: the 4 devices' rows end in 3 rows of padding)
    "kmeans": ["--n_init=3"],
    "gmm": ["--covariance_type=diag", "--n_init=2"],
    "dec": DEC,
}


@pytest.mark.parametrize("binary", sorted(CASES))
def test_two_processes_give_the_labels_of_one(binary, tmp_path):
    flags = [f"experiments.{binary}", "--dataset=digits", *CASES[binary]]
    binaries.run([*flags, f"--workdir={tmp_path / 'one'}"], tmp_path)
    outs = binaries.run_processes([*flags, f"--workdir={tmp_path / 'two'}"], tmp_path, timeout=300)
    for i, (rc, _, err) in enumerate(outs):
        assert rc == 0, f"process {i} failed:\n{err[-3000:]}"
    # Process 0 alone writes: the summary line, results.json, labels.
    summary = [[ln for ln in out.splitlines() if ln.startswith(f"{binary} digits/all")] for _, out, _ in outs]
    assert len(summary[0]) == 1 and summary[1] == []  # (gloo prints lines of its own to stdout in both)
    one, two = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert (one["n_processes"], two["n_processes"], two["n_devices"]) == (1, 2, 4)
    a, b = (np.load(tmp_path / d / "labels.npy") for d in ("one", "two"))
    assert a.shape == b.shape == (1797,)
    np.testing.assert_array_equal(a, b)
    assert two["acc"] == one["acc"]


def test_a_coordinator_that_never_answers_ends_the_process_in_words(tmp_path):
    port = binaries.free_port()  # nothing listens there
    t0 = time.time()
    out = binaries.run(
        [
            "experiments.kmeans",
            "--dataset=digits",
            f"--workdir={tmp_path / 'w'}",
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            "--process_id=1",
            "--distributed_timeout=2",
        ],
        tmp_path,
        ok=False,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"process 1: no coordinator answered at 127.0.0.1:{port} within 2 s" in out.stderr
    assert time.time() - t0 < 30


def test_a_failed_process_ends_the_other_within_the_timeout(tmp_path):
    t0 = time.time()
    outs = binaries.run_processes(
        ["experiments.kmeans", "--dataset=digits", f"--workdir={tmp_path / 'w'}", "--distributed_timeout=4"],
        tmp_path,
        timeout=90,
        per_process=lambda i: [f"--dataset=npy:{tmp_path / 'missing.npy'}"] if i == 1 else [],
    )
    assert time.time() - t0 < 60
    (rc0, _, err0), (rc1, _, err1) = outs
    assert rc1 != 0 and "no such file" in err1
    assert rc0 != 0, "process 0 finished alone"
    assert "another task died" in err0 or "heartbeat" in err0, err0[-2000:]


def test_bad_cluster_settings_are_refused_in_words():
    with pytest.raises(ValueError, match="leave num_processes and process_id unset"):
        distributed.Cluster("auto", num_processes=2)
    with pytest.raises(ValueError, match="give num_processes"):
        distributed.Cluster("127.0.0.1:1234", num_processes=2)
    with pytest.raises(ValueError, match=r"process_id must be in \[0, num_processes\) = \[0, 2\); got 2"):
        distributed.Cluster("127.0.0.1:1234", num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="host:port"):
        distributed.Cluster("127.0.0.1", num_processes=2, process_id=0)


def test_the_padded_row_count_splits_evenly():
    mesh = type("Mesh", (), {"size": 4})
    assert distributed.padded_rows(1797, mesh) == 1800 and distributed.padded_rows(1800, mesh) == 1800
    assert distributed.padded_rows(10, None) == 10
