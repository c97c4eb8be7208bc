"""Neighbour embeddings: t-SNE and a UMAP-style variant on one kNN graph, optimised as jitted loops.

    nn = neighbors.knn(x, 90)                                     # or let the functions compute it
    emb = tsne.tsne(key, x, dim=2, perplexity=30, knn=nn)         # EmbedResult(embedding [n, 2], graph, n_iter)
    emb = tsne.umap(key, x, dim=10, n_neighbors=20, min_dist=0.0) # the N2D manifold learner

t-SNE (van der Maaten & Hinton 2008) on a kNN-sparse P; in 2-D its repulsion comes from a particle mesh
(charges on a grid convolved by FFT, after FIt-SNE, Linderman et al. 2019), else it is exact up to 2000 points
and sampled beyond. UMAP-style (McInnes et al. 2018): umap-learn's fuzzy weights and a/b curve, each epoch's
edges applied in `substeps` random groups. The graph is built on the host once (scipy.sparse); the
optimisation is one jitted `lax.fori_loop`.

Design, status and measurements: docs/design/neighbour_embeddings.md.
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

from research import sharding
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


def kl_divergence(x, y, *, perplexity: float = 30.0, n_samples: int | None = 10_000, seed: int = 0) -> float:
    """KL(P || Q) of an embedding y [n, dim] of x [n, d], exact on `n_samples` random rows (None: all rows).

    P: t-SNE's affinities (`tsne_graph`) of the subset's own exact kNN graph; Q: the Student-t kernel over every
    pair of the subset's embedded points, normalised over all of them. The same subset and P for any embedding
    of x, so embeddings made by different methods compare on one scale (lower: closer to P). With all rows this
    is t-SNE's own objective (`objective`) on exact neighbours; a subset's P links points 7 times farther
    apart on MNIST-70k at 10k rows, so it ranks coarser structure and need not agree with the objective.
    """
    x, y = as_matrix(x), as_matrix(y, "y")
    n = x.shape[0] if n_samples is None else min(x.shape[0], check_positive_int(n_samples, "n_samples"))
    pick = np.sort(np.random.default_rng(seed).permutation(x.shape[0])[:n])
    xs = jnp.asarray(x[pick])
    return objective(y[pick], tsne_graph(neighbors.knn(xs, min(len(pick) - 1, int(3 * perplexity))), perplexity))


def objective(y, g: Graph) -> float:
    """t-SNE's objective KL(P || Q) for an embedding y [n, dim] and affinities g (as `tsne_graph` gives), Q exact
    over all n^2 pairs: O(n^2) time, O(n) memory (about 20 s for 70k points on 2 CPU cores)."""
    return float(_kl(jnp.asarray(as_matrix(y, "y"), jnp.float32), g))


@jax.jit
def _kl(y, g: Graph):
    def z_rows(y_b):  # sum_j 1 / (1 + |y_i - y_j|^2) over every j, itself included, for a block of rows
        d2 = jnp.sum(jnp.square(y_b[:, None, :] - y[None, :, :]), -1)
        return jnp.sum(1.0 / (1.0 + d2), axis=1)

    z = jnp.sum(lax.map(z_rows, y.reshape(-1, 1, y.shape[1]), batch_size=256)) - y.shape[0]  # less i = j
    d2 = jnp.sum(jnp.square(y[g.rows] - y[g.cols]), -1)
    log_q = -jnp.log1p(d2) - jnp.log(z)
    p = g.weights / jnp.sum(g.weights)
    return jnp.sum(jnp.where(p > 0, p * (jnp.log(p) - log_q), 0.0))


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
    """The kNN graph of x (or the given one), on one device: the search takes x sharded over a mesh (each device
    answers its own queries), the graph [n, k] is small and the layout that follows runs on one device."""
    if nn is not None:
        if nn.indices.shape[1] < k:
            raise ValueError(f"the given kNN graph has {nn.indices.shape[1]} neighbours per point; {k} are needed.")
        nn = neighbors.KNNResult(nn.indices[:, :k], nn.distances[:, :k])
    else:
        nn = neighbors.knn(x, k, metric=metric, block_size=block_size)
    return neighbors.KNNResult(*(sharding.on_one_device(a) for a in nn))


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


def _layout(key, x, dim, init, g: Graph | None = None):
    """The unscaled start: the graph's spectral layout ("spectral", UMAP's; PCA if the graph is disconnected),
    PCA scores, or Gaussian noise. Deterministic for a given key."""
    n = x.shape[0]
    if init == "spectral":
        z = spectral_layout(g, n, dim)
        if z is not None:
            return jnp.asarray(z, jnp.float32)
        init = "pca"
    if init == "pca":
        if dim > x.shape[1]:
            raise ValueError(
                f"init='pca' starts from the first {dim} principal components, but x has {x.shape[1]} features; "
                "use init='random' (or 'spectral') for an embedding with more dimensions than the data."
            )
        return pca.fit_transform(key, sharding.on_one_device(x), dim)[1]  # the start of a one-device layout
    if init == "random":
        return jax.random.normal(key, (n, dim), jnp.float32)
    raise ValueError(f"unknown init {init!r}; choose 'spectral', 'pca' or 'random'.")


def _negatives(key, n, m):
    return jax.random.randint(key, (n, m), 0, n, dtype=jnp.int32)


# --- t-SNE ---------------------------------------------------------------------------------------------------------


REPULSIONS = ("auto", "exact", "grid", "sampled")


def _grid_repulsion(y_n2, grid: int):
    """Z = sum over pairs i != j of q_ij and the repulsion sum_j q_ij^2 (y_i - y_j) of every point, q = 1 / (1 +
    |y_i - y_j|^2), by particle-mesh: each point's unit charge is spread bilinearly on a grid x grid mesh over
    the embedding's bounding square, the mesh is convolved (FFT, zero-padded: no wrap-around) with the kernels
    q and q^2 (dx, dy), and the three fields are read back bilinearly at the points. O(n + grid^2 log grid)
    per step, for 2-D embeddings; the interpolation smooths the kernel over about one mesh cell."""
    n = y_n2.shape[0]
    lo = jnp.min(y_n2, 0)
    h = jnp.maximum(jnp.max(jnp.max(y_n2, 0) - lo), 1e-6) / (grid - 1)
    u = (y_n2 - lo) / h
    i0 = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, grid - 2)
    f = u - i0
    corners = [
        (a, b, (f[:, 0] if a else 1 - f[:, 0]) * (f[:, 1] if b else 1 - f[:, 1])) for a in (0, 1) for b in (0, 1)
    ]
    mesh = jnp.zeros((2 * grid, 2 * grid), y_n2.dtype)
    for a, b, w in corners:
        mesh = mesh.at[i0[:, 0] + a, i0[:, 1] + b].add(w)
    off = jnp.fft.fftfreq(2 * grid, 1.0 / (2 * grid)) * h  # offsets 0, h, ..., -h: the kernel's wrapped layout
    dx, dy = off[:, None], off[None, :]
    q = 1.0 / (1.0 + dx * dx + dy * dy)
    kernels = jnp.stack([q, q * q * dx, q * q * dy])
    fields = jnp.fft.irfft2(jnp.fft.rfft2(mesh)[None] * jnp.fft.rfft2(kernels), s=mesh.shape)
    at = sum(w[:, None] * fields[:, i0[:, 0] + a, i0[:, 1] + b].T for a, b, w in corners)  # [n, 3]
    return jnp.sum(at[:, 0]) - n, at[:, 1:]  # Z less each point with itself (q = 1)


class _Padded(NamedTuple):
    """A graph's first `width` edges of every row as dense [n, width] arrays (padding: weight 0), the rest (rows
    of higher degree) as a sorted edge list. Dense rows are gathered and summed without a scatter."""

    cols_nw: jax.Array
    weights_nw: jax.Array
    rest: Graph


def _padded(g: Graph, n: int, quantile: float = 0.95) -> _Padded:
    """`g` laid out as `_Padded`, width the degree `quantile` rounded up to a multiple of 8 (host-side, once)."""
    rows, cols, w = np.asarray(g.rows), np.asarray(g.cols), np.asarray(g.weights)
    degree = np.bincount(rows, minlength=n)
    width = max(8, -(-int(np.quantile(degree, quantile)) // 8) * 8)
    pos = np.arange(len(rows)) - (np.cumsum(degree) - degree)[rows]
    dense = pos < width
    cols_nw = np.zeros((n, width), np.int32)
    weights_nw = np.zeros((n, width), np.float32)
    cols_nw[rows[dense], pos[dense]] = cols[dense]
    weights_nw[rows[dense], pos[dense]] = w[dense]
    rest = Graph(*(jnp.asarray(a[~dense]) for a in (rows, cols, w)))
    return _Padded(jnp.asarray(cols_nw), jnp.asarray(weights_nw), rest)


def _attraction(y, pg: _Padded):
    """sum_j p_ij q_ij (y_i - y_j) over the graph's edges, q = 1 / (1 + |y_i - y_j|^2): [n, dim]."""
    n, dim = y.shape
    # dim x [n, width], one column at a time (gathers of [n] columns are the fast ones). The barrier keeps XLA
    # from fusing the gathers into the reductions below, which ran twice as slow on a CPU (docs/design).
    diff = lax.optimization_barrier([y[:, c, None] - y[:, c][pg.cols_nw] for c in range(dim)])
    pq = pg.weights_nw / (1.0 + sum(d * d for d in diff))
    dense = jnp.stack([jnp.sum(pq * d, axis=1) for d in diff], axis=1)
    r = pg.rest
    diff = y[r.rows] - y[r.cols]
    pq = r.weights / (1.0 + jnp.sum(diff * diff, 1))
    return dense + jax.ops.segment_sum(pq[:, None] * diff, r.rows, n, indices_are_sorted=True)


