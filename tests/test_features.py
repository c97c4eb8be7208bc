"""What the clustering and embedding binaries work on (experiments.features): pixels, PCA or the codes of a
pretrained autoencoder, recorded in results.json; and every binary refusing, when its flags are parsed, a flag
that the mode asked for would ignore."""

import json
import subprocess

import binaries
import jax
import numpy as np
import pytest
from absl import flags

from experiments import features
from research import checkpointing, data, nets
from research.deep import pretrain

ARCH, CODE_DIM = "mlp:16-4", 4


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A tiny autoencoder for digits, saved as experiments.autoencoder saves one; untrained, since what is tested
    is where its codes go, not how good they are (training would add a compilation)."""
    wd = tmp_path_factory.mktemp("autoencoder")
    ds = data.load("digits")
    model = nets.build(ARCH, ds.x.shape[1], image_shape=ds.image_shape)
    params = model.init(jax.random.key(0), ds.x[:1])
    spec = {"arch": ARCH, "input_dim": ds.x.shape[1], "image_shape": list(ds.image_shape), "dataset": ds.name}
    pretrain.save_model(wd, spec | {"activation": "relu", "init": "glorot", "loss": "mse"}, params)
    return wd


# ------------------------------------------------------------------ the flags, parsed in a FlagValues of their own


def _parsed(*args) -> flags.FlagValues:
    fv = flags.FlagValues()
    flags.DEFINE_string("pretrained", None, "", flag_values=fv)
    features.define_flags(fv)
    fv(["prog", *args])
    return fv


@pytest.mark.parametrize(
    "args, config",
    [
        ((), features.Config("pixels")),
        (("--features=pca",), features.Config("pca", features.DEFAULT_PCA)),
        (("--pca_components=7",), features.Config("pca", 7)),  # giving the components asks for PCA
        (("--pretrained=ae",), features.Config("pretrained", pretrained="ae")),
    ],
)
def test_config_from_flags(args, config):
    assert features.config_from_flags(_parsed(*args)) == config


@pytest.mark.parametrize(
    "args, named",
    [
        (("--pretrained=ae", "--features=pca"), "--features=pca"),
        (("--pretrained=ae", "--features=pixels"), "--features=pixels"),
        (("--pretrained=ae", "--pca_components=5"), "--pca_components"),
        (("--features=pixels", "--pca_components=5"), "--features=pca"),
        (("--pca_components=0",), "no PCA"),
    ],
)
def test_a_flag_the_features_would_ignore_is_refused(args, named):
    with pytest.raises(flags.IllegalFlagValueError, match=named):
        _parsed(*args)


# ------------------------------------------------------------------------------------------------ the features


def test_extract_each_kind_fits_on_the_first_matrix_and_says_what_it_made(encoder):
    x = data.load("digits").x
    fit, other = x[:1000], x[1000:]
    (a, b), kept, info = features.extract(features.Config("pixels"), None, fit, other)
    assert np.array_equal(a, fit) and np.array_equal(b, other) and kept == {}
    assert info == {"features": "pixels", "n_features": 64}

    (a, b), kept, info = features.extract(features.Config("pca", 3), jax.random.key(0), fit, other)
    assert a.shape == (1000, 3) and b.shape == (797, 3) and set(kept) == {"pca"}
    assert info["features"] == "pca" and info["n_features"] == info["pca_components"] == 3
    assert 0 < info["pca_explained_variance"] < 1

    (a, b), kept, info = features.extract(features.Config("pretrained", pretrained=str(encoder)), None, fit, other)
    model, params, _ = features.load_encoder(encoder)
    np.testing.assert_allclose(b, pretrain.encode(model, params, other), rtol=1e-6)
    assert a.shape == (1000, CODE_DIM) and kept == {}
    assert info == {"features": "pretrained", "n_features": CODE_DIM, "pretrained": str(encoder)}
    # The older entry point keeps its results.json entries.
    assert features.compute("pixels", fit, pretrained=encoder)[1] == {"pretrained": str(encoder)}


# ------------------------------------------------------------------------------------------ the binaries, started

# Binaries with flags that one mode uses and another would ignore, each given several such flags at once, and the
# words that its one error line must hold: every refusal is reported. gmm, choose_k and spherical_kmeans refuse
# only what features.define_flags refuses (tested above); their runs on codes below show they define it.
REFUSED = {
    "kmeans": (
        ["--minibatch_size=64", "--tol=0.1", "--features=pixels", "--pca_components=3"],
        ["--tol applies only to full k-means", "--pca_components applies only with --features=pca"],
    ),
    "som": (
        ["--mode=batch", "--learning_rate=0.3", "--pretrained=ae", "--features=pca"],
        ["--learning_rate applies only with --mode=online", "--features=pca does not apply to the codes"],
    ),
    "tsne_dbscan": (
        [
            "--eps=1",
            "--eps_quantile=0.5",
            "--repulsion=exact",
            "--grid=64",
            "--sweep_perplexities=",
            "--sweep_samples=9",
        ],
        ["--eps_quantile applies only with --eps=0", "--grid applies", "--sweep_samples applies"],
    ),
    "pca_kmeans": (["--pretrained=ae"], ["--pretrained", "experiments.kmeans --pretrained"]),
    "pipeline": (
        ["--selftrain_epochs=3", "--selftrain_threshold=0.9"],
        ["--selftrain_epochs, --selftrain_threshold apply only with --selftrain_rounds > 0"],
    ),
}


def _start(name, args, root, **kw):
    cmd = [f"experiments.{name}", "--dataset=digits", *args, f"--workdir={root / name}"]
    return binaries.start(cmd, root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_every_binary_refuses_a_flag_its_mode_would_ignore(tmp_path):
    # Started together: each is refused after its imports, before any data is read or anything written.
    procs = {name: _start(name, args, tmp_path) for name, (args, _) in REFUSED.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, err[-2000:])
        for words in REFUSED[name][1]:
            assert words in lines[0], (name, words, lines[0])
        assert not (tmp_path / name).exists(), name


CODES = {
    "gmm": ["--n_init=1", "--covariance_type=diag", "--init_params=random"],  # no k-means to compile
    "choose_k": ["--k_min=2", "--k_max=2", "--n_init=1", "--silhouette_sample_size=300", "--covariance_type=diag"],
    "spherical_kmeans": ["--n_init=1"],
    # The notes' picture: t-SNE of the codes of a random subset, drawn with the subset's digits.
    "tsne_dbscan": ["--max_samples=300", "--perplexity=10", "--n_iter=100", "--exaggeration_iter=50"]
    + ["--sweep_perplexities="],
}


def test_binaries_cluster_and_embed_the_codes_of_pretrained(encoder, tmp_path):
    procs = {name: _start(name, [f"--pretrained={encoder}", *args], tmp_path) for name, args in CODES.items()}
    results = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, (name, err[-3000:])
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
        assert results[name]["features"] == "pretrained", name
        assert results[name]["n_features"] == CODE_DIM and results[name]["pretrained"] == str(encoder), name
    assert np.asarray(checkpointing.load_pytree(tmp_path / "gmm" / "ckpt")["gmm"]["means_kd"]).shape == (10, 4)
    assert checkpointing.load_config(tmp_path / "spherical_kmeans" / "ckpt")["features"] == "pretrained"
    assert results["choose_k"]["ks"] == [2] and results["choose_k"]["n_samples"] == 1797

    wd = tmp_path / "tsne_dbscan"
    assert results["tsne_dbscan"]["n_samples"] == 300 and results["tsne_dbscan"]["max_samples"] == 300
    rows = np.asarray(checkpointing.load_pytree(wd / "ckpt")["rows"])
    assert rows.shape == (300,) and np.all(np.diff(rows) > 0) and rows[-1] < 1797
    assert np.load(wd / "embedding.npy").shape == (300, 2) and np.load(wd / "labels.npy").shape == (300,)
    assert "acc" in results["tsne_dbscan"]  # scored against the subset's own labels
    assert (wd / "plots" / "thumbnails.png").stat().st_size > 10_000
