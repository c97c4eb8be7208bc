"""Neighbour embeddings: t-SNE and a UMAP-style variant on one kNN graph, optimised as jitted loops.

    nn = neighbors.knn(x, 90)                                     # or let the functions compute it
    emb = tsne.tsne(key, x, dim=2, perplexity=30, knn=nn)         # EmbedResult(embedding [n, 2], ...)
    emb = tsne.umap(key, x, dim=10, n_neighbors=20, min_dist=0.0) # the N2D manifold learner

Both start from the exact kNN graph of x (`research.embed.neighbors`) and differ in its edge weights and in
the low-dimensional similarity:

* t-SNE (van der Maaten & Hinton 2008; kNN-sparse P as in Barnes-Hut t-SNE): per-point Gaussian conditionals
  calibrated to the perplexity by a jitted bisection, symmetrised P = (P_j|i + P_i|j) / 2n; Student-t
  similarities in the embedding. The gradient's attraction runs along the kNN edges; its repulsion (the
  normalisation Z over all pairs) is exact for small n and estimated from `negative_samples` uniformly drawn
  points per point and iteration otherwise (an unbiased estimate of the sums over all pairs). Early
  exaggeration, momentum 0.5 then 0.8, per-coordinate gains, learning rate n / 12.
* UMAP-style (McInnes et al. 2018): fuzzy-set weights exp(-(d - rho_i) / sigma_i) with sigma_i calibrated so a
  point's weights sum to log2(k), combined by fuzzy union w + w' - w w'; similarity 1 / (1 + a d^2b) with a, b
  fitted to `min_dist`. UMAP's edge-sampled SGD, taken in expectation: each epoch moves every point by its
  edges' attraction weighted by w / max(w) and by `negative_sample_rate` repulsions per unit of edge weight,
  estimated from sampled points, each term clipped to [-4, 4], with the learning rate decaying linearly to 0.

The graph is built on the host (scipy.sparse, once); the optimisation is one jitted `lax.fori_loop`.

Status (issue 6, in progress): the exact-repulsion t-SNE and the UMAP-style loop are tested on separated blobs;
t-SNE's sampled repulsion (n > 2000) is still too noisy to trust, and neither has yet been measured against
umap-learn or openTSNE on MNIST.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg
from jax import lax

from research.checks import as_matrix, check_positive_float, check_positive_int
from research.embed import neighbors, pca


class Graph(NamedTuple):
    """A symmetric weighted graph as an edge list sorted by row: rows, cols int32 [E], weights float32 [E]."""

    rows: jax.Array
    cols: jax.Array
    weights: jax.Array


class EmbedResult(NamedTuple):
    """embedding: [n, dim] float32; graph: the weighted kNN graph it was fitted to; n_iter: optimisation steps."""

    embedding: jax.Array
    graph: Graph
    n_iter: int


# --- calibration: one bisection, two targets --------------------------------------------------------------------


def _bisect(f, target_n, lo, hi, tol, max_iter):
    """Per row, the log-parameter t in [lo, hi] with f(t) = target, f increasing in t: a jitted bisection that
    stops when every row is within tol or after max_iter halvings."""

    def cond(c):
        it, _, _, err = c
        return jnp.logical_and(it < max_iter, err > tol)

    def body(c):
        it, lo_n, hi_n, _ = c
        mid = 0.5 * (lo_n + hi_n)
        val = f(mid)
        up = val < target_n
        lo_n, hi_n = jnp.where(up, mid, lo_n), jnp.where(up, hi_n, mid)
        return it + 1, lo_n, hi_n, jnp.max(jnp.abs(val - target_n))

    n = target_n.shape[0]
    init = (0, jnp.full((n,), lo, jnp.float32), jnp.full((n,), hi, jnp.float32), jnp.inf)
    _, lo_n, hi_n, _ = lax.while_loop(cond, body, init)
    return 0.5 * (lo_n + hi_n)


def _entropy(d2_nk, log_beta_n):
    """Entropy (nats) of softmax(-beta d2) per row, d2 shifted by its row minimum (which leaves P unchanged)."""
    logits = -jnp.exp(log_beta_n)[:, None] * (d2_nk - d2_nk[:, :1])
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=1)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def perplexity_conditionals(dist_nk, perplexity, tol=1e-5, max_iter=200):
    """P_j|i [n, k] over each point's k nearest (distances sorted ascending, [n, k]): Gaussian conditionals
    whose perplexity exp(H(P_i)) equals `perplexity`, by bisection on log beta (H decreases in beta).
    Returns (P [n, k] rows summing to 1, beta [n])."""
    d2 = jnp.square(dist_nk.astype(jnp.float32))
    target = jnp.full((d2.shape[0],), jnp.log(perplexity), jnp.float32)
    log_beta = _bisect(lambda t: -_entropy(d2, t), -target, -30.0, 30.0, tol, max_iter)
    logits = -jnp.exp(log_beta)[:, None] * (d2 - d2[:, :1])
    return jax.nn.softmax(logits, axis=1), jnp.exp(log_beta)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def fuzzy_weights(dist_nk, tol=1e-5, max_iter=200):
    """UMAP's membership strengths [n, k]: exp(-max(0, d - rho_i) / sigma_i), rho_i the distance to the nearest
    neighbour, sigma_i such that each row sums to log2(k + 1) (umap-learn's n_neighbors counts the point itself;
    the graph here leaves it out). Returns (weights, sigma [n])."""
    d = dist_nk.astype(jnp.float32)
    k = d.shape[1]
    rho = d[:, :1]
    excess = jnp.maximum(d - rho, 0.0)
    total = lambda t: jnp.sum(jnp.exp(-excess / jnp.exp(t)[:, None]), axis=1)  # increasing in t
    target = jnp.full((d.shape[0],), np.log2(k + 1), jnp.float32)  # umap-learn counts the point as a neighbour
    log_sigma = _bisect(total, target, -30.0, 30.0, tol, max_iter)
    return jnp.exp(-excess / jnp.exp(log_sigma)[:, None]), jnp.exp(log_sigma)


def _edges(indices_nk, weights_nk, combine: str) -> Graph:
    n, k = indices_nk.shape
    rows = np.repeat(np.arange(n), k)
    w = scipy.sparse.csr_matrix(
        (np.asarray(weights_nk, np.float64).ravel(), (rows, np.asarray(indices_nk).ravel())), shape=(n, n)
    )
    if combine == "mean":  # t-SNE: (P + P^T) / 2n with rows of P summing to 1
        w = (w + w.T) / (2.0 * n)
    else:  # UMAP's fuzzy union
        wt = w.T.tocsr()
        w = w + wt - w.multiply(wt)
    w = w.tocoo()
    w.eliminate_zeros()
    order = np.lexsort((w.col, w.row))
    return Graph(
        rows=jnp.asarray(w.row[order], jnp.int32),
        cols=jnp.asarray(w.col[order], jnp.int32),
        weights=jnp.asarray(w.data[order], jnp.float32),
    )


def tsne_graph(nn: neighbors.KNNResult, perplexity: float) -> Graph:
    """The symmetric t-SNE affinities P on the kNN graph (they sum to 1)."""
    p, _ = perplexity_conditionals(nn.distances, float(perplexity))
    return _edges(nn.indices, p, "mean")


def umap_graph(nn: neighbors.KNNResult) -> Graph:
    """The fuzzy union of UMAP's membership strengths on the kNN graph."""
    w, _ = fuzzy_weights(nn.distances)
    return _edges(nn.indices, w, "union")