@functools.partial(jax.jit, static_argnames=("n_iter", "exag_iter", "negative_samples", "repulsion", "grid"))
def _tsne_loop(
    key, y0, g: _Padded, near, *, n_iter, exag_iter, exaggeration, learning_rates, negative_samples, repulsion, grid
):
    n = y0.shape[0]
    k_near = near.shape[1]

    def grad(y, it, z_avg):
        """The gradient and the normalisation Z used (see `tsne`)."""
        attr = _attraction(y, g)
        if repulsion == "exact":
            d = y[:, None, :] - y[None, :, :]
            q = 1.0 / (1.0 + jnp.sum(d * d, -1))
            q = q * (1.0 - jnp.eye(n, dtype=q.dtype))
            z = jnp.sum(q)
            rep = jnp.sum((q * q)[..., None] * d, 1)
        elif repulsion == "grid":
            z, rep = _grid_repulsion(y, grid)
        else:
            # Near field exact over each point's kNN (`near`, sorted row numbers), far field from uniform
            # samples standing for the other n - 1 - k points (samples among the kNN or the point are dropped).
            dk = y[:, None, :] - y[near]  # [n, k, dim]
            qk = 1.0 / (1.0 + jnp.sum(dk * dk, -1))
            m = _negatives(jax.random.fold_in(key, it), n, negative_samples)
            pos = jax.vmap(jnp.searchsorted)(near, m)
            known = jnp.take_along_axis(near, jnp.minimum(pos, k_near - 1), 1) == m
            d = y[:, None, :] - y[m]  # [n, M, dim]
            q = 1.0 / (1.0 + jnp.sum(d * d, -1))
            q = jnp.where(known | (m == jnp.arange(n)[:, None]), 0.0, q)
            scale = n / negative_samples  # uniform over all n: the dropped draws count as zeros
            z_new = jnp.sum(qk) + scale * jnp.sum(q)
            # Z sits in a denominator: a running mean keeps one low estimate from blowing the repulsion up.
            z = jnp.where(it == 0, z_new, 0.9 * z_avg + 0.1 * z_new)
            rep = jnp.sum((qk * qk)[..., None] * dk, 1) + scale * jnp.sum((q * q)[..., None] * d, 1)
        exag = jnp.where(it < exag_iter, exaggeration, 1.0)
        return 4.0 * (exag * attr - rep / z), z

    def body(it, carry):
        y, update, gains, z_avg = carry
        gr, z_avg = grad(y, it, z_avg)
        momentum = jnp.where(it < exag_iter, 0.5, 0.8)
        learning_rate = jnp.where(it < exag_iter, *learning_rates)
        same_sign = jnp.sign(gr) == jnp.sign(update)
        # Per-coordinate gains (delta-bar-delta) mistake sampling noise for a consistent direction: not with
        # the sampled repulsion.
        if repulsion != "sampled":
            gains = jnp.maximum(jnp.where(same_sign, gains * 0.8, gains + 0.2), 0.01)
        update = momentum * update - learning_rate * gains * gr
        y = y + update
        return y - jnp.mean(y, 0), update, gains, z_avg

    init = (y0, jnp.zeros_like(y0), jnp.ones_like(y0), jnp.ones((), y0.dtype))
    y, _, _, _ = lax.fori_loop(0, n_iter, body, init)
    return y


