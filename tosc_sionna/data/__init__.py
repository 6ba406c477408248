"""Data for the student (NumPy; the dataset readers are shared with ``cache_tools``)."""

from __future__ import annotations

import os

import numpy as np

from cache_tools.datasets import (
    FASHION_MNIST_CLASSES,
    DatasetFormatError,
    DatasetNotFoundError,
    find_fashion_mnist,
)
from cache_tools.datasets import load_fashion_mnist as _load_raw
from cache_tools.format import (
    CacheCorruptError,
    CacheError,
    CacheFormatError,
    CacheIncompleteError,
    CacheMismatchError,
    TeacherCache,
)

from .reader import TeacherCacheDataset

__all__ = [
    "CacheCorruptError",
    "CacheError",
    "CacheFormatError",
    "CacheIncompleteError",
    "CacheMismatchError",
    "FASHION_MNIST_CLASSES",
    "TeacherCache",
    "TeacherCacheDataset",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "find_fashion_mnist",
    "load_fashion_mnist",
]


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Student inputs for one split: images float32 ``[N, 28, 28, 1]`` in [0, 1], labels int32."""
    images, labels = _load_raw(split, data_dir)
    return (images.astype(np.float32) / 255.0)[..., None], labels.astype(np.int32)
