"""A finished run's fitted model, back as a scikit-learn estimator: `research.load(workdir)`.

    model = research.load("checkpoints/kmeans/mnist-seed0")   # estimators.KMeans, fitted
    labels = model.predict(x_new)                              # [n]; predict_proba / transform where they apply

What comes back, by the binary that wrote the workdir (config.json's "experiment"): `estimators.KMeans`,
`MiniBatchKMeans`, `SphericalKMeans` or `GaussianMixture`; a scikit-learn `Pipeline` when the run had a feature
stage first (`PCA`, or an autoencoder's `Encoder`); `SavedSOM` (predict: the cluster of the best-matching
unit); `Encoder` alone for an autoencoder run (transform: its codes); `SavedDEC` for DEC and its variants
(predict, predict_proba, transform). Each object's predict/transform is its estimator's, on the saved params.
`open_run` gives the model with what a caller checks new data against (the features and image shape it
expects). A linear_probe run gives `SavedProbe` (a LinearProbe whose predict gives the run's label values, or
True/False for an "is it P" probe), after its features (PCA, Encoder) and scaling (StandardScaler) when it had them.
Runs with no model for new rows (choose_k, manifold_cluster, tsne_dbscan, cluster_images),
unfinished runs and workdirs missing a saved file are refused with a ValueError or FileNotFoundError that names
the path and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.pipeline import Pipeline

from research import checkpointing, estimators, runlog
from research.cluster import gmm
from research.deep import pretrain

__all__ = ["Encoder", "SavedDEC", "SavedProbe", "SavedRun", "SavedSOM", "check_input", "load", "open_run"]

# The binaries whose outputs hold no model that can take new rows, and what to use instead.
_NO_MODEL = {
    "choose_k": "compares k-means and mixtures over a range of K and keeps no single model; run experiments.kmeans "
    "or experiments.gmm with the K it suggests, then predict with that run",
    "manifold_cluster": "clusters a UMAP-style embedding fitted to its training rows only, which cannot place new "
    "points; for new data use a model with a transform: experiments.gmm --pca_components, ae_kmeans or dec",
    "tsne_dbscan": "clusters a t-SNE picture of its training rows only, which cannot place new points; for new "
    "data use a model with a transform: experiments.gmm --pca_components, ae_kmeans or dec",
    "cluster_images": "sorts a folder's images and saves no model; run experiments.cluster_images on the new images",
    "pipeline": "ends in a UMAP-style embedding fitted to its training rows only (its manifold/ stage), which cannot "
    "place new points; predict with --workdir=<workdir>/autoencoder gives new data's codes; to cluster new data use a "
    "model with a transform on those codes: experiments.ae_kmeans or dec --pretrained=<workdir>/autoencoder",
}


class SavedRun(NamedTuple):
    """A finished run's model and what new data must match.

    model: the fitted estimator or Pipeline (`load`'s answer).
    experiment: the binary that wrote the run (config.json's "experiment").
    config: config.json, every flag of the run.
    n_features: the columns the model takes.
    image_shape: the training images' (H, W[, C]), when the run recorded them (runs with an autoencoder), else None.
    """

    model: object
    experiment: str
    config: dict
    n_features: int
    image_shape: tuple | None


def load(workdir):
    """The fitted model of the finished run in `workdir` (see the module docstring for what each binary gives)."""
    return open_run(workdir).model


def open_run(workdir) -> SavedRun:
    """The model of the finished run in `workdir` with its config and expected input (a SavedRun)."""
    wd = Path(workdir)
    config = _run_config(wd)
    experiment = config.get("experiment")
    if experiment in _NO_MODEL:
        raise ValueError(f"{wd} is a {experiment} run, which {_NO_MODEL[experiment]}.")
    if experiment not in _LOADERS:
        known = ", ".join(sorted(_LOADERS))
        raise ValueError(f"{wd} was written by {experiment!r}, whose model cannot be loaded; runs of {known} can.")
    model = _LOADERS[experiment](wd, config)
    return SavedRun(model, experiment, config, int(model.n_features_in_), _trained_images(model))


def check_input(run: SavedRun, x, image_shape=None, source: str = "the data") -> None:
    """Refuses x [n, d] (from `source`) that the run's model cannot take: another number of features, or images
    of another shape than the training images'; the message names both shapes."""
    d = np.shape(x)[1] if np.ndim(x) == 2 else None
    trained = f" ({_shape_text(run.image_shape)} images)" if run.image_shape else ""
    if d != run.n_features:
        given = f" ({_shape_text(image_shape)} images)" if image_shape else ""
        raise ValueError(
            f"{source} has shape {tuple(np.shape(x))}: {d} features{given}, but the {run.experiment} model was "
            f"trained on {run.n_features} features{trained}; give data of the training run's kind."
        )
    if run.image_shape and image_shape and tuple(image_shape) != tuple(run.image_shape):
        raise ValueError(
            f"{source} holds {_shape_text(image_shape)} images, but the {run.experiment} model was trained on "
            f"{_shape_text(run.image_shape)} images; resize them to the training run's shape."
        )


def _shape_text(shape) -> str:
    return "x".join(str(s) for s in shape)


# --- reading a workdir ------------------------------------------------------------------------------------------


def _run_config(wd: Path) -> dict:
    """config.json of a finished run in wd; refuses a folder that is no run, or an unfinished one."""
    if not wd.is_dir():
        raise FileNotFoundError(f"{wd} is not a folder; point --workdir at a finished run's workdir.")
    if not (wd / "config.json").is_file():
        raise FileNotFoundError(f"{wd} is not a run's workdir (it has no config.json); point at a finished run.")
    if not (wd / "results.json").is_file():
        raise ValueError(
            f"{wd} holds an unfinished run (no results.json); finish it first (the same command resumes it)."
        )
    return runlog.read_json(wd / "config.json")


def _need(path: Path, what: str) -> Path:
    """path, or FileNotFoundError naming it and what it should hold (a run of an older version lacks it)."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the run saved no {what} (an older version, or a file removed); rerun it to "
            "save its model."
        )
    return path


def _params(wd: Path) -> tuple[dict, dict]:
    """(params, config) of the fitted model a clustering binary saved in wd/ckpt."""
    path = _need(wd / "ckpt", "fitted model (ckpt/)")
    return checkpointing.load_pytree(path), checkpointing.load_config(path)


def _part(params: dict, name: str, wd: Path):
    """params[name], or ValueError naming the checkpoint and the missing entry."""
    if name not in params:
        raise ValueError(
            f"{wd / 'ckpt'} has no {name!r} (it holds {sorted(params)}): written by another version; rerun the run."
        )
    return params[name]


def _labels(wd: Path):
    """The run's own labels (labels.npy) when it saved them, else None."""
    path = wd / "labels.npy"
    return np.load(path) if path.is_file() else None


def _fitted(estimator, n_features: int, **attributes):
    """`estimator` with its fitted attributes set (n_features_in_ among them), as `fit` would have left them."""
    for name, value in {"n_features_in_": int(n_features), **attributes}.items():
        setattr(estimator, name, value)
    return estimator


def _encoder(workdir: Path) -> Encoder:
    """The Encoder of the autoencoder (or DEC) run saved in workdir/model."""
    _need(Path(workdir) / pretrain.MODEL_DIR, "trained autoencoder (model/)")
    model, params, spec = pretrain.load_model(workdir)
    return _fitted(Encoder(), spec["input_dim"], model_=model, params_=params, spec_=spec)


def _trained_images(model):
    """The image shape of the rows a model takes, when its first stage is a network that recorded it."""
    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    shape = getattr(first, "spec_", {}).get("image_shape")
    return None if shape is None else tuple(shape)


def _pretrained_dir(wd: Path, given) -> Path:
    """The autoencoder a run encoded with: its --pretrained (as given, from where it ran) or its own autoencoder/."""
    path = Path(given) if given else wd / "autoencoder"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{wd} encoded its data with the autoencoder in {path}, which is not there (a relative --pretrained "
            "is read from the current folder); run from where the run ran, or restore that folder."
        )
    return path


# --- the models -------------------------------------------------------------------------------------------------


class Encoder(estimators._Transformer, estimators._Estimator):
    """A saved autoencoder's encoder as a scikit-learn transformer: transform(X [n, d]) -> codes [n, latent].

    Loaded, not fitted here (`fit` refuses). Fitted attributes: model_ (the flax module), params_, spec_ (what
    rebuilt it: arch, input_dim, image_shape, ...), n_features_in_.
    """

    def fit(self, X, y=None):
        raise ValueError("Encoder is loaded from a run (research.load), not fitted; train experiments.autoencoder.")

    def _params(self):
        return self.params_

    def transform(self, X):
        return self._apply(lambda params, x: pretrain.encode(self.model_, params, x), X)


class SavedDEC(estimators.DEC):
    """estimators.DEC over the network a run saved (any architecture: dense or convolutional)."""

    def _model(self, n_features: int):
        return self.model_


class SavedSOM(estimators.SOM):
    """estimators.SOM whose predict gives the cluster of each row's best-matching unit, as the som binary's
    labels; `winner` gives the unit itself. unit_labels_: [rows, cols] the cluster of each unit."""

    def winner(self, X):
        return super().predict(X)

    def predict(self, X):
        return self.unit_labels_.reshape(-1)[self.winner(X)]


def _pca(params: dict, wd: Path) -> estimators.PCA:
    p = _part(params, "pca", wd)
    return _fitted(
        estimators.PCA(n_components=len(p["components_cd"]), whiten=bool(p["whiten"])),
        p["mean_d"].shape[0],
        mean_=p["mean_d"],
        components_=p["components_cd"],
        explained_variance_=p["explained_variance_c"],
        explained_variance_ratio_=p["explained_variance_ratio_c"],
        singular_values_=p["singular_values_c"],
        noise_variance_=float(p["noise_variance"]),
        n_components_=len(p["components_cd"]),
    )


def _centroids(cls, wd: Path, params: dict, labels, **kwargs):
    """A k-means-family estimator of class `cls` on the saved centroids."""
    c = np.asarray(_part(params, "centroids", wd), np.float32)
    results = runlog.read_json(wd / "results.json")
    return _fitted(
        cls(n_clusters=len(c), **kwargs),
        c.shape[1],
        cluster_centers_=c,
        labels_=labels,
        inertia_=results.get("inertia"),
        n_iter_=results.get("n_iter"),
        converged_=results.get("converged"),
    )


def _pipeline(*stages):
    """The stages that are not None as a Pipeline, or the one stage alone."""
    stages = [s for s in stages if s is not None]
    if len(stages) == 1:
        return stages[0]
    return Pipeline([(type(s).__name__.lower(), s) for s in stages])


def _features(wd: Path, params: dict, ckpt_config: dict, config: dict, default: str = "pixels"):
    """The feature stage a run fitted its model on (None for the rows as loaded), from its checkpoint's
    `features` entry (runs before it: a saved PCA, else `default`)."""
    kind = ckpt_config.get("features") or ("pca" if "pca" in params else default)
    if kind == "pixels":
        return None
    if kind == "pca":
        return _pca(params, wd)
    if kind == "pretrained":
        return _encoder(_pretrained_dir(wd, ckpt_config.get("pretrained") or config.get("pretrained")))
    raise ValueError(
        f"{wd / 'ckpt'} records features {kind!r}, which cannot be rebuilt here; predict knows "
        "pixels, pca and pretrained codes."
    )


def _kmeans(wd: Path, config: dict):
    params, ckpt_config = _params(wd)
    cls = estimators.MiniBatchKMeans if config.get("minibatch_size") else estimators.KMeans
    return _pipeline(_features(wd, params, ckpt_config, config), _centroids(cls, wd, params, _labels(wd)))


def _spherical_kmeans(wd: Path, config: dict):
    params, ckpt_config = _params(wd)
    model = _centroids(estimators.SphericalKMeans, wd, params, _labels(wd))
    return _pipeline(_features(wd, params, ckpt_config, config), model)


def _ae_kmeans(wd: Path, config: dict):
    params, ckpt_config = _params(wd)
    model = _centroids(estimators.KMeans, wd, params, _labels(wd))
    return _pipeline(_features(wd, params, ckpt_config, config, default="pretrained"), model)


def _gmm(wd: Path, config: dict):
    params, ckpt_config = _params(wd)
    p = gmm.GMMParams(**_part(params, "gmm", wd))
    kind = ckpt_config.get("covariance_type", config.get("covariance_type", "full"))
    tied = kind == "tied"  # the library keeps a leading axis of 1 there; scikit-learn's shapes do not
    u = p.precisions_cholesky[0] if tied else p.precisions_cholesky
    results = runlog.read_json(wd / "results.json")
    mixture = _fitted(
        estimators.GaussianMixture(len(p.weights_k), covariance_type=kind),
        p.means_kd.shape[1],
        weights_=p.weights_k,
        means_=p.means_kd,
        covariances_=p.covariances[0] if tied else p.covariances,
        precisions_cholesky_=u,
        precisions_=u @ np.swapaxes(u, -1, -2) if u.ndim >= 2 and kind != "diag" else u**2,
        lower_bound_=results.get("lower_bound"),
        n_iter_=results.get("n_iter"),
        converged_=results.get("converged"),
        labels_=_labels(wd),
    )
    return _pipeline(_features(wd, params, ckpt_config, config), mixture)


def _som(wd: Path, config: dict):
    params, _ = _params(wd)
    codebook = np.asarray(_part(params, "codebook", wd), np.float32)
    rows, cols, d = codebook.shape
    return _fitted(
        SavedSOM(grid=(rows, cols)),
        d,
        codebook_=codebook,
        cluster_centers_=codebook.reshape(-1, d),
        unit_labels_=np.asarray(_part(params, "unit_labels", wd)),
        labels_=_labels(wd),
    )


def _autoencoder(wd: Path, config: dict):
    return _encoder(wd)


def _dec(wd: Path, config: dict):
    params, ckpt_config = _params(wd)
    encoder = _encoder(wd)  # model/: DEC's trained autoencoder
    centroids = np.asarray(_part(params, "centroids", wd), np.float32)
    return _fitted(
        SavedDEC(len(centroids), alpha=float(ckpt_config.get("alpha", 1.0))),
        encoder.n_features_in_,
        model_=encoder.model_,
        params_={"ae": encoder.params_, "centroids": centroids},
        spec_=encoder.spec_,
        cluster_centers_=centroids,
        labels_=_labels(wd),
    )


class SavedProbe(estimators.LinearProbe):
    """estimators.LinearProbe over a run's weights. classes_: the label values (a table's as written), or
    [False, True] for an "is it P" probe (positive_class_ = P). `targets(y)` turns the dataset's labels (class
    indices, as research.data gives them) into what predict answers, for scoring."""

    def targets(self, y):
        y = np.asarray(y)
        if self.positive_class_ is not None:
            return y == self.positive_class_
        return np.asarray(self.label_values_)[y] if self.label_values_ is not None else y


def _scaler(params: dict):
    """The StandardScaler of a probe run's --standardize (training mean and scale), or None without it."""
    if "standardize" not in params:
        return None
    from sklearn.preprocessing import StandardScaler

    mean, scale = (np.asarray(params["standardize"][k], np.float64) for k in ("mean", "scale"))
    return _fitted(StandardScaler(), len(mean), mean_=mean, scale_=scale, var_=scale**2, n_samples_seen_=0)


def _linear_probe(wd: Path, config: dict):
    params, ckpt_config = _params(wd)
    p = _part(params, "probe", wd)
    W_dc, b_c = np.asarray(p["W_dc"], np.float32), np.asarray(p["b_c"], np.float32)
    classes = ckpt_config["classes"]
    results = runlog.read_json(wd / "results.json")
    model = _fitted(
        SavedProbe(C=float(ckpt_config.get("C", 1.0))),
        W_dc.shape[0],
        coef_=W_dc.T,
        intercept_=b_c,
        classes_=np.asarray(classes),
        positive_class_=ckpt_config.get("positive_class"),
        label_values_=ckpt_config.get("label_values"),
        n_iter_=results.get("n_iter"),
        converged_=results.get("converged"),
    )
    return _pipeline(_features(wd, params, ckpt_config, config), _scaler(params), model)


_LOADERS = {
    "kmeans": _kmeans,
    "spherical_kmeans": _spherical_kmeans,
    "pca_kmeans": _kmeans,
    "gmm": _gmm,
    "som": _som,
    "autoencoder": _autoencoder,
    "ae_kmeans": _ae_kmeans,
    "dec": _dec,
    "idec": _dec,
    "linear_probe": _linear_probe,
}