def _learning_rates(learning_rate: float | None, n: int) -> tuple[float, float]:
    """(early exaggeration, main phase) step sizes: `learning_rate` for both, else n / 12 and n / 4 (at least 50)."""
    if learning_rate is not None:
        rate = check_positive_float(learning_rate, "learning_rate")
        return rate, rate
    return max(n / 12.0, 50.0), max(n / 4.0, 50.0)


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
    repulsion: str = "auto",
    grid: int = 256,
    negative_samples: int = 16,
    init: str = "pca",
    knn: neighbors.KNNResult | None = None,
    metric: str = "euclidean",
    block_size: int = 1024,
) -> EmbedResult:
    """t-SNE of x [n, d] to `dim` dimensions on its kNN graph (k = 3 * perplexity neighbours).

    Args:
      repulsion: how the repulsion and Z are summed over all pairs: "exact" (O(n^2) memory), "grid" (2-D only:
        particle-mesh on a `grid` x `grid` mesh, see `_grid_repulsion`), "sampled" (near field exact over the
        kNN, far field from `negative_samples` uniformly drawn points per point and step). "auto": grid in 2-D;
        in more dimensions exact up to 2000 points, else sampled.
      learning_rate: one step size for both phases; default n / 12 during early exaggeration (Belkina et al.
        2019) and n / 4 after it, openTSNE's step size for that phase (its n, on a gradient without the factor 4
        of this one). At n / 4 the main phase ends lower on t-SNE's own objective (docs/design/neighbour_embeddings.md).
      knn: a precomputed graph with at least 3 * perplexity neighbours (e.g. shared with a UMAP run).
    """
    x = as_matrix(x)
    n = x.shape[0]
    check_positive_float(perplexity, "perplexity")
    k = min(n - 1, int(3 * perplexity))
    if k < 1 or perplexity >= n:
        raise ValueError(f"perplexity {perplexity} needs more than {int(perplexity)} samples; got {n}.")
    dim = check_positive_int(dim, "dim")
    if repulsion not in REPULSIONS:
        raise ValueError(f"repulsion must be one of {REPULSIONS}; got {repulsion!r}.")
    if repulsion == "auto":
        repulsion = "grid" if dim == 2 else "exact" if n <= 2000 else "sampled"
    if repulsion == "grid" and dim != 2:
        raise ValueError(f"repulsion='grid' embeds in 2-D only; got dim={dim}. Use 'sampled' or 'exact'.")
    k_init, k_loop = jax.random.split(key)
    nn = _neighbours(x, k, knn, metric, block_size)
    g = tsne_graph(nn, perplexity)
    z = _layout(k_init, x, dim, init)
    y0 = z / jnp.maximum(jnp.std(z[:, 0]), 1e-12) * 1e-4  # t-SNE starts small: standard deviation 1e-4
    y = _tsne_loop(
        k_loop,
        y0,
        _padded(g, n),
        jnp.sort(nn.indices, axis=1),
        n_iter=check_positive_int(n_iter, "n_iter"),
        exag_iter=int(exaggeration_iter),
        exaggeration=float(early_exaggeration),
        learning_rates=_learning_rates(learning_rate, n),
        negative_samples=check_positive_int(negative_samples, "negative_samples"),
        repulsion=repulsion,
        grid=check_positive_int(grid, "grid"),
    )
    return EmbedResult(embedding=y, graph=g, n_iter=n_iter)


