"""Text datasets as TF-IDF features: 20 Newsgroups through scikit-learn's own fetcher.

`load_20newsgroups(split, data_dir)` -> (x [N, 2000] float32, y [N] int64 0..19). scikit-learn downloads
20news-bydate.tar.gz (checking its SHA-256) and keeps a compressed pickle, 20news-bydate_py3.pkz, in its
data_home: we look for that file in data_dir (and data_dir/20newsgroups), $JAXCLUSTER_DATA/20newsgroups and
the cache, and download into the cache only when none holds it. Headers, signatures and quotes are removed
(a header names the newsgroup, i.e. the label). Features: `tfidf`, the 2000 most frequent terms as in DEC's
REUTERS setting (Xie et al., "Unsupervised Deep Embedding for Clustering Analysis", ICML 2016, section 4.1).
Reference: Lang, "NewsWeeder: Learning to Filter Netnews", ICML 1995.
"""

from __future__ import annotations

import numpy as np

from research.data import fetch

NEWSGROUPS = "20newsgroups"
MAX_FEATURES = 2000
_REMOVE = ("headers", "footers", "quotes")
_SKLEARN_CACHE = "20news-bydate_py3.pkz"


def _fetch(data_home, subset: str, download: bool):
    """scikit-learn's fetcher (a seam for tests: they replace it and never download)."""
    from sklearn.datasets import fetch_20newsgroups

    return fetch_20newsgroups(
        data_home=str(data_home), subset=subset, remove=_REMOVE, download_if_missing=download, shuffle=False
    )


def load_20newsgroups(split: str, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF rows and labels of 20 Newsgroups' "bydate" split: train (11314), test (7532) or all (18846)."""
    dirs = fetch.search_dirs(NEWSGROUPS, data_dir)
    found = next((d for d in dirs if (d / _SKLEARN_CACHE).is_file()), None)
    try:
        bunch = _fetch(found or fetch.cache_dir(NEWSGROUPS), split, download=found is None)
    except OSError as e:  # no network (URLError), or download_if_missing=False with nothing there
        raise fetch.DataNotFoundError(_not_found_message(dirs, e)) from None
    return tfidf(bunch.data), np.asarray(bunch.target, dtype=np.int64)


def tfidf(documents: list[str], max_features: int = MAX_FEATURES) -> np.ndarray:
    """[N, <= max_features] float32 dense TF-IDF (rows L2-normalized, so values lie in [0, 1]).

    English stop words are dropped, then the `max_features` terms most frequent over the corpus kept.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not documents:
        raise ValueError("TF-IDF needs at least one document; the dataset is empty.")
    vectorizer = TfidfVectorizer(max_features=max_features, stop_words="english", dtype=np.float32)
    try:
        return vectorizer.fit_transform(documents).toarray()
    except ValueError as e:  # "empty vocabulary"
        raise ValueError(f"TF-IDF found no terms in the {len(documents)} documents ({e}).") from None


def _not_found_message(dirs, error) -> str:
    return (
        f"{NEWSGROUPS}: scikit-learn's {_SKLEARN_CACHE} was not found and could not be downloaded ({error}).\n"
        f"Copy it from a machine that has it (scikit-learn keeps it in ~/scikit_learn_data) in one of three ways:\n"
        f"  1. --data_dir=DIR (load(..., data_dir=DIR)): in DIR or DIR/{NEWSGROUPS};\n"
        f"  2. ${fetch.DATA_ENV}/{NEWSGROUPS};\n"
        f"  3. the cache dir {fetch.cache_dir(NEWSGROUPS)} (where downloads are saved).\n"
        f"Looked in: {', '.join(str(d) for d in dirs)}. scikit-learn downloads it from "
        "https://ndownloader.figshare.com/files/5975967 (20news-bydate.tar.gz)."
    )
