"""Pair a cache with the data it describes: open, load the split, check the match.

The one path from a cache file (or an opened :class:`TeacherCache`) to a
cache and data that are known to belong together, used by the Keras reader
(``tosc_sionna.data.TeacherCacheDataset``) and ``tosc-cache verify``. It runs
one way: open the cache (:mod:`.reader`), load the split it names unless the
caller gives it (:mod:`.datasets`), compare content hashes (:mod:`.integrity`).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .datasets import DatasetNotFoundError, load_dataset
from .integrity import INTEGRITY_CHECKS, SAMPLE_ROWS
from .reader import TeacherCache

ROW_CHECKS = ("sample", "all")


@dataclass(frozen=True)
class DataSource:
    """Where the data a cache describes comes from.

    Parameters
    ----------
    images, labels : arrays or None
        The split itself (uint8 ``[N, H, W]`` grey or ``[N, H, W, C]``, any
        array-like indexable by row arrays, e.g. a memory map; ints ``[N]``).
        Both or neither: None loads the split from ``dataset``.
    dataset : str, ``datasets.Dataset`` or None
        Where to load the split from when ``images`` is None: default the
        dataset the cache names (``fashion-mnist``, a hub id, a saved or image
        folder), read as it was at extraction (columns, resize). Its class
        names must be the cache's.
    split : str or None
        The split to load and check against; default the cache's.
    data_dir : str, path or None
        Where to look for the dataset's files (the built-in Fashion-MNIST).
    """

    images: Any = None
    labels: Any = None
    dataset: Any = None
    split: str | None = None
    data_dir: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if (self.images is None) != (self.labels is None):
            raise ValueError("DataSource needs both images and labels, or neither (then the "
                             "split is loaded from the dataset).")


@dataclass(frozen=True)
class Checks:
    """What is checked when a cache is opened and paired with its data.

    Parameters
    ----------
    integrity : "quick" (default) | "full" | "none" (or bool)
        Which digests to recompute on opening (see :class:`TeacherCache`):
        ``"quick"`` hashes what is loaded on opening and relies on HDF5 chunk
        checksums for the rest.
    rows : "sample" (default) | "all"
        Compare the content hashes of ``sample_size`` seeded rows (or of every
        row) of the cache with the data given, naming the first rows that
        differ (caches before format version 3: the whole-split digest).
    sample_size : int, (default :data:`~tosc_cache.integrity.SAMPLE_ROWS`)
    """

    integrity: bool | str = "quick"
    rows: str = "sample"
    sample_size: int = SAMPLE_ROWS

    def __post_init__(self) -> None:
        if not isinstance(self.integrity, bool) and self.integrity not in INTEGRITY_CHECKS:
            raise ValueError(f"integrity must be a bool or one of {INTEGRITY_CHECKS}; got "
                             f"{self.integrity!r}.")
        if self.rows not in ROW_CHECKS:
            raise ValueError(f"rows must be one of {ROW_CHECKS}; got {self.rows!r}.")
        if int(self.sample_size) < 1:
            raise ValueError(f"sample_size must be >= 1; got {self.sample_size}.")


@dataclass(frozen=True)
class PairedCache:
    """A cache and the data split it was checked against (see :func:`pair`)."""

    cache: TeacherCache
    #: The split's images, indexed by ``cache.sample_index`` (not copied: a memory map
    #: stays one).
    images: Any
    #: The split's labels (the cache's rows' labels are ``cache.labels``).
    labels: np.ndarray


def pair(
    cache: str | os.PathLike | TeacherCache, source: DataSource | None = None,
    checks: Checks | None = None, seed: int = 0,
) -> PairedCache:
    """Open ``cache``, load (or take) its split and refuse data it does not describe.

    ``seed`` draws the rows whose content hashes are compared
    (``checks.rows="sample"``). Raises a :class:`~tosc_cache.errors.CacheError`
    that says what differs (other samples, split, order or classes).
    """
    source = source or DataSource()
    checks = checks or Checks()
    if not isinstance(cache, TeacherCache):
        cache = TeacherCache(cache, check_integrity=checks.integrity)
    spec = cache.spec
    split = spec.split if source.split is None else source.split
    names = None
    if source.images is None:
        try:
            images, labels, names = load_dataset(
                spec.dataset if source.dataset is None else source.dataset, split,
                source.data_dir, **cache.read_options)
        except DatasetNotFoundError as err:
            if (source.dataset is not None or spec.dataset == "fashion-mnist"
                    or os.path.exists(os.path.expanduser(spec.dataset))):
                raise  # given here, built in, or there but unfit: the message says it all
            raise DatasetNotFoundError(_recorded_dataset_missing(spec.dataset, split, err)) \
                from err
    else:
        images, labels = source.images, source.labels
    random_access(images)
    # the cache's own name: the data may have moved; the row hashes check its contents
    cache.check_data(spec.dataset, split, images, labels, rows=checks.rows,
                     sample_size=int(checks.sample_size), seed=seed, class_names=names)
    return PairedCache(cache, images, labels)


#: How to pair a cache with its data where it is now.
MOVED_FIX = ("pass its new place: --dataset NEW_PATH (tosc-cache verify, kd_awgn.py) or "
             "DataSource(dataset=NEW_PATH) in Python; the row hashes check that it holds the "
             "same images and labels")


def _recorded_dataset_missing(name: str, split: str, err: Exception) -> str:
    """One line: the dataset the cache records cannot be loaded, and how to point to it."""
    if os.path.isabs(name) and not os.path.exists(name):
        return (f"This cache was extracted from the dataset {name} (split {split!r}), which is "
                f"not there any more. If it moved, {MOVED_FIX}.")
    return (f"This cache was extracted from the dataset {name!r} (split {split!r}), which "
            f"cannot be loaded here: {err} If it is elsewhere, {MOVED_FIX}.")


def random_access(images: Any) -> None:
    """Tell the kernel a memory-mapped image array is read at random (shuffled
    batches): no read-ahead, so only the pages of the images used are read."""
    mapping = getattr(images, "_mmap", None)  # numpy.memmap's mapping, if any
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapping.madvise(mmap.MADV_RANDOM)
