"""Datasets as float32 matrices: `load(name, split, data_dir) -> Dataset(x, y, image_shape, name)`."""

from research.data.sources import DataNotFoundError, Dataset, available, load
from research.data.subsets import imbalanced, split_validation

__all__ = ["DataNotFoundError", "Dataset", "available", "imbalanced", "load", "split_validation"]
