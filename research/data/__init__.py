"""Datasets as float32 matrices: `load(name, split, data_dir) -> Dataset(x, y, image_shape, name)`."""

from research.data.fetch import DataNotFoundError
from research.data.sources import Dataset, PixelRows, available, load
from research.data.subsets import imbalanced, split_validation
from research.data.synthetic import Blobs

__all__ = ["Blobs", "DataNotFoundError", "Dataset", "PixelRows", "available", "imbalanced", "load", "split_validation"]
