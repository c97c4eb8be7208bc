"""Features for the binaries that cluster or probe something other than the raw rows.

One place for: the `--pretrained` flag (a finished autoencoder run whose encoder gives the
features), loading that encoder, and PCA. Every extractor is fitted on one matrix (e.g. the
training images) and applied to it and to any others (e.g. the test images), so nothing is
learnt from held-out data.
"""

from __future__ import annotations

import time

import numpy as np
from absl import flags, logging

from research import augment
from research.deep import pretrain
from research.embed import pca

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "pretrained",
    None,
    "Workdir of a finished experiments.autoencoder run whose encoder gives the features (pretrain once, "
    "branch many ablations).",
)

KINDS = ("pixels", "pca")


def load_encoder(workdir, input_dim: int | None = None, dataset: str | None = None):
    """(model, params, spec) of the autoencoder saved in `workdir`; checks it takes `input_dim` features."""
    model, params, spec = pretrain.load_model(workdir)
    if input_dim is not None and spec["input_dim"] != input_dim:
        raise ValueError(
            f"--pretrained={workdir} encodes {spec['input_dim']} features, but the data has {input_dim}. "
            "Pretrain on this data (python -m experiments.autoencoder) or point --pretrained at a matching run."
        )
    if dataset is not None and spec.get("dataset") not in (None, dataset):
        logging.warning("--pretrained was trained on %s, now applied to %s.", spec.get("dataset"), dataset)
    logging.info("encoder from %s (%s, trained on %s)", workdir, spec["arch"], spec.get("dataset"))
    return model, params, spec


def pretrained_features(workdir, fit_x, *others):
    """The codes of fit_x and of each of `others` under the encoder saved in `workdir`."""
    model, params, _ = load_encoder(workdir, input_dim=np.shape(fit_x)[1])
    return [pretrain.encode(model, params, x) for x in (fit_x, *others)]


def pca_features(key, fit_x, *others, n_components: int):
    """PCA fitted on fit_x, applied to every input: ([z_fit, *z_others], PCAResult, info for results.json)."""
    t0 = time.perf_counter()
    p = pca.fit(key, fit_x, n_components)
    out = [np.asarray(pca.transform(p, x), np.float32) for x in (fit_x, *others)]
    explained = float(np.sum(np.asarray(p.explained_variance_ratio_c)))
    logging.info("PCA to %d components: %.1f%% of the variance", n_components, 100 * explained)
    return out, p, {"pca_explained_variance": explained, "pca_seconds": time.perf_counter() - t0}


def optional_pca(key, x, n_components: int):
    """(z, params, info): x as float32 when n_components is 0, else its PCA, whose params are {"pca": {...}} (for
    a checkpoint) and info its results.json entries."""
    if not n_components:
        return np.asarray(x, np.float32), {}, {}
    (z,), p, info = pca_features(key, x, n_components=n_components)
    return z, {"pca": {name: np.asarray(v) for name, v in p._asdict().items()}}, info


def compute(kind: str, fit_x, *others, key=None, pca_components: int = 50, pretrained=None):
    """Features of fit_x and of each of `others`: ([z_fit, *z_others], info dict for results.json).

    kind: "pixels" (the rows as they are) or "pca" (`pca_components` components fitted on
    fit_x; `key` is used by the randomized solver only). `pretrained` (a run's workdir), when
    given, takes precedence over kind.
    """
    if pretrained:
        return pretrained_features(pretrained, fit_x, *others), {"pretrained": str(pretrained)}
    if kind == "pixels":
        return [np.asarray(x, np.float32) for x in (fit_x, *others)], {}
    if kind == "pca":
        import jax

        out, _, info = pca_features(
            jax.random.key(0) if key is None else key, fit_x, *others, n_components=pca_components
        )
        return out, info
    raise ValueError(f"unknown features {kind!r}; valid: {', '.join(KINDS)} or --pretrained=<workdir>.")


def standardize(fit_z, *others):
    """Scales every column to zero mean and unit variance with fit_z's statistics (constant columns: centred)."""
    mean = fit_z.mean(axis=0, dtype=np.float64)
    std = fit_z.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return [((z - mean) / std).astype(np.float32) for z in (fit_z, *others)]


def train_test(
    kind: str, train, test, *, key=None, pca_components=50, pretrained=None, shift=False, standardized=False
):
    """Features of a train and a test Dataset as `compute` makes them, fitted on the training rows: (z_train,
    y_train, z_test, info). shift: the training images' 1-pixel shifts follow them (5x the rows, laid out as
    augment.shift_augment lays them); standardized: scaled with the training statistics (`standardize`)."""
    x, y = train.x, train.y
    if shift:
        x, y = (np.asarray(a) for a in augment.shift_augment(train.x, train.y, train.image_shape))
        logging.info("shift augmentation: %d -> %d training rows", len(train.x), len(x))
    (z_train, z_test), info = compute(kind, x, test.x, key=key, pca_components=pca_components, pretrained=pretrained)
    if standardized:
        z_train, z_test = standardize(z_train, z_test)
    return z_train, y, z_test, info