# --- UMAP-style ----------------------------------------------------------------------------------------------------


class _Batches(NamedTuple):
    """The graph's edges, each pair once (i < j), split at random into the sub-steps of an epoch: rows, cols
    [S, G] int32 and the probability p = w / max w that UMAP samples the edge i -> j in an epoch (and, apart,
    j -> i), [S, G] float32 (padding: p = 0). Each edge moves both its ends; the two ends of every edge of a
    sub-step, sorted by point, are ends [S, 2G] int32, with edge [S, 2G] the edge's number in the sub-step
    and sign [S, 2G] +1 at its row end and -1 at its column end, so the moves are summed by one sorted
    segment sum."""

    rows: jax.Array
    cols: jax.Array
    p: jax.Array
    ends: jax.Array
    edge: jax.Array
    sign: jax.Array


def _edge_batches(key, g: Graph, substeps: int) -> _Batches:
    upper = np.flatnonzero(np.asarray(g.rows) < np.asarray(g.cols))  # the graph is symmetric: one of each pair
    rows, cols = g.rows[upper], g.cols[upper]
    p = g.weights[upper] / jnp.max(g.weights)
    e = len(upper)
    size = -(-e // substeps)
    order = jax.random.permutation(key, e)
    pad = lambda v: jnp.pad(v[order], (0, size * substeps - e)).reshape(substeps, size)
    rows, cols = np.asarray(pad(rows)), np.asarray(pad(cols))
    both = np.concatenate([rows, cols], axis=1)  # [S, 2G]: the row ends, then the column ends
    by_end = np.argsort(both, axis=1, kind="stable")
    return _Batches(
        jnp.asarray(rows),
        jnp.asarray(cols),
        pad(p),
        jnp.asarray(np.take_along_axis(both, by_end, 1), jnp.int32),
        jnp.asarray(by_end % size, jnp.int32),
        jnp.asarray(np.where(by_end < size, 1.0, -1.0), jnp.float32),
    )


@functools.partial(jax.jit, static_argnames=("n_epochs", "negative_samples"))
def _umap_loop(key, y0, batches: _Batches, *, n_epochs, a, b, learning_rate, negative_rate, negative_samples):
    n = y0.shape[0]
    substeps = batches.rows.shape[0]
    # Negative samples UMAP draws per point and epoch: negative_rate for each of its sampled edges.
    p_flat = batches.p.ravel()
    n_neg = negative_rate * (
        jax.ops.segment_sum(p_flat, batches.rows.ravel(), n) + jax.ops.segment_sum(p_flat, batches.cols.ravel(), n)
    )
    rep_weight = (n_neg / (substeps * negative_samples))[:, None]

    def power(d2):
        """(d2^b, d2^(b - 1)) from one logarithm; d2 = 0 gives (0, 0), which zeroes its term."""
        pos = d2 > 0
        d2b = jnp.where(pos, jnp.exp(b * jnp.log(jnp.where(pos, d2, 1.0))), 0.0)
        return d2b, jnp.where(pos, d2b / jnp.where(pos, d2, 1.0), 0.0)

    def substep(y, inputs):
        rows, cols, p, ends, edge, sign, k, alpha = inputs
        k_edges, k_neg = jax.random.split(k)
        # Each direction of the pair is sampled on its own; either moves both ends (umap-learn's move_other).
        draws = jax.random.uniform(k_edges, (2, *p.shape)) < p
        count = jnp.sum(draws, axis=0, dtype=y.dtype)
        diff = y[rows] - y[cols]
        d2b, d2b1 = power(jnp.sum(diff * diff, 1))
        coef = -2.0 * a * b * d2b1 / (1.0 + a * d2b)
        att = jnp.clip(coef[:, None] * diff, -4.0, 4.0) * count[:, None]
        move = jax.ops.segment_sum(att[edge] * sign[:, None], ends, n, indices_are_sorted=True)
        m = _negatives(k_neg, n, negative_samples)
        dn = y[:, None, :] - y[m]
        d2n = jnp.sum(dn * dn, -1)
        d2nb, _ = power(d2n)
        rcoef = jnp.where(d2n > 0, 2.0 * b / ((1e-3 + d2n) * (1.0 + a * d2nb)), 0.0)
        move = move + rep_weight * jnp.sum(jnp.clip(rcoef[..., None] * dn, -4.0, 4.0), 1)
        return y + alpha * move, None

    def epoch(e, y):
        k_order, k_steps = jax.random.split(jax.random.fold_in(key, e))
        order = jax.random.permutation(k_order, substeps)
        alpha = jnp.full((substeps,), learning_rate * (1.0 - e / n_epochs), y.dtype)
        inputs = (*(v[order] for v in batches), jax.random.split(k_steps, substeps))
        y, _ = lax.scan(substep, y, inputs + (alpha,))
        return y

    return lax.fori_loop(0, n_epochs, epoch, y0)


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
    substeps: int = 10,
    negative_samples: int = 2,
    init: str = "spectral",
    knn: neighbors.KNNResult | None = None,
    metric: str = "euclidean",
    block_size: int = 1024,
) -> EmbedResult:
    """A UMAP-style embedding of x [n, d] to `dim` dimensions (see the module docstring).

    Args:
      n_epochs: default 500 up to 10k points, else 200 (umap-learn's choice).
      substeps: each epoch's edges are split at random into this many groups, applied one after another.
      negative_samples: points drawn per point and sub-step to estimate its repulsion.
      knn: a precomputed graph with at least n_neighbors - 1 neighbours besides the point itself.
    """
    x = as_matrix(x)
    n = x.shape[0]
    k = check_positive_int(n_neighbors, "n_neighbors") - 1  # umap-learn counts the point itself
    if k < 1 or k >= n:
        raise ValueError(f"n_neighbors must be in [2, n_samples]; got {n_neighbors} for {n} samples.")
    if min_dist < 0 or min_dist > spread:
        raise ValueError(f"min_dist must be in [0, spread={spread}]; got {min_dist}.")
    n_epochs = check_positive_int(n_epochs or (500 if n <= 10_000 else 200), "n_epochs")
    k_init, k_batches, k_loop = jax.random.split(key, 3)
    g = umap_graph(_neighbours(x, k, knn, metric, block_size))
    # As umap-learn: edges too weak to be sampled once in n_epochs are dropped, and the start is scaled to
    # [0, 10] in every coordinate.
    keep = np.asarray(g.weights) >= float(jnp.max(g.weights)) / n_epochs
    g = Graph(g.rows[keep], g.cols[keep], g.weights[keep])
    z = _layout(k_init, x, check_positive_int(dim, "dim"), init, g)
    lo, hi = jnp.min(z, 0), jnp.max(z, 0)
    y0 = 10.0 * (z - lo) / jnp.maximum(hi - lo, 1e-12)
    a, b = find_ab(min_dist, spread)
    y = _umap_loop(
        k_loop,
        y0,
        _edge_batches(k_batches, g, check_positive_int(substeps, "substeps")),
        n_epochs=n_epochs,
        a=a,
        b=b,
        learning_rate=float(learning_rate),
        negative_rate=float(negative_sample_rate),
        negative_samples=check_positive_int(negative_samples, "negative_samples"),
    )
    return EmbedResult(embedding=y, graph=g, n_iter=n_epochs)
