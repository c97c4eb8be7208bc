"""scikit-learn estimators over the library's jitted fits: `fit`, `predict`, `transform`, in Pipelines and searches.

    from research.estimators import KMeans, PCA
    km = KMeans(n_clusters=10, random_state=0).fit(x_nd)    # km.cluster_centers_ [10, d], km.labels_ [n]
    make_pipeline(StandardScaler(), PCA(n_components=5), KMeans(n_clusters=3)).fit_predict(x_nd)

Each class is a thin wrapper: `__init__` stores its arguments, `fit` checks the input with scikit-learn's
`validate_data` (shape, dtype float32, `n_features_in_`, `feature_names_in_`) and calls the library's `fit`,
whose own checks (finite values, 1 <= k <= n, option names) raise the errors. `random_state` becomes the key
`jax.random.key(seed)`: None is seed 0 (so refitting gives the same bits), an int is the seed, a NumPy
RandomState or Generator draws the seed. Fitted attributes end in `_` and are NumPy arrays, so an estimator
pickles and its outputs are NumPy. Outputs are float32, the library's precision.

Which scikit-learn checks cannot apply, and why: tests/test_estimators.py. Guide: docs/library.md.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin, DensityMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from research import probe
from research.cluster import dbscan, gmm, kmeans, minibatch_kmeans, som, spherical_kmeans
from research.deep import dec, pretrain
from research.embed import pca, tsne
from research.nets.mlp import MLPAutoencoder

__all__ = [
    "DBSCAN",
    "DEC",
    "IDEC",
    "PCA",
    "SOM",
    "GaussianMixture",
    "KMeans",
    "LinearProbe",
    "MiniBatchKMeans",
    "NeighbourEmbedding",
    "SphericalKMeans",
]

_SEED_BOUND = 2**31 - 1


def seed_of(random_state) -> int:
    """The integer seed of a `random_state`: None -> 0; an int in [0, 2**32) as is; a NumPy RandomState or
    Generator -> an int drawn from it (advancing it, as scikit-learn does)."""
    if random_state is None:
        return 0
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= int(random_state) < 2**32:
            raise ValueError(f"random_state must be in [0, 2**32), got {random_state}; use a smaller seed.")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(_SEED_BOUND))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(_SEED_BOUND))
    raise ValueError(
        f"random_state must be None, an int or a NumPy RandomState/Generator, got {type(random_state).__name__}; "
        "pass an int seed."
    )


def _key(random_state):
    return jax.random.key(seed_of(random_state))


def _host(tree):
    """Every array of a pytree as a NumPy array (picklable, what scikit-learn's checks expect)."""
    return jax.tree.map(np.asarray, tree)


class _Estimator(BaseEstimator):
    """Input handling shared by every estimator here."""

    def _x(self, X, *, reset: bool):
        """X as a float32 matrix; sets (reset) or checks n_features_in_ / feature_names_in_. Finite values are
        left to the library's checks, so their messages are the ones users see."""
        if not reset:
            check_is_fitted(self)
        return validate_data(self, X, reset=reset, dtype=np.float32, ensure_all_finite=False)

    def _apply(self, fn, X):
        """fn(fitted parameters, X) as NumPy, after checking that the estimator is fitted and X fits it."""
        x = self._x(X, reset=False)
        return np.asarray(fn(self._params(), x))


class _Transformer(TransformerMixin):
    """scikit-learn's TransformerMixin, with the library's float32 outputs declared in the tags."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


# --- k-means family ---------------------------------------------------------------------------------------------


class _Centroids(ClusterMixin, _Estimator):
    """Fitted attributes of a k-means result: cluster_centers_, labels_, inertia_, n_iter_, converged_."""

    def _params(self):
        return self.cluster_centers_

    def _store(self, res: kmeans.KMeansResult):
        self.cluster_centers_ = np.asarray(res.centroids)
        self.labels_ = np.asarray(res.labels)
        self.inertia_ = float(res.inertia)
        self.n_iter_ = int(res.n_iter)
        self.converged_ = bool(res.converged)
        return self


class KMeans(_Transformer, _Centroids):
    """k-means (`research.cluster.kmeans.fit`): k-means++ seeding, `n_init` fused restarts, Lloyd iterations.

    `transform` gives the Euclidean distances to the centres [n, k]; `score` is minus the inertia of X.
    prune=False skips Hamerly's bounds: the same labels, a smaller program to compile (tiny data).
    """

    def __init__(
        self, n_clusters=8, *, init="k-means++", n_init=10, max_iter=300, tol=1e-4, prune=True, random_state=None
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.prune = prune
        self.random_state = random_state

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        res = kmeans.fit(
            _key(self.random_state),
            x,
            self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            init=self.init,
            prune=self.prune,
        )
        return self._store(res)

    def predict(self, X):
        return self._apply(kmeans.predict, X)

    def transform(self, X):
        return self._apply(kmeans.transform, X)

    def score(self, X, y=None):
        """Minus the sum of squared distances of X to its nearest centres (higher is better)."""
        return -float(np.sum(np.min(self.transform(X), axis=1).astype(np.float64) ** 2))


class SphericalKMeans(_Centroids):
    """Spherical k-means (`research.cluster.spherical_kmeans.fit`): cosine similarity, unit centres.

    Rows of norm 0 have no direction and raise ValueError; inertia_ is the summed cosine distance.
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init=10, max_iter=300, tol=1e-4, random_state=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        res = spherical_kmeans.fit(
            _key(self.random_state),
            x,
            self.n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            init=self.init,
        )
        return self._store(res)

    def predict(self, X):
        return self._apply(spherical_kmeans.predict, X)


class MiniBatchKMeans(_Transformer, _Centroids):
    """Mini-batch k-means (`research.cluster.minibatch_kmeans.fit`). `transform` and `score` as `KMeans`.

    A `batch_size` larger than the data takes all of it per step. X is converted to float32 in memory; for data
    larger than memory call `minibatch_kmeans.fit` on the memory-mapped array directly.
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        batch_size=1024,
        n_init=3,
        max_iter=100,
        max_no_improvement=10,
        tol=0.0,
        reassignment_ratio=0.01,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.batch_size = batch_size
        self.n_init = n_init
        self.max_iter = max_iter
        self.max_no_improvement = max_no_improvement
        self.tol = tol
        self.reassignment_ratio = reassignment_ratio
        self.random_state = random_state

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        res = minibatch_kmeans.fit(
            _key(self.random_state),
            x,
            self.n_clusters,
            batch_size=_at_most(self.batch_size, len(x)),
            n_init=self.n_init,
            max_iter=self.max_iter,
            max_no_improvement=self.max_no_improvement,
            tol=self.tol,
            init=self.init,
            reassignment_ratio=self.reassignment_ratio,
        )
        return self._store(res)

    predict = KMeans.predict
    transform = KMeans.transform
    score = KMeans.score


def _at_most(value, n: int):
    """`value` capped at n when it is a number (anything else goes to the library's checks as it is)."""
    return min(value, n) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


# --- mixtures ---------------------------------------------------------------------------------------------------


class GaussianMixture(DensityMixin, _Estimator):
    """A Gaussian mixture fitted by EM (`research.cluster.gmm.fit`), with scikit-learn's attribute shapes.

    Fitted: weights_ [k], means_ [k, d], covariances_ and precisions_cholesky_ (full [k, d, d], tied [d, d],
    diag [k, d], spherical [k]), precisions_, lower_bound_ (mean log-likelihood), n_iter_, converged_,
    labels_. `score` is the mean log-likelihood of X.
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        res = gmm.fit(
            _key(self.random_state),
            x,
            self.n_components,
            covariance_type=self.covariance_type,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            reg_covar=self.reg_covar,
            init_params=self.init_params,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
        )
        p = _host(res.params)
        tied = self.covariance_type == "tied"  # the library keeps a leading axis of 1; scikit-learn does not
        self.weights_ = p.weights_k
        self.means_ = p.means_kd
        self.covariances_ = p.covariances[0] if tied else p.covariances
        self.precisions_cholesky_ = p.precisions_cholesky[0] if tied else p.precisions_cholesky
        u = self.precisions_cholesky_
        self.precisions_ = u @ np.swapaxes(u, -1, -2) if u.ndim >= 2 and self.covariance_type != "diag" else u**2
        self.lower_bound_ = float(res.lower_bound)
        self.n_iter_ = int(res.n_iter)
        self.converged_ = bool(res.converged)
        self.labels_ = np.asarray(res.labels)
        return self

    def fit_predict(self, X, y=None):
        return self.fit(X).labels_

    def _params(self) -> gmm.GMMParams:
        tied = self.covariance_type == "tied"
        cov, u = self.covariances_, self.precisions_cholesky_
        return gmm.GMMParams(self.weights_, self.means_, cov[None] if tied else cov, u[None] if tied else u)

    def predict(self, X):
        return self._apply(gmm.predict, X)

    def predict_proba(self, X):
        return self._apply(gmm.predict_proba, X)

    def score_samples(self, X):
        return self._apply(gmm.score_samples, X)

    def score(self, X, y=None):
        return float(np.mean(self.score_samples(X).astype(np.float64)))

    def bic(self, X):
        return float(self._apply(gmm.bic, X))

    def aic(self, X):
        return float(self._apply(gmm.aic, X))


# --- embeddings -------------------------------------------------------------------------------------------------


class PCA(_Transformer, _Estimator):
    """Principal component analysis (`research.embed.pca.fit`), scikit-learn's signs.

    n_components=None keeps min(n_samples, n_features). method: "auto", "exact" or "randomized" (the only one
    that uses random_state).
    """

    def __init__(
        self, n_components=None, *, whiten=False, method="auto", n_oversamples=10, n_power_iter=4, random_state=None
    ):
        self.n_components = n_components
        self.whiten = whiten
        self.method = method
        self.n_oversamples = n_oversamples
        self.n_power_iter = n_power_iter
        self.random_state = random_state

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        c = min(x.shape) if self.n_components is None else self.n_components
        res = _host(
            pca.fit(
                _key(self.random_state),
                x,
                c,
                method=self.method,
                whiten=self.whiten,
                n_oversamples=self.n_oversamples,
                n_power_iter=self.n_power_iter,
            )
        )
        self.mean_ = res.mean_d
        self.components_ = res.components_cd
        self.explained_variance_ = res.explained_variance_c
        self.explained_variance_ratio_ = res.explained_variance_ratio_c
        self.singular_values_ = res.singular_values_c
        self.noise_variance_ = float(res.noise_variance)
        self.n_components_ = len(res.components_cd)
        return self

    def _params(self) -> pca.PCAResult:
        return pca.PCAResult(
            self.mean_,
            self.components_,
            self.explained_variance_,
            self.explained_variance_ratio_,
            self.singular_values_,
            np.float32(self.noise_variance_),
            np.bool_(self.whiten),
        )

    def transform(self, X):
        return self._apply(pca.transform, X)

    def inverse_transform(self, X):
        check_is_fitted(self)
        return np.asarray(pca.inverse_transform(self._params(), X))


class NeighbourEmbedding(_Transformer, _Estimator):
    """A neighbour embedding of the training rows (`research.embed.tsne`): method "umap" or "tsne".

    Like scikit-learn's TSNE it embeds the data it is fitted on (embedding_, or `fit_transform`); there is no
    `transform` of new rows. umap uses n_neighbors and min_dist, tsne uses perplexity; n_iter (umap's epochs),
    learning_rate and init default to the method's own (None).
    """

    def __init__(
        self,
        method="umap",
        *,
        n_components=2,
        n_neighbors=15,
        min_dist=0.1,
        perplexity=30.0,
        n_iter=None,
        learning_rate=None,
        init=None,
        random_state=None,
    ):
        self.method = method
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.learning_rate = learning_rate
        self.init = init
        self.random_state = random_state

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        key = _key(self.random_state)
        given = {} if self.init is None else {"init": self.init}
        if self.method == "umap":
            if self.learning_rate is not None:
                given["learning_rate"] = self.learning_rate
            res = tsne.umap(
                key,
                x,
                dim=self.n_components,
                n_neighbors=self.n_neighbors,
                min_dist=self.min_dist,
                n_epochs=self.n_iter,
                **given,
            )
        elif self.method == "tsne":
            if self.n_iter is not None:
                given["n_iter"] = self.n_iter
            res = tsne.tsne(
                key, x, dim=self.n_components, perplexity=self.perplexity, learning_rate=self.learning_rate, **given
            )
        else:
            raise ValueError(f"method must be 'umap' or 'tsne', got {self.method!r}.")
        self.embedding_ = np.asarray(res.embedding)
        self.n_iter_ = int(res.n_iter)
        return self

    def fit_transform(self, X, y=None):
        return self.fit(X).embedding_


# --- maps and densities -----------------------------------------------------------------------------------------


class SOM(ClusterMixin, _Estimator):
    """A self-organizing map (`research.cluster.som.fit`); a sample's label is its best-matching unit.

    Fitted: codebook_ [rows, cols, d], cluster_centers_ [rows * cols, d] (unit i * cols + j is codebook_[i, j]),
    labels_ [n] (flat unit index), quantization_error_, topographic_error_.
    """

    def __init__(
        self,
        grid=(16, 16),
        *,
        mode="online",
        n_steps=None,
        n_epochs=20,
        sigma=None,
        learning_rate=0.5,
        decay="asymptotic",
        init="pca",
        random_state=None,
    ):
        self.grid = grid
        self.mode = mode
        self.n_steps = n_steps
        self.n_epochs = n_epochs
        self.sigma = sigma
        self.learning_rate = learning_rate
        self.decay = decay
        self.init = init
        self.random_state = random_state

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        res = _host(
            som.fit(
                _key(self.random_state),
                x,
                self.grid,
                mode=self.mode,
                n_steps=self.n_steps,
                n_epochs=self.n_epochs,
                sigma=self.sigma,
                learning_rate=self.learning_rate,
                decay=self.decay,
                init=self.init,
            )
        )
        self.codebook_ = res.codebook_hwd
        self.cluster_centers_ = res.codebook_hwd.reshape(-1, res.codebook_hwd.shape[-1])
        self.labels_ = res.winners_n
        self.quantization_error_ = float(res.quantization_error)
        self.topographic_error_ = float(res.topographic_error)
        return self

    def _params(self):
        return self.codebook_

    def predict(self, X):
        return self._apply(som.winner, X)


class DBSCAN(ClusterMixin, _Estimator):
    """DBSCAN (`research.cluster.dbscan.fit`): scikit-learn's core samples and noise (label -1).

    Fitted: labels_, core_sample_indices_, components_ (the core samples' rows), n_clusters_.
    """

    def __init__(self, eps=0.5, *, min_samples=5, method="auto", block_size=1024):
        self.eps = eps
        self.min_samples = min_samples
        self.method = method
        self.block_size = block_size

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        res = _host(dbscan.fit(x, self.eps, self.min_samples, method=self.method, block_size=self.block_size))
        self.labels_ = res.labels
        self.core_sample_indices_ = np.flatnonzero(res.core_mask)
        self.components_ = x[self.core_sample_indices_]
        self.n_clusters_ = int(res.n_clusters)
        return self


# --- deep clustering --------------------------------------------------------------------------------------------


class DEC(ClusterMixin, _Transformer, _Estimator):
    """Deep Embedded Clustering (`research.deep.dec.fit`) on a dense autoencoder pretrained inside `fit`.

    fit(X): pretrain a d-hidden_dims autoencoder (`research.deep.pretrain`, Adam, MSE) for pretrain_epochs, then
    train encoder and centroids on KL(P || Q). predict(X): the most probable cluster of new rows; predict_proba:
    the soft assignments q [n, k]; transform: the codes [n, hidden_dims[-1]]. Batch sizes larger than the data
    take all of it. Fitted: params_ ({"ae", "centroids"}, NumPy), cluster_centers_ (in code space), labels_,
    n_iter_ (DEC steps), converged_. The defaults are the DEC paper's, sized for MNIST.
    """

    _gamma = None  # IDEC's weight of the clustering loss; None: DEC

    def __init__(
        self,
        n_clusters=10,
        *,
        hidden_dims=(500, 500, 2000, 10),
        activation="relu",
        pretrain_epochs=200,
        pretrain_batch_size=256,
        pretrain_learning_rate=1e-3,
        alpha=1.0,
        update_interval=140,
        tol=1e-3,
        max_iter=20000,
        batch_size=256,
        learning_rate=0.01,
        n_init=20,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_learning_rate = pretrain_learning_rate
        self.alpha = alpha
        self.update_interval = update_interval
        self.tol = tol
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_init = n_init
        self.random_state = random_state

    def _model(self, n_features: int) -> MLPAutoencoder:
        widths = tuple(np.atleast_1d(self.hidden_dims).tolist())
        if not widths or not all(isinstance(w, int) and w >= 1 for w in widths):
            raise ValueError(
                f"hidden_dims must be a non-empty sequence of layer widths >= 1, ending with the code size, "
                f"got {self.hidden_dims!r}."
            )
        return MLPAutoencoder(widths=widths, out_dim=n_features, activation=self.activation)

    def _config(self) -> dec.DECConfig:
        cfg = dec.DECConfig(
            n_clusters=self.n_clusters,
            alpha=self.alpha,
            update_interval=self.update_interval,
            tol=self.tol,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            n_init=self.n_init,
        )
        return cfg if self._gamma is None else cfg._replace(gamma=self._gamma, optimizer="adam")

    def fit(self, X, y=None):
        x = self._x(X, reset=True)
        n = len(x)
        model = self._model(x.shape[1])
        key_ae, key_dec = jax.random.split(_key(self.random_state))
        ae = pretrain.pretrain(
            key_ae,
            model,
            x,
            pretrain.PretrainConfig(
                epochs=self.pretrain_epochs,
                batch_size=_at_most(self.pretrain_batch_size, n),
                learning_rate=self.pretrain_learning_rate,
            ),
        )
        cfg = self._config()._replace(batch_size=_at_most(self.batch_size, n))
        res = dec.fit(key_dec, model, ae, x, cfg)
        self.params_ = _host(res.params)
        self.cluster_centers_ = self.params_["centroids"]
        self.labels_ = np.asarray(res.labels)
        self.n_iter_ = int(res.n_iter)
        self.converged_ = bool(res.converged)
        return self

    def predict_proba(self, X):
        x = self._x(X, reset=False)
        return dec.predict_proba(self._model(x.shape[1]), self.params_, x, self.alpha)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)

    def transform(self, X):
        x = self._x(X, reset=False)
        return pretrain.encode(self._model(x.shape[1]), self.params_["ae"], x)


class IDEC(DEC):
    """Improved DEC (`research.deep.dec.fit` with gamma): the loss keeps the reconstruction term,
    reconstruction + gamma * KL(P || Q), so the codes stay faithful to the data; trained with Adam, as the
    IDEC paper (Guo et al. 2017, gamma 0.1). Everything else as `DEC`."""

    def __init__(
        self,
        n_clusters=10,
        *,
        gamma=0.1,
        hidden_dims=(500, 500, 2000, 10),
        activation="relu",
        pretrain_epochs=200,
        pretrain_batch_size=256,
        pretrain_learning_rate=1e-3,
        alpha=1.0,
        update_interval=140,
        tol=1e-3,
        max_iter=20000,
        batch_size=256,
        learning_rate=1e-3,
        n_init=20,
        random_state=None,
    ):
        super().__init__(
            n_clusters,
            hidden_dims=hidden_dims,
            activation=activation,
            pretrain_epochs=pretrain_epochs,
            pretrain_batch_size=pretrain_batch_size,
            pretrain_learning_rate=pretrain_learning_rate,
            alpha=alpha,
            update_interval=update_interval,
            tol=tol,
            max_iter=max_iter,
            batch_size=batch_size,
            learning_rate=learning_rate,
            n_init=n_init,
            random_state=random_state,
        )
        self.gamma = gamma

    @property
    def _gamma(self):
        return self.gamma


# --- supervised -------------------------------------------------------------------------------------------------


class LinearProbe(ClassifierMixin, _Estimator):
    """L2 logistic regression (`research.probe.fit`), scikit-learn's objective: a classifier of any labels.

    Two classes fit one sigmoid logit (decision_function [n]), more a softmax. Fitted: classes_, coef_ [c, d]
    ([1, d] for two classes), intercept_, n_iter_, converged_. Features are not standardised here.
    """

    def __init__(self, C=1.0, *, solver="lbfgs", max_iter=None, tol=1e-4, learning_rate=1e-2):
        self.C = C
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate

    def fit(self, X, y, sample_weight=None):
        x, y = validate_data(self, X, y, dtype=np.float32, ensure_all_finite=False)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        res = probe.fit(
            x,
            y_index,
            C=self.C,
            solver=self.solver,
            max_iter=self.max_iter,
            tol=self.tol,
            binary=len(self.classes_) == 2,
            learning_rate=self.learning_rate,
            sample_weight=sample_weight,
        )
        p = _host(res.params)
        self.coef_ = p.W_dc.T
        self.intercept_ = p.b_c
        self.n_iter_ = int(res.n_iter)
        self.converged_ = bool(res.converged)
        return self

    def _params(self) -> probe.ProbeParams:
        return probe.ProbeParams(self.coef_.T, self.intercept_)

    def decision_function(self, X):
        return self._apply(probe.decision_function, X)

    def predict_proba(self, X):
        return self._apply(probe.predict_proba, X)

    def predict(self, X):
        index = self._apply(probe.predict, X)
        return self.classes_[index]
