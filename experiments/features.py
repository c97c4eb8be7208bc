"""Features for the binaries that cluster, embed or probe something other than the raw rows.

The one place for: the `--pretrained` flag (a finished autoencoder run whose encoder gives the features),
`--features` / `--pca_components` (`define_flags`, for the binaries that cluster or embed), loading that
encoder, PCA, and the `features` entry of results.json. Every extractor is fitted on one matrix (e.g. the
training images) and applied to it and to any others (e.g. the test images), so nothing is learnt from
held-out data.

    cfg = features.config_from_flags()                # in main(): pixels, pca or pretrained (codes)
    (z,), params, info = features.extract(cfg, key, ds.x, dataset=ds.name)
    results |= info                                   # {"features": "pretrained", "n_features": 10, ...}
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from absl import flags, logging

from research import augment, cli, data
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
DEFAULT_PCA = 50


@dataclasses.dataclass(frozen=True)
class Config:
    """What a binary works on: kind "pixels" (the rows as loaded), "pca" (their `pca_components` principal
    components) or "pretrained" (the codes of the encoder saved in the `pretrained` workdir)."""

    kind: str = "pixels"
    pca_components: int = DEFAULT_PCA
    pretrained: str | None = None


def define_flags(flag_values=FLAGS, kinds=KINDS) -> None:
    """Defines --features and --pca_components (call once, at a clustering or embedding binary's import); the
    combinations of them and --pretrained that would leave one unused are refused when the flags are parsed.
    `kinds`: KINDS, plus "autoencoder" in a binary that trains one itself (cluster_images; the codes of the
    encoder it trained are then extracted as Config("autoencoder", pretrained=<its workdir>))."""
    trains = " or autoencoder (the codes of an autoencoder trained on them first)" if "autoencoder" in kinds else ""
    flags.DEFINE_enum(
        "features",
        None,
        list(kinds),
        f"What to cluster: pixels (the rows as loaded), pca (their --pca_components principal components){trains}. "
        "Default: the codes of --pretrained when it is given, pca when --pca_components is, else pixels.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "pca_components",
        None,
        f"Principal components of the rows (giving it implies --features=pca). Default: {DEFAULT_PCA}.",
        flag_values=flag_values,
    )
    cli.at_least("pca_components", 1, "leave it unset for no PCA", flag_values)
    names = ["features", "pca_components", "pretrained"]
    flags.register_multi_flags_validator(names, _one_source, flag_values=flag_values)


def _one_source(values) -> bool:
    """Refuses --features or --pca_components beside --pretrained, and --pca_components with --features=pixels."""
    kind, n, pretrained = values["features"], values["pca_components"], values["pretrained"]
    if pretrained and (kind or n is not None):
        given = f"--features={kind}" if kind else "--pca_components"
        raise flags.ValidationError(
            f"{given} does not apply to the codes of --pretrained; drop it to cluster the codes, or drop --pretrained"
        )
    if kind not in (None, "pca") and n is not None:
        raise flags.ValidationError("--pca_components applies only with --features=pca; drop one of the two")
    return True


def config_from_flags(flag_values=FLAGS) -> Config:
    """The Config of --features, --pca_components and --pretrained (call from main() only)."""
    if flag_values.pretrained:
        return Config("pretrained", pretrained=flag_values.pretrained)
    n = flag_values.pca_components
    return Config(flag_values.features or ("pca" if n else "pixels"), n or DEFAULT_PCA)


def name(cfg: Config) -> str:
    """A short name of the features for titles: "pixels", "PCA-50" or "autoencoder codes"."""
    names = {"pixels": "pixels", "pca": f"PCA-{cfg.pca_components}", "pretrained": "autoencoder codes"}
    return names.get(cfg.kind, f"{cfg.kind} codes")


def describe(cfg: Config, dim: int) -> dict:
    """The results.json entries that say what was clustered, in every binary's words: `features` (the kind),
    `n_features` (their dimension) and `pca_components` or the encoder's workdir, `pretrained`."""
    extra = {"pca": {"pca_components": cfg.pca_components}, "pretrained": {"pretrained": str(cfg.pretrained)}}
    extra["autoencoder"] = extra["pretrained"]
    return {"features": cfg.kind, "n_features": int(dim), **extra.get(cfg.kind, {})}


def extract(cfg: Config, key, fit_x, *others, dataset: str | None = None):
    """The features of fit_x and of each of `others`: ([z_fit, *z_others], params, info).

    params: what a checkpoint keeps to redo them ({"pca": {...}} for PCA, else nothing); info: results.json's
    entries, `describe`'s and the PCA's explained variance and seconds. `key` is used by the
    randomized PCA solver only; `dataset` names the data for the warning about an encoder trained on other data.
    """
    xs = (fit_x, *others)
    if cfg.kind in ("pretrained", "autoencoder"):  # autoencoder: one the binary trained into cfg.pretrained
        model, params, _ = load_encoder(cfg.pretrained, input_dim=np.shape(fit_x)[1], dataset=dataset)
        out, kept, info = [pretrain.encode(model, params, x) for x in xs], {}, {}
    elif cfg.kind == "pca":
        key = jax.random.key(0) if key is None else key
        out, p, info = pca_features(key, *xs, n_components=cfg.pca_components)
        kept = {"pca": {k: np.asarray(v) for k, v in p._asdict().items()}}
    elif cfg.kind == "pixels":
        # Pixels as they are: a memory-mapped file or PixelRows is read where the fit reads it.
        out = [x if isinstance(x, data.PixelRows) else np.asarray(x, np.float32) for x in xs]
        kept, info = {}, {}
    else:
        raise ValueError(f"unknown features {cfg.kind!r}; valid: {', '.join(KINDS)} or --pretrained=<workdir>.")
    return out, kept, describe(cfg, np.shape(out[0])[1]) | info


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


def pca_features(key, fit_x, *others, n_components: int):
    """PCA fitted on fit_x, applied to every input: ([z_fit, *z_others], PCAResult, info for results.json)."""
    t0 = time.perf_counter()
    p = pca.fit(key, fit_x, n_components)
    out = [np.asarray(pca.transform(p, x), np.float32) for x in (fit_x, *others)]
    explained = float(np.sum(np.asarray(p.explained_variance_ratio_c)))
    logging.info("PCA to %d components: %.1f%% of the variance", n_components, 100 * explained)
    return out, p, {"pca_explained_variance": explained, "pca_seconds": time.perf_counter() - t0}


def compute(kind: str, fit_x, *others, key=None, pca_components: int = DEFAULT_PCA, pretrained=None):
    """Features of fit_x and of each of `others`: ([z_fit, *z_others], info dict for results.json).

    kind: "pixels" or "pca" (`pca_components` components fitted on fit_x); `pretrained` (a run's workdir), when
    given, takes precedence over kind (the binaries of `define_flags` refuse both at once). The info holds the
    PCA's entries or the encoder's workdir; `extract` also describes the features.
    """
    out, _, info = _extract_kind(kind, key, fit_x, *others, pca_components=pca_components, pretrained=pretrained)
    return out, info


def _extract_kind(kind: str, key, *xs, pca_components: int, pretrained):
    """`extract` by kind (`pretrained` taking precedence), with `compute`'s info: (outputs, params, info)."""
    cfg = Config("pretrained", pretrained=str(pretrained)) if pretrained else Config(kind, pca_components)
    out, kept, info = extract(cfg, key, *xs)
    return out, kept, {k: info[k] for k in ("pca_explained_variance", "pca_seconds", "pretrained") if k in info}


def standardization(fit_z) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) [D] float64 of fit_z's columns; a constant column's scale is 1 (it is only centred)."""
    std = fit_z.std(axis=0, dtype=np.float64)
    return fit_z.mean(axis=0, dtype=np.float64), np.where(std > 0, std, 1.0)


def standardize(fit_z, *others, stats=None):
    """Scales every column to zero mean and unit variance with fit_z's statistics (constant columns: centred);
    `stats`: (mean, scale) of `standardization` when already computed."""
    mean, scale = standardization(fit_z) if stats is None else stats
    return [((z - mean) / scale).astype(np.float32) for z in (fit_z, *others)]


def train_test(
    kind: str, train, test, *, key=None, pca_components=50, pretrained=None, shift=False, standardized=False
):
    """Features of a train and a test Dataset as `compute` makes them, fitted on the training rows: (z_train,
    y_train, z_test, info, params). shift: the training images' 1-pixel shifts follow them (5x the rows, laid out
    as augment.shift_augment lays them); standardized: scaled with the training statistics (`standardize`).
    params: what redoes the features on new rows: the PCA's ({"pca": ...}, as `extract`'s) and the scaling's
    ({"standardize": {"mean", "scale"}})."""
    x, y = train.x, train.y
    if shift:
        x, y = (np.asarray(a) for a in augment.shift_augment(train.x, train.y, train.image_shape))
        logging.info("shift augmentation: %d -> %d training rows", len(train.x), len(x))
    (z_train, z_test), params, info = _extract_kind(
        kind, key, x, test.x, pca_components=pca_components, pretrained=pretrained
    )
    if standardized:
        mean, scale = standardization(z_train)
        z_train, z_test = standardize(z_train, z_test, stats=(mean, scale))
        params = {**params, "standardize": {"mean": mean, "scale": scale}}
    return z_train, y, z_test, info, params
