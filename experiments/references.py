"""The published figures our tables stand beside, in one place: collect and reproduce both read them.

  references.text(references.PUBLISHED["mnist"]["dec"])   # '84.30 (Xie et al. 2016, Table 2, best of ...); ...'

PUBLISHED: dataset -> run key -> the papers' figures (ACC %, NMI % where given, source). A run key is the
experiment, plus `mode=<m>` for DEC's variants and `features=pretrained` for manifold clustering on an
autoencoder's codes (collect builds it from a run's results.json). They apply to runs on the whole
dataset clustered into PUBLISHED_K clusters. MEASURED: reference figures of peer libraries measured on this
machine by bench/ (not published), for the rows that have no published figure. PROBE: the source notes'
test accuracies of supervised linear probes (experiments.linear_probe, train 60k / test 10k), by the same kind
of run key.
"""

from __future__ import annotations

from typing import NamedTuple


class Figure(NamedTuple):
    """One published (or measured) result: ACC in %, as its source prints it; NMI in % where given."""

    acc: str
    source: str
    nmi: str = ""


_DEC = "Xie et al. 2016"
_KERAS_DEC = "Keras DEC, mean of 10 trials"  # DEC-keras, results/exp1/results.csv; autoencoder pretrained by SGD
_N2D = "N2D, McConville et al. 2021, Table 2"  # autoencoder + UMAP + GMM

PUBLISHED = {
    "mnist": {
        "kmeans": (Figure("53.49", f"{_DEC}, Table 2"),),
        "ae_kmeans": (Figure("81.84", f"{_DEC}, Table 3"), Figure("87.93", _KERAS_DEC)),
        "dec": (Figure("84.30", f"{_DEC}, Table 2, best of 9 settings"), Figure("91.20", _KERAS_DEC)),
        "dec mode=frozen": (Figure("79.82", f"{_DEC}, Table 2"),),  # "DEC w/o backprop"
        "dec mode=dec-da": (
            Figure("98.5", "Guo et al. 2018, the best DEC-DA variant, as their code's README reports", "96.0"),
        ),
        "idec": (Figure("88.06", "Guo et al. 2017, Table 2", "86.72"),),
        "manifold_cluster features=pretrained": (Figure("97.9", _N2D, "94.2"),),
        "manifold_cluster features=pretrained augment=affine": (
            Figure("97.9", f"{_N2D}, without augmentation", "94.2"),
        ),
    }
}
# The class count the published figures cluster into (K = classes).
PUBLISHED_K = {"mnist": 10}

MEASURED = {
    "mnist": {
        "manifold_cluster features=raw": (
            Figure(
                "97.3 cosine, 96.9 Euclidean",
                "umap-learn (10-D, 20 neighbours, min_dist 0) + our GMM on this machine, bench.embed_vs_peers",
            ),
        ),
        "tsne_dbscan": (Figure("87.4 to 95.4", "openTSNE 2-D + our GMM, 3 runs on this machine"),),
    }
}

# The notes' logistic regression on raw MNIST pixels (train 60k), its test accuracy.
PROBE = {
    "mnist": {
        "linear_probe": (Figure("92.43", "the notes, softmax regression"),),
        "linear_probe augment=shift": (Figure("92.79", "the notes, softmax regression + one-pixel shifts"),),
    }
}


def text(figures) -> str:
    """'84.30 (source); 91.20 (source)': the figures of one row as a table cell; '-' for none."""
    if not figures:
        return "-"
    return "; ".join(f"{f.acc}{f', NMI {f.nmi}' if f.nmi else ''} ({f.source})" for f in figures)


def lookup(dataset: str, key: str, measured: bool = False) -> str:
    """The cell for run key `key` on `dataset`: its published figures, else (with `measured`) the peers'
    figures measured here, else '-'."""
    figures = PUBLISHED.get(dataset, {}).get(key)
    if not figures and measured:
        figures = MEASURED.get(dataset, {}).get(key)
    return text(figures)
