"""One run over two processes (jax.distributed on 127.0.0.1, gloo CPU collectives), as docs/scaling.md runs it.

Two processes of two CPU devices each run the k-means and mixture binaries side by side, each holding its own
rows, and must give the labels of the same fit in one process (the library's, under the same XLA flags). The
dec binary over two processes: test_data_parallel.py. A process that fails, or a coordinator that never answers,
must end every process within the timeout, never hang.
"""

from __future__ import annotations

import json
import time

import binaries
import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from research import data, distributed, metrics
from research.cluster import gmm, kmeans
from research.data import idx

CASES = {  # binary: its flags (digits, 1797 rows: the 4 devices' rows end in 3 rows of padding)
    "kmeans": ["--n_init=3"],  # digits as uint8 IDX files: each process scales only its rows (data.PixelRows)
    "gmm": ["--covariance_type=diag", "--n_init=2"],
}
ONE_PROCESS = {  # each binary's fit with those flags (the rest its defaults, the library's), in this process
    "kmeans": lambda x: kmeans.fit(jax.random.key(0), x, 10, n_init=3).labels,  # the fit keeps the root key
    "gmm": lambda x: gmm.fit(jax.random.split(jax.random.key(0))[1], x, 10, covariance_type="diag", n_init=2).labels,
}


def _digits_as_idx(folder):
    """scikit-learn's digits (pixels 0..16) as MNIST-named uint8 IDX files, train then test."""
    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)
    for stem, array in [
        ("train-images-idx3-ubyte", images[:1500]),
        ("t10k-images-idx3-ubyte", images[1500:]),
        ("train-labels-idx1-ubyte", d.target[:1500].astype(np.uint8)),
        ("t10k-labels-idx1-ubyte", d.target[1500:].astype(np.uint8)),
    ]:
        idx.write_idx(folder / f"{stem}.gz", array)
    return f"idx:{folder}"


@pytest.mark.parametrize("binary", sorted(CASES))
def test_two_processes_give_the_labels_of_one(binary, tmp_path):
    dataset = _digits_as_idx(tmp_path) if binary == "kmeans" else "digits"
    flags = [f"experiments.{binary}", f"--dataset={dataset}", *CASES[binary]]
    outs = binaries.run_processes([*flags, f"--workdir={tmp_path / 'two'}"], tmp_path, timeout=300)
    for i, (rc, _, err) in enumerate(outs):
        assert rc == 0, f"process {i} failed:\n{err[-3000:]}"
    # Process 0 alone writes: the summary line, results.json, labels.
    name = "digits" if dataset == "digits" else f"idx:{tmp_path}"
    summary = [[ln for ln in out.splitlines() if ln.startswith(f"{binary} {name}/all")] for _, out, _ in outs]
    assert len(summary[0]) == 1 and summary[1] == []  # (gloo prints lines of its own to stdout in both)
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert (two["n_processes"], two["n_devices"]) == (2, 4)
    ds = data.load(dataset)  # the same float32 rows as the processes' PixelRows
    one, labels = np.asarray(ONE_PROCESS[binary](ds.x)), np.load(tmp_path / "two" / "labels.npy")
    assert labels.shape == (1797,)
    np.testing.assert_array_equal(labels, one)
    assert two["acc"] == metrics.acc(ds.y, one)


def test_a_coordinator_that_never_answers_is_an_error_in_words():
    # What a process other than 0 does before jax.distributed.initialize (which would abort the process): the
    # binaries print the ValueError as their one `error:` line and exit 2.
    port = distributed.free_port()  # nothing listens there
    t0 = time.time()
    with pytest.raises(ValueError, match=f"process 1: no coordinator answered at 127.0.0.1:{port} within 1 s"):
        distributed._wait_for_coordinator(distributed.Cluster(f"127.0.0.1:{port}", 2, 1, timeout=1))
    assert time.time() - t0 < 10


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
