"""jaxcluster's library: data, metrics, clustering, embeddings, deep clustering."""
