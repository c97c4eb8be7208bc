"""The table of downloadable datasets: their files, mirrors, sizes and published checksums.

Each `Spec` names the files a dataset is made of, where they are served (a file's URL is a mirror base plus
its name) and the checksum its publisher or a major loader library records, with that source beside it.
`fetch.locate` finds or downloads a file by this table; the `reader` key picks the format module that turns
the files into arrays (see `sources.READERS`). Nothing here is computed from a download: a checksum that no
public source records is not in the table, and docs/data.md lists every entry.
"""

from __future__ import annotations

from typing import NamedTuple


class File(NamedTuple):
    """One file as served.

    name: its name on the mirror and on disk, e.g. "train-images-idx3-ubyte.gz".
    checksum: "sha256:<hex>" or, where only MD5 is published, "md5:<hex>".
    size: bytes of what the checksum covers, or None where unpublished.
    of_content: the checksum covers the gunzipped content rather than the file as served (MNIST: mirrors
      gzip it differently); such a file is also accepted decompressed, without its ".gz".
    """

    name: str
    checksum: str
    size: int | None = None
    of_content: bool = False


class Spec(NamedTuple):
    """A dataset: `parts` maps each split it defines to the names of the files that hold it."""

    name: str
    reader: str
    mirrors: tuple[str, ...]
    files: tuple[File, ...]
    parts: dict[str, tuple[str, ...]]

    def file(self, name: str) -> File:
        return next(f for f in self.files if f.name == name)


def _idx_parts() -> dict[str, tuple[str, ...]]:
    """MNIST's four file names, which Fashion-MNIST and KMNIST share."""
    return {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }


def _idx_files(sums: dict[str, tuple[int, str]], of_content: bool = False) -> tuple[File, ...]:
    return tuple(File(name, f"sha256:{digest}", size, of_content) for name, (size, digest) in sums.items())


MNIST = Spec(
    "mnist",
    "idx",
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    # SHA-256 and sizes of the DECOMPRESSED files: the sums this repository has always checked (mirrors gzip
    # the files differently; the content is the same).
    _idx_files(
        {
            "train-images-idx3-ubyte.gz": (
                47040016,
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            "train-labels-idx1-ubyte.gz": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            "t10k-images-idx3-ubyte.gz": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            "t10k-labels-idx1-ubyte.gz": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        },
        of_content=True,
    ),
    _idx_parts(),
)

FASHION_MNIST = Spec(
    "fashion_mnist",
    "idx",
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    # Sizes and SHA-256 of the .gz files as served: tensorflow/datasets url_checksums/fashion_mnist.txt
    # (the same sums in ankane/torchvision-ruby; the authors' README gives their MD5s).
    _idx_files(
        {
            "train-images-idx3-ubyte.gz": (
                26421880,
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            ),
            "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        }
    ),
    _idx_parts(),
)

KMNIST = Spec(
    "kmnist",
    "idx",
    ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    # Sizes and SHA-256 of the .gz files as served: tensorflow/datasets url_checksums/kmnist.txt.
    _idx_files(
        {
            "train-images-idx3-ubyte.gz": (
                18165135,
                "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            ),
            "train-labels-idx1-ubyte.gz": (29497, "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
            "t10k-images-idx3-ubyte.gz": (3041136, "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
            "t10k-labels-idx1-ubyte.gz": (5120, "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"),
        }
    ),
    _idx_parts(),
)

USPS = Spec(
    "usps",
    "usps",
    ("https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/",),
    # Only MD5s are published, by torchvision (datasets/usps.py); LIBSVM's page gives none. Sizes unpublished.
    (
        File("usps.bz2", "md5:ec16c51db3855ca6c91edd34d0e9b197"),
        File("usps.t.bz2", "md5:8ea070ee2aca1ac39742fdd1ef5ed118"),
    ),
    {"train": ("usps.bz2",), "test": ("usps.t.bz2",)},
)

_CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10 = Spec(
    "cifar10",
    "cifar10",
    ("https://www.cs.toronto.edu/~kriz/",),
    # SHA-256: keras datasets/cifar10.py (file_hash); size 170498071 as several published manifests record
    # beside that SHA-256 and torchvision's MD5 c58f30108f718f92721af3b95e74349a.
    (File(_CIFAR10_ARCHIVE, "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170498071),),
    {"train": (_CIFAR10_ARCHIVE,), "test": (_CIFAR10_ARCHIVE,)},
)

_STL10_ARCHIVE = "stl10_binary.tar.gz"
STL10 = Spec(
    "stl10",
    "stl10",
    ("http://ai.stanford.edu/~acoates/stl10/",),
    # Size and SHA-256: tensorflow/datasets url_checksums/stl10.txt (torchvision's MD5:
    # 91f7769df0f17e558f3565bffb0c7dfb).
    (File(_STL10_ARCHIVE, "sha256:f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866", 2640397119),),
    {"train": (_STL10_ARCHIVE,), "test": (_STL10_ARCHIVE,), "unlabeled": (_STL10_ARCHIVE,)},
)

DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST, KMNIST, USPS, CIFAR10, STL10)}
