"""Bad inputs and flags: every one ends with a one-line `error:` naming the flag or file, exit status 2, no
traceback, nothing written outside the workdir and nothing of the user's changed (issue 22).

The binary table runs each case as a user would (tests/binaries.py); a flag refusal happens when the flags are
parsed, so a case costs about the import. The rest is checked in-process: the wrapper of research.cli, the
flag checks on a FlagValues of their own, and the library functions behind the data and numeric cases.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from absl import flags
from binaries import run

from experiments import common, stages
from research import cli, data
from research.cluster import kmeans, minibatch_kmeans, spherical_kmeans
from research.data import tabular


def user_files(folder: Path) -> None:
    """The inputs of the table's cases, and a file of the user's that no case may touch."""
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    (folder / "text.npy").write_text("1,2,3\n4,5,6\n")
    (folder / "latin1.csv").write_bytes("a,b,city\n1,2,Sevilla\n3,4,M\xe1laga\n5,6,C\xe1diz\n".encode("latin-1"))
    rng = np.random.default_rng(0)
    np.save(folder / "huge.npy", (rng.normal(size=(60, 4)) * 1e30).astype(np.float32))
    finished = folder / "finished"
    finished.mkdir()
    (finished / "results.json").write_text('{"acc": 0.5}\n')


def snapshot(root: Path) -> dict:
    """Every path under root with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


IN = "in"
# (case id, python -m arguments, what the error line must name); {in}: the user's folder. The workdir is
# tmp_path/wd unless the case names one.
# absl checks every flag before it reports, so one process refuses several bad flags in one line.
TABLE = [
    (
        "kmeans",
        ["experiments.kmeans", "--n_clusters=0", "--minibatch_size=-5", "--num_devices=0"],
        ["--n_clusters", "--minibatch_size", "--num_devices", "; flag --"],  # one line, the errors apart
    ),
    (
        "devices",
        ["experiments.kmeans", "--num_devices=3"],
        ["--num_devices=3 asks for more devices than the 1 visible"],
    ),
    ("gmm alias", ["experiments.gmm", "--n_components=1"], ["--n_clusters=1"]),
    ("autoencoder", ["experiments.autoencoder", "--epochs=0", "--learning_rate=nan"], ["--epochs", "--learning_rate"]),
    ("dec", ["experiments.dec", "--max_iter=0", "--update_interval=0"], ["--max_iter", "--update_interval"]),
    ("manifold", ["experiments.manifold_cluster", "--n_neighbors=1"], ["--n_neighbors"]),
    (
        "tsne_dbscan",
        ["experiments.tsne_dbscan", "--perplexity=0", "--min_samples=0"],
        ["--perplexity", "--min_samples"],
    ),
    (
        "reproduce",
        ["experiments.reproduce", "--table=dec_num_clusters", "--quick", "--seeds=abc", "--jobs=0", "--ks=0,1"],
        ["--seeds", "--jobs", "--ks"],
    ),
    ("text as npy", ["experiments.kmeans", "--dataset=npy:{in}/text.npy"], ["text.npy is not a .npy file"]),
    ("latin-1 csv", ["experiments.kmeans", "--dataset=csv:{in}/latin1.csv"], ["latin1.csv", "--csv_encoding"]),
    ("huge values", ["experiments.kmeans", "--dataset=npy:{in}/huge.npy"], ["float32 k-means: max |x| = "]),
    ("finished run", ["experiments.kmeans", "--workdir={in}/finished"], ["finished", "--overwrite"]),
]


def workdir_of(args: list[str], default: Path) -> Path:
    """The --workdir (or reproduce's --root) the arguments name, else `default`."""
    given = [a.split("=", 1)[1] for a in args if a.startswith(("--workdir=", "--root="))]
    return Path(given[0]) if given else default


@pytest.mark.parametrize("args, names", [pytest.param(a, n, id=i) for i, a, n in TABLE])
def test_binary_refuses_with_one_line_and_changes_nothing(tmp_path, args, names):
    user_files(tmp_path / IN)
    args = [a.format(**{"in": tmp_path / IN}) for a in args]
    args += [] if any(a.startswith("--workdir") for a in args) else [f"--workdir={tmp_path / 'wd'}"]
    if args[0] == "experiments.reproduce":
        args = [a.replace("--workdir=", "--root=") for a in args]
    wd = workdir_of(args, tmp_path / "wd")
    before = snapshot(tmp_path)
    out = run(args, tmp_path, ok=False)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == cli.USER_ERROR_EXIT, out.stderr[-3000:]
    assert last.startswith("error: ") and all(name in last for name in names), last
    assert "Traceback" not in out.stderr
    after = snapshot(tmp_path)
    outside = {p: v for p, v in after.items() if not p.is_relative_to(wd)}
    assert outside == {p: v for p, v in before.items() if not p.is_relative_to(wd)}
    if "flag --" in last:  # refused while parsing the flags: nothing at all was written
        assert after == before