def find_ab(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """a, b of UMAP's similarity 1 / (1 + a d^2b), least-squares fitted to 1 for d < min_dist and
    exp(-(d - min_dist) / spread) beyond."""
    d = np.linspace(0, spread * 3, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = scipy.optimize.curve_fit(lambda d, a, b: 1.0 / (1.0 + a * d ** (2 * b)), d, target)
    return float(a), float(b)


# --- shared pieces ------------------------------------------------------------------------------------------------


def _neighbours(x, k, nn, metric, block_size):
    if nn is not None:
        if nn.indices.shape[1] < k:
            raise ValueError(f"the given kNN graph has {nn.indices.shape[1]} neighbours per point; {k} are needed.")
        return neighbors.KNNResult(nn.indices[:, :k], nn.distances[:, :k])
    return neighbors.knn(x, k, metric=metric, block_size=block_size)


def spectral_layout(g: Graph, n: int, dim: int) -> np.ndarray:
    """The graph's Laplacian eigenmap [n, dim]: eigenvectors 2..dim+1 of the normalised adjacency
    D^-1/2 W D^-1/2 (largest eigenvalues; ARPACK from a fixed start, so deterministic), as UMAP initialises."""
    w = scipy.sparse.csr_matrix((np.asarray(g.weights, np.float64), (np.asarray(g.rows), np.asarray(g.cols))), (n, n))
    deg = np.asarray(w.sum(1)).ravel()
    inv_sqrt = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
    a = scipy.sparse.diags(inv_sqrt) @ w @ scipy.sparse.diags(inv_sqrt)
    n_components, _ = scipy.sparse.csgraph.connected_components(w, directed=False)
    k = dim + 1
    if n_components > 1 or k >= n - 1:
        return None  # several components (or tiny data): the caller falls back to PCA
    vals, vecs = scipy.sparse.linalg.eigsh(a, k, which="LA", v0=np.sqrt(deg), tol=1e-4, maxiter=n * 5)
    order = np.argsort(vals)[::-1]
    return vecs[:, order[1:k]]


def _init(key, x, dim, init, scale, g: Graph | None = None):
    """The start: the graph's spectral layout ("spectral", UMAP's; PCA if the graph is disconnected), PCA
    scores, or Gaussian noise; scaled to standard deviation `scale` in the first axis. Deterministic."""
    n = x.shape[0]
    if init == "spectral":
        z = spectral_layout(g, n, dim)
        if z is not None:
            z = jnp.asarray(z, jnp.float32)
            return z / jnp.maximum(jnp.std(z[:, 0]), 1e-12) * scale
        init = "pca"
    if init == "pca":
        _, z = pca.fit_transform(key, x, dim)
        return z / jnp.maximum(jnp.std(z[:, 0]), 1e-12) * scale
    if init == "random":
        return jax.random.normal(key, (n, dim), jnp.float32) * scale
    raise ValueError(f"unknown init {init!r}; choose 'spectral', 'pca' or 'random'.")


def _negatives(key, n, m):
    return jax.random.randint(key, (n, m), 0, n, dtype=jnp.int32)


# --- t-SNE ---------------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("n_iter", "exag_iter", "negative_samples", "exact"))
def _tsne_loop(key, y0, g: Graph, *, n_iter, exag_iter, exaggeration, learning_rate, negative_samples, exact):
    n = y0.shape[0]

    def grad(y, it, z_avg):
        """The gradient and the normalisation Z used (exact, or a running mean of the sampled estimates:
        Z sits in a denominator, so a single small estimate would blow the repulsion up)."""
        diff = y[g.rows] - y[g.cols]  # [E, dim]
        qe = 1.0 / (1.0 + jnp.sum(diff * diff, 1))
        attr = jax.ops.segment_sum((g.weights * qe)[:, None] * diff, g.rows, n, indices_are_sorted=True)
        if exact:
            d = y[:, None, :] - y[None, :, :]
            q = 1.0 / (1.0 + jnp.sum(d * d, -1))
            q = q * (1.0 - jnp.eye(n, dtype=q.dtype))
            z = jnp.sum(q)
            rep = jnp.sum((q * q)[..., None] * d, 1)
        else:
            m = _negatives(jax.random.fold_in(key, it), n, negative_samples)
            d = y[:, None, :] - y[m]  # [n, M, dim]
            q = 1.0 / (1.0 + jnp.sum(d * d, -1))
            q = jnp.where(m == jnp.arange(n)[:, None], 0.0, q)
            scale = (n - 1) / negative_samples
            z_new = jnp.sum(q) * scale
            z = jnp.where(it == 0, z_new, 0.9 * z_avg + 0.1 * z_new)
            rep = scale * jnp.sum((q * q)[..., None] * d, 1)
        exag = jnp.where(it < exag_iter, exaggeration, 1.0)
        return 4.0 * (exag * attr - rep / z), z

    def body(it, carry):
        y, update, gains, z_avg = carry
        gr, z_avg = grad(y, it, z_avg)
        momentum = jnp.where(it < exag_iter, 0.5, 0.8)
        same_sign = jnp.sign(gr) == jnp.sign(update)
        # Per-coordinate gains (delta-bar-delta) read noise as a consistent direction: exact gradients only.
        gains = jnp.maximum(jnp.where(same_sign, gains * 0.8, gains + 0.2), 0.01) if exact else gains
        update = momentum * update - learning_rate * gains * gr
        y = y + update
        return y - jnp.mean(y, 0), update, gains, z_avg

    init = (y0, jnp.zeros_like(y0), jnp.ones_like(y0), jnp.ones((), y0.dtype))
    y, _, _, _ = lax.fori_loop(0, n_iter, body, init)
    return y


def tsne(
    key,
    x,
    *,
    dim: int = 2,
    perplexity: float = 30.0,
    n_iter: int = 750,
    early_exaggeration: float = 12.0,
    exaggeration_iter: int = 250,
    learning_rate: float | None = None,
    negative_samples: int = 16,
    exact: bool | None = None,
    init: str = "pca",
    knn: neighbors.KNNResult | None = None,
    metric: str = "euclidean",
    block_size: int = 1024,
) -> EmbedResult:
    """t-SNE of x [n, d] to `dim` dimensions on its kNN graph (k = 3 * perplexity neighbours).

    Args:
      exact: sum the repulsion over all pairs (O(n^2) memory; default when n <= 2000) instead of estimating it
        from `negative_samples` uniformly drawn points per point and iteration.
      learning_rate: default n / 12.
      knn: a precomputed graph with at least 3 * perplexity neighbours (e.g. shared with a UMAP run).
    """
    x = as_matrix(x)
    n = x.shape[0]
    check_positive_float(perplexity, "perplexity")
    k = min(n - 1, int(3 * perplexity))
    if k < 1 or perplexity >= n:
        raise ValueError(f"perplexity {perplexity} needs more than {int(perplexity)} samples; got {n}.")
    k_init, k_loop = jax.random.split(key)
    nn = _neighbours(x, k, knn, metric, block_size)
    g = tsne_graph(nn, perplexity)
    y0 = _init(k_init, x, check_positive_int(dim, "dim"), init, 1e-4)
    exact = n <= 2000 if exact is None else exact
    y = _tsne_loop(
        k_loop,
        y0,
        g,
        n_iter=check_positive_int(n_iter, "n_iter"),
        exag_iter=int(exaggeration_iter),
        exaggeration=float(early_exaggeration),
        learning_rate=float(learning_rate or max(n / 12.0, 50.0)),
        negative_samples=check_positive_int(negative_samples, "negative_samples"),
        exact=bool(exact),
    )
    return EmbedResult(embedding=y, graph=g, n_iter=n_iter)


# --- UMAP-style ----------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("n_epochs", "negative_samples"))
def _umap_loop(key, y0, g: Graph, *, n_epochs, a, b, learning_rate, negative_rate, negative_samples):
    n = y0.shape[0]
    w = g.weights / jnp.max(g.weights)
    # Expected negative samples per point and epoch: negative_rate per unit of its edges' sampling weight.
    n_neg = negative_rate * jax.ops.segment_sum(w, g.rows, n, indices_are_sorted=True)

    def body(epoch, y):
        alpha = learning_rate * (1.0 - epoch / n_epochs)
        diff = y[g.rows] - y[g.cols]
        d2 = jnp.sum(diff * diff, 1)
        coef = -2.0 * a * b * jnp.power(jnp.maximum(d2, 1e-12), b - 1.0) / (1.0 + a * jnp.power(d2, b))
        coef = jnp.where(d2 > 0, coef, 0.0)
        att = jnp.clip(coef[:, None] * diff, -4.0, 4.0) * w[:, None]
        # UMAP moves both ends of a sampled edge; the graph holds each edge in both directions.
        move = jax.ops.segment_sum(att, g.rows, n, indices_are_sorted=True) - jax.ops.segment_sum(att, g.cols, n)
        m = _negatives(jax.random.fold_in(key, epoch), n, negative_samples)
        dn = y[:, None, :] - y[m]
        d2n = jnp.sum(dn * dn, -1)
        rcoef = 2.0 * b / ((1e-3 + d2n) * (1.0 + a * jnp.power(d2n, b)))
        rep = jnp.where((d2n > 0)[..., None], jnp.clip(rcoef[..., None] * dn, -4.0, 4.0), 0.0)
        rep = jnp.where((m == jnp.arange(n)[:, None])[..., None], 0.0, rep)
        move = move + n_neg[:, None] * jnp.mean(rep, 1)
        # UMAP applies its clipped updates one at a time, each from where the last one left the point; summed
        # at one position they can overshoot (a point amid its negatives gets all their pushes at once), so the
        # epoch's move is clipped as each of UMAP's updates is.
        return y + alpha * jnp.clip(move, -4.0, 4.0)

    return lax.fori_loop(0, n_epochs, body, y0)


def umap(
    key,
    x,
    *,
    dim: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    spread: float = 1.0,
    n_epochs: int | None = None,
    learning_rate: float = 1.0,
    negative_sample_rate: float = 5.0,
    negative_samples: int = 8,
    init: str = "spectral",
    knn: neighbors.KNNResult | None = None,
    metric: str = "euclidean",
    block_size: int = 1024,
) -> EmbedResult:
    """A UMAP-style embedding of x [n, d] to `dim` dimensions (see the module docstring).

    Args:
      n_epochs: default 500 below 10k points, else 200 (umap-learn's choice).
      negative_samples: points drawn per point and epoch to estimate its repulsion.
      knn: a precomputed graph with at least n_neighbors - 1 neighbours besides the point itself.
    """
    x = as_matrix(x)
    n = x.shape[0]
    k = check_positive_int(n_neighbors, "n_neighbors") - 1  # umap-learn counts the point itself
    if k < 1 or k >= n:
        raise ValueError(f"n_neighbors must be in [2, n_samples]; got {n_neighbors} for {n} samples.")
    if min_dist < 0 or min_dist > spread:
        raise ValueError(f"min_dist must be in [0, spread={spread}]; got {min_dist}.")
    k_init, k_loop = jax.random.split(key)
    nn = _neighbours(x, k, knn, metric, block_size)
    g = umap_graph(nn)
    a, b = find_ab(min_dist, spread)
    y0 = _init(k_init, x, check_positive_int(dim, "dim"), init, 10.0 / 3.0, g)
    n_epochs = n_epochs or (500 if n <= 10_000 else 200)
    y = _umap_loop(
        k_loop,
        y0,
        g,
        n_epochs=check_positive_int(n_epochs, "n_epochs"),
        a=a,
        b=b,
        learning_rate=float(learning_rate),
        negative_rate=float(negative_sample_rate),
        negative_samples=check_positive_int(negative_samples, "negative_samples"),
    )
    return EmbedResult(embedding=y, graph=g, n_iter=n_epochs)
