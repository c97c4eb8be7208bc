"""jaxcluster's library: data, metrics, clustering, embeddings, deep clustering."""


def load(workdir):
    """The fitted model of a finished run's workdir, as a scikit-learn estimator (research/saved.py). Imported
    on first call: it pulls in JAX and scikit-learn, which `import research.data` should not."""
    from research import saved

    return saved.load(workdir)