def test_overwrite_replaces_a_finished_autoencoder_of_other_settings(tmp_path):
    wd = tmp_path / "ae"
    args = ["experiments.autoencoder", "--arch=mlp:16-4", "--batch_size=512", f"--workdir={wd}"]
    run([*args, "--epochs=1"], tmp_path)
    (wd / "notes.txt").write_text("mine\n")
    run([*args, "--epochs=2", "--overwrite"], tmp_path)  # refused with "different configuration" before
    assert json.loads((wd / "config.json").read_text())["epochs"] == 2
    assert (wd / "notes.txt").read_text() == "mine\n"


# ----------------------------------------------------------------- the wrapper (in-process)


def _raises(exc):
    def main(argv):
        raise exc

    return main


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("--n_clusters must be\n at least 2"),
        FileNotFoundError("no such file x.npy"),
        PermissionError("x.npy: permission denied"),
        OSError(errno.ENOSPC, "No space left on device"),
        SystemExit("workdir refused"),
    ],
    ids=["value", "missing", "permission", "disk-full", "system-exit-message"],
)
def test_user_errors_are_one_line_and_exit_2(exc, capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as info:
        cli._reporting(_raises(exc))([])
    assert info.value.code == cli.USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_bugs_keep_their_traceback_and_debug_shows_user_errors(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    with pytest.raises(KeyError):
        cli._reporting(_raises(KeyError("a bug")))([])
    with pytest.raises(OSError):  # not the user's to fix
        cli._reporting(_raises(OSError(errno.EIO, "I/O error")))([])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="bad value"):
        cli._reporting(_raises(ValueError("bad value")))([])


def test_flag_checks_name_the_flag():
    fv = flags.FlagValues()
    flags.DEFINE_integer("k", None, "", flag_values=fv)
    flags.DEFINE_float("rate", 0.1, "", flag_values=fv)
    flags.DEFINE_float("share", 0.0, "", flag_values=fv)
    flags.DEFINE_list("ks", ["3"], "", flag_values=fv)
    cli.at_least("k", 2, flag_values=fv)
    cli.positive_finite("rate", flag_values=fv)
    cli.fraction("share", flag_values=fv)
    cli.list_of("ks", int, lambda k: k >= 2, nonempty=True, flag_values=fv)
    fv(["prog"])  # the defaults pass, None included
    bad = ["--k=1", "--rate=nan", "--rate=inf", "--rate=0", "--share=1", "--ks=abc", "--ks=3,1", "--ks="]
    for arg in bad:
        fv.unparse_flags()
        with pytest.raises(flags.IllegalFlagValueError, match=f"flag {arg.split('=')[0]}="):
            fv(["prog", arg])


def test_n_clusters_zero_is_refused_not_the_default():
    ds = data.load("digits")
    assert common.n_clusters(ds, None) == 10 and common.n_clusters(ds, 3) == 3
    for k in (0, 1, -2):
        with pytest.raises(ValueError, match="--n_clusters must be a whole number >= 2"):
            common.n_clusters(ds, k)


# ----------------------------------------------------------------- workdirs, stages, collect


def _finished_run(wd: Path) -> None:
    for name in ("results.json", "config.json", "labels.npy"):
        (wd / name).parent.mkdir(parents=True, exist_ok=True)
        (wd / name).write_text("{}")
    (wd / "ckpt" / "1").mkdir(parents=True)
    (wd / "plots").mkdir()
    (wd / "plots" / "clusters.png").write_bytes(b"png")
    (wd / "plots" / "my_sketch.txt").write_text("mine")
    (wd / "notes.txt").write_text("mine")


def test_overwrite_removes_only_what_a_run_wrote(tmp_path):
    wd = tmp_path / "wd"
    _finished_run(wd)
    run_cfg = common.RunConfig(experiment="kmeans", workdir=wd, flags={"n_init": 2})
    with pytest.raises(ValueError, match="Pass --overwrite"):
        common.prepare_workdir(run_cfg)
    common.prepare_workdir(common.RunConfig(experiment="kmeans", workdir=wd, overwrite=True, flags={"n_init": 2}))
    left = sorted(str(p.relative_to(wd)) for p in wd.rglob("*"))
    assert left == ["config.json", "notes.txt", "plots", "plots/my_sketch.txt"]


def test_autoencoder_stage_of_other_settings_names_overwrite(tmp_path):
    stage = tmp_path / "autoencoder"
    stage.mkdir()
    (stage / "config.json").write_text(json.dumps({"arch": "mlp:32-4"}))
    ds = data.load("digits")
    cfg = stages.AutoencoderConfig(arch="dense64", epochs=1)
    with pytest.raises(ValueError, match=r"other settings \(arch, epochs\)\. Pass --overwrite"):
        stages.obtain_autoencoder(common.RunConfig(experiment="dec", workdir=tmp_path), ds, cfg)
    with pytest.raises(ValueError, match="--ae_batch_size=5000 is larger than the data"):
        stages.obtain_autoencoder(
            common.RunConfig(experiment="dec", workdir=tmp_path), ds, stages.AutoencoderConfig(batch_size=5000)
        )


def test_collect_skips_a_truncated_results_file_with_a_warning(tmp_path):
    good = '{"dataset": "digits", "acc": 0.5, "nmi": 0.4, "ari": 0.3, "seed": 0}'
    for seed, text in ((0, good), (1, '{"data')):  # seed 1 was cut off mid-write
        wd = tmp_path / "kmeans" / f"digits-seed{seed}"
        wd.mkdir(parents=True)
        (wd / "results.json").write_text(text)
    out = run(["experiments.collect", "--dataset=digits", f"--root={tmp_path}", f"--out={tmp_path / 't'}"], tmp_path)
    assert "skipping" in out.stderr and "digits-seed1/results.json" in out.stderr
    assert [line.split(",")[3] for line in (tmp_path / "t_clustering.csv").read_text().splitlines()[1:]] == ["0"]


# ----------------------------------------------------------------- data and numerics (library)


def test_csv_not_in_utf8_names_the_file_and_the_flag(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("a,city\n1,M\xe1laga\n2,C\xe1diz\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"t\.csv is not utf-8 text: byte 0xe1 at offset 10.*--csv_encoding"):
        tabular.load_csv(path)
    _, _, names = tabular.load_csv(path, encoding="latin-1")
    assert names == ["a", "city=Cádiz", "city=Málaga"]
    ds = data.load(f"csv:{path}", csv_encoding="latin-1")
    assert ds.x.shape == (2, 3)
    with pytest.raises(ValueError, match="unknown text encoding 'klingon'"):
        tabular.load_csv(path, encoding="klingon")
    with pytest.raises(ValueError, match="csv_encoding apply to csv"):
        data.load("digits", csv_encoding="latin-1")


def _blobs(scale: float):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 6
    x = (centres[rng.integers(0, 3, 150)] + rng.normal(size=(150, 5))).astype(np.float32)
    return x * np.float32(scale)


def test_huge_values_kmeans_refuses_and_never_reports_an_overflow_as_converged():
    with pytest.raises(ValueError, match=r"max \|x\| = 1.6e\+31, but .* Standardise"):
        kmeans.fit(jax.random.key(0), _blobs(1e30), 3, n_init=2)
    # The loop itself, past the check: an overflowed inertia is not a convergence.
    args, static = kmeans._prepare(jax.random.key(0), _blobs(1.0), 3, 1, 5, 1e-4, "random", False, 1.0)
    res, _ = kmeans._fit(args[0], args[1] * np.float32(1e30), *args[2:], **static)
    assert not np.isfinite(float(res.inertia)) and not bool(res.converged)
    with pytest.raises(ValueError, match="overflowed float32"):
        minibatch_kmeans.fit(jax.random.key(0), _blobs(1e30), 3, batch_size=32, n_init=1, max_iter=1, init="random")


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_spherical_kmeans_is_scale_invariant_at_extreme_magnitudes(scale):
    ref = spherical_kmeans.fit(jax.random.key(0), _blobs(1.0), 3, n_init=2)
    res = spherical_kmeans.fit(jax.random.key(0), _blobs(scale), 3, n_init=2)
    np.testing.assert_array_equal(np.asarray(res.labels), np.asarray(ref.labels))
    assert len(np.unique(res.labels)) == 3 and np.isfinite(float(res.inertia)) and bool(res.converged)
    np.testing.assert_array_equal(
        np.asarray(spherical_kmeans.predict(res.centroids, _blobs(scale))), np.asarray(res.labels)
    )
