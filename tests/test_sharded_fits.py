"""Every fit on data sharded along the sample axis of a 4-device mesh gives the one-device result.

One fresh process with 4 host CPU devices (the count is fixed when JAX starts) runs each fit on the plain
array and on the array sharded over the mesh, under both axis types: automatic (XLA partitions) and explicit
(JAX types the shardings; the library answers where a result is laid out). k-means has its own test in
test_kmeans.py. What "the same" means per algorithm, and why, is docs/scaling.md's table.
"""

from __future__ import annotations

import binaries

_CODE = """
import jax, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from sklearn.datasets import make_blobs
from research import probe
from research.cluster import dbscan, gmm, minibatch_kmeans, som, spherical_kmeans
from research.embed import neighbors, pca, tsne

assert jax.device_count() == 4
x, y = make_blobs(404, 6, centers=5, cluster_std=2.0, random_state=1)  # 101 rows a device: blocks pad
x = x.astype(np.float32)
wide = np.random.default_rng(0).normal(size=(40, 60)).astype(np.float32)  # n < d: PCA's SVD solver
key = jax.random.key(3)
mixture = gmm.fit(key, x, 3, covariance_type="diag").params
same = lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
close = lambda a, b, tol=1e-5: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def check_gmm(a, b):
    same(a.labels, b.labels)
    close(a.params.means_kd, b.params.means_kd)
    close(a.lower_bound, b.lower_bound, 1e-6)


def check_probe(a, b):
    same(probe.predict(a.params, x), probe.predict(b.params, x))  # L-BFGS stops at tol: weights agree to it
    close(a.loss, b.loss, 1e-5)


cases = [  # (name, fit on rows, check)
    ("spherical k-means", lambda d: spherical_kmeans.fit(key, d, 5, n_init=3),
     lambda a, b: (same(a.labels, b.labels), close(a.centroids, b.centroids))),
    ("mini-batch k-means", lambda d: minibatch_kmeans.fit(key, d, 5, batch_size=64),
     lambda a, b: (same(a.labels, b.labels), close(a.centroids, b.centroids))),
    # full: blocks of 48 rows, the last one slid back to end at each device's 101st row
    ("gmm full", lambda d: gmm.fit(key, d, 5, covariance_type="full", n_init=2, block_size=48), check_gmm),
    *[(f"gmm {c}", (lambda c: lambda d: gmm.fit(key, d, 5, covariance_type=c, n_init=2))(c), check_gmm)
      for c in ("diag", "spherical")],
    # tied: both restarts reach the same optimum with the components in another order; which one wins is
    # rounding, so one restart here.
    ("gmm tied", lambda d: gmm.fit(key, d, 5, covariance_type="tied"), check_gmm),
    ("gmm scores", lambda d: gmm.score_samples(mixture, d), close),
    ("pca covariance", lambda d: pca.fit(key, d, 3, method="exact"), lambda a, b: close(a.components_cd, b.components_cd)),
    ("pca randomized", lambda d: pca.fit(key, d, 3, method="randomized"),
     lambda a, b: close(a.components_cd, b.components_cd)),
    ("som batch", lambda d: som.fit(key, d, grid=(4, 4), mode="batch", n_epochs=5),
     lambda a, b: (close(a.codebook_hwd, b.codebook_hwd), same(a.winners_n, b.winners_n))),
    ("som online", lambda d: som.fit(key, d, grid=(4, 4), n_steps=400),
     lambda a, b: (close(a.codebook_hwd, b.codebook_hwd), same(a.winners_n, b.winners_n))),
    ("probe", lambda d: probe.fit(d, y % 3, n_classes=3, tol=1e-6, max_iter=500), check_probe),
    ("knn", lambda d: neighbors.knn(d, 8, block_size=40), lambda a, b: (same(a.indices, b.indices), close(a.distances, b.distances, 1e-6))),
    ("dbscan", lambda d: dbscan.fit(d, 1.5, 5), lambda a, b: (same(a.labels, b.labels), same(a.core_mask, b.core_mask))),
]
# The embeddings search their neighbours on the sharded rows and lay the graph out on one device: the same bits
# on an explicit mesh. (On an automatic one XLA's partitioned kNN rounds distances differently in the last bit,
# and the layout, a stochastic descent, then drifts as another seed would; its graph is checked above.)
explicit_only = [
    ("umap", lambda d: tsne.umap(key, d, n_epochs=10).embedding, same),
    ("tsne", lambda d: tsne.tsne(key, d, n_iter=20, exaggeration_iter=10).embedding, same),
]
expected = {name: fit(x) for name, fit, _ in cases + explicit_only}  # one device
for axis_type in (AxisType.Auto, AxisType.Explicit):
    mesh = jax.make_mesh((4,), ("data",), axis_types=(axis_type,))
    for name, fit, check in cases + (explicit_only if axis_type == AxisType.Explicit else []):
        with jax.set_mesh(mesh):
            got = fit(jax.device_put(x, NamedSharding(mesh, P("data", None))))
        try:
            check(expected[name], got)
        except AssertionError as e:
            raise AssertionError(f"{name} under {axis_type}: {e}") from None
    with jax.set_mesh(mesh):  # PCA's SVD solver (n < d) gathers the small data first
        w = pca.fit(key, jax.device_put(wide, NamedSharding(mesh, P("data", None))), 5, method="exact")
    close(pca.fit(key, wide, 5, method="exact").components_cd, w.components_cd)
print("ok")
"""


def test_every_fit_on_sample_sharded_data_matches_one_device():
    binaries.run_on_host_devices(_CODE, n_devices=4, timeout=600)
