"""Data for the student (NumPy; the cache format and dataset readers are :mod:`tosc_cache`)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from tosc_cache import (
    CacheCorruptError,
    CacheError,
    CacheFormatError,
    CacheIncompleteError,
    CacheMismatchError,
    Checks,
    DataSource,
    TeacherCache,
)
from tosc_cache.datasets import (
    FASHION_MNIST_CLASSES,
    DatasetFormatError,
    DatasetNotFoundError,
    find_fashion_mnist,
    load_dataset,
)
from tosc_cache.datasets import load_fashion_mnist as _load_raw

from .pixels import decoded_pixels, student_inputs
from .reader import LabelPolicy, OnlineDistillation, TeacherCacheDataset, split_rows

__all__ = [
    "CacheCorruptError",
    "CacheError",
    "CacheFormatError",
    "CacheIncompleteError",
    "CacheMismatchError",
    "Checks",
    "DataSource",
    "FASHION_MNIST_CLASSES",
    "LabelPolicy",
    "OnlineDistillation",
    "TeacherCache",
    "TeacherCacheDataset",
    "default_teacher_cache",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "decoded_pixels",
    "find_fashion_mnist",
    "load_dataset",
    "load_fashion_mnist",
    "split_rows",
    "student_inputs",
]


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Student inputs for one split: images float32 ``[N, 28, 28, 1]`` in [0, 1], labels int32."""
    images, labels = _load_raw(split, data_dir)
    return student_inputs(images), labels.astype(np.int32)


#: File name of the Fashion-MNIST teacher cache shipped inside this package.
DEFAULT_TEACHER_CACHE = "fashion-mnist-lite0-train.h5"
REGENERATE = (
    "tosc-cache extract --model teachers/fashion-mnist-lite0 --dataset fashion-mnist "
    "--split train --views 4 --logits --test-accuracy --batch-size 256 "
    f"--out tosc_sionna/data/{DEFAULT_TEACHER_CACHE}"
)


def default_teacher_cache() -> Path:
    """Path of the shipped Fashion-MNIST train-split teacher cache (EfficientNet-Lite0 teacher)."""
    path = Path(str(resources.files(__name__).joinpath(DEFAULT_TEACHER_CACHE)))
    if not path.is_file():
        raise FileNotFoundError(
            f"The shipped teacher cache {path} is missing from this installation; "
            f"regenerate it from a clone with: {REGENERATE}"
        )
    return path
