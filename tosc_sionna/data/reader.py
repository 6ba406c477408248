"""The Keras-side reader of a teacher cache (NumPy + h5py, backend-neutral)."""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from cache_tools.augment import augment_batch
from cache_tools.datasets import load_dataset
from cache_tools.format import SAMPLE_ROWS, TeacherCache

from .pixels import student_inputs

TARGETS = ("kd", "label")


def split_rows(num_rows: int, held_out: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) cache rows: ``held_out`` < 1 is a fraction, >= 1 a count.

    Both sorted; the same seed gives the same split.
    """
    held = int(round(held_out * num_rows)) if held_out < 1 else int(held_out)
    if not 0 <= held < num_rows:
        raise ValueError(f"cannot hold out {held_out} of {num_rows} rows and keep some to "
                         "train on.")
    order = np.random.default_rng([int(seed), 2**32 - 1]).permutation(num_rows)
    return np.sort(order[held:]), np.sort(order[:held])


def _random_access(images: Any) -> None:
    """Tell the kernel a memory-mapped image array is read at random (shuffled
    batches): no read-ahead, so only the pages of the images used are read."""
    mapping = getattr(images, "_mmap", None)  # numpy.memmap's mapping, if any
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapping.madvise(mmap.MADV_RANDOM)


def _prefetch(images: Any, samples: np.ndarray) -> None:
    """Ask the kernel for a memory-mapped batch's pages all at once (MADV_WILLNEED), so
    that reads from disk overlap instead of faulting in one by one."""
    mapping = getattr(images, "_mmap", None)
    if mapping is None or not hasattr(mmap, "MADV_WILLNEED") or images.ndim < 2:
        return
    row_bytes = images.strides[0]
    # where the array's first row lies in the mapping (slices of a memmap share it)
    base = images.ctypes.data - np.frombuffer(mapping, np.uint8).ctypes.data
    if base < 0 or row_bytes <= 0:
        return
    page = mmap.PAGESIZE
    for sample in np.unique(samples):
        start = base + int(sample) * row_bytes
        first = start - start % page
        try:
            mapping.madvise(mmap.MADV_WILLNEED, first, start + row_bytes - first)
        except (OSError, ValueError):  # a view that does not map as assumed: skip the hint
            return


class TeacherCacheDataset(keras.utils.PyDataset):
    r"""Batches of (augmented view, targets) from a teacher cache and its dataset.

    Each epoch draws, from ``seed`` and the epoch number, a shuffled order and
    one view per sample (``view="random"``) and replays that view from its
    stored seed with the same NumPy augmentation the teacher saw. The cache is
    validated against the dataset first: a cache of other samples, another
    split or order is refused with a message that says what differs.

    Parameters
    ----------
    cache : str, path or :class:`cache_tools.format.TeacherCache`
    images, labels : arrays or None
        The dataset split the cache describes (uint8 ``[N, H, W]`` grey or
        ``[N, H, W, C]``, any array-like indexable by row arrays, e.g. a memory
        map; ints ``[N]``); None loads the cache's dataset and split
        (``dataset``, ``data_dir``).
    dataset : str, ``datasets.Dataset`` or None
        Where to load the split from when ``images`` is None: default the
        dataset the cache names (``fashion-mnist``, a hub id, a saved or image
        folder), read as it was at extraction (columns, resize). Its class
        names must be the cache's.
    batch_size : int, (default 128)
    shuffle : bool, (default True)
    seed : int, (default 0)
    view : "random" (default) or int
        Which view to use: a random one per sample per epoch, or a fixed one
        (0 is unaugmented).
    num_views : int or None
        With ``view="random"``: draw among the first ``num_views`` stored
        views only, as if the cache held that many (1: the unaugmented image
        only); None (default) uses them all. With an online ``teacher`` and
        ``fresh_views`` it sets the share of clean views (view 0); every
        other draw gets a fresh crop and flip.
    targets : "kd" (default) | "label"
        ``"kd"``: a dict of targets for
        :class:`~tosc_sionna.training.DistillationTrainer` (see Output);
        ``"label"``: int32 labels ``[batch]``.
    data_dir : str or None
        Where to look for the dataset (see :func:`tosc_sionna.data.load_fashion_mnist`).
    check_integrity : "quick" (default) | "full" | "none" (or bool)
        Which digests to recompute on opening (see
        :class:`cache_tools.format.TeacherCache`): ``"quick"`` hashes what is
        loaded on opening and relies on HDF5 chunk checksums for the rest.
    check_rows : "sample" (default) | "all"
        Compare the content hashes of :data:`~cache_tools.format.SAMPLE_ROWS`
        seeded rows (or of every row) of the cache with the data given,
        naming the first rows that differ (caches before format version 3:
        the whole-split digest).
    labelled_fraction : float, (default 1.0)
        Keep the labels of a fraction of the samples, drawn once from
        ``seed``; the others get label -1 in ``"kd"`` targets (teacher only).
    rows : int array or None
        Serve only these cache rows (e.g. the training part of a split whose
        other rows are held out for validation, see :func:`split_rows`); None
        serves all. ``labelled_fraction`` then applies to these rows.
    labelled_only : bool, (default False)
        Serve only the labelled samples: the teacher-free baseline of a
        few-label study. An epoch keeps its length of ``ceil(N / batch_size)``
        batches by cycling through the labelled samples (reshuffled on every
        pass), so a baseline makes as many optimizer steps as the distilled
        student it is compared with.
    teacher : callable or None
        Online distillation, the baseline the cache replaces: ``teacher(views)``
        maps a batch's uint8 views ``[batch, H, W(, C)]`` to float32
        probabilities ``[batch, C]`` on the cache's classes (e.g.
        :class:`cache_tools.online.OnlineTeacher`) and takes the place of the
        stored outputs. Rows, order, view choice, labels and the labelled
        samples stay the cache's, so only the teacher's outputs differ from a
        cached run. Needs ``targets="kd"`` and not ``labelled_only``.
    features : bool, (default False)
        Also serve the teacher's pooled features of each view for feature
        distillation: the targets gain ``"features"`` (see
        :class:`~tosc_sionna.training.DistillationTrainer`'s ``feature_dim``). The cache
        must store them (``tosc-cache extract --features``); not with an
        online ``teacher`` (its features are not computed).
    fresh_views : bool, (default True)
        With a ``teacher``: a sample drawn with an augmented view (``view >=
        1``) gets a new crop and flip every epoch, drawn from ``seed`` and the
        epoch instead of the stored view seeds (view 0 stays the unaugmented
        image, so the share of clean views is the cache's). False replays the
        stored views. Ignored without a teacher.
    **kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size`` of
        :class:`keras.utils.PyDataset`.

    Output (per batch)
    ------------------
    x : [batch, H, W, C], float32
        The augmented view, scaled to [0, 1] (C = 1 for grey images).
    y : dict (``targets="kd"``) or [batch] int32 (``targets="label"``)
        ``"label"``: int32 ``[batch]``, the true class, -1 where the row is
        unlabelled; ``"labelled"``: float32 ``[batch]``, 1 where the label may
        be used, else 0; ``"teacher"``: float32 ``[batch, C]``, the teacher's
        distribution of that view (reconstructed from the cache, or computed
        by an online ``teacher``); with ``features``, ``"features"``: float32
        ``[batch, D]``, the teacher's pooled features of that view.
    """

    def __init__(
        self,
        cache: str | os.PathLike | TeacherCache,
        images: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int = 0,
        view: str | int = "random",
        num_views: int | None = None,
        targets: str = "kd",
        data_dir: str | os.PathLike | None = None,
        check_integrity: bool | str = "quick",
        check_rows: str = "sample",
        dataset: Any = None,
        labelled_fraction: float = 1.0,
        labelled_only: bool = False,
        rows: Any = None,
        teacher: Callable[[np.ndarray], np.ndarray] | None = None,
        fresh_views: bool = True,
        features: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if targets not in TARGETS:
            raise ValueError(f"targets must be one of {TARGETS}; got {targets!r}.")
        if teacher is not None and (targets != "kd" or labelled_only):
            raise ValueError("teacher= gives teacher targets: it needs targets='kd' and "
                             "labelled_only=False.")
        if teacher is not None and not callable(teacher):
            raise TypeError(f"teacher must map uint8 views to probabilities; got {teacher!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        self.cache = cache if isinstance(cache, TeacherCache) else TeacherCache(
            cache, check_integrity=check_integrity
        )
        spec = self.cache.spec
        self.features = bool(features)
        if self.features and (spec.features is None or targets != "kd" or teacher is not None):
            raise ValueError(
                f"features=True needs a cache that stores teacher features (this one: "
                f"{spec.features or 'none'}; extract with `tosc-cache extract --features`), "
                "targets='kd' and no online teacher.")
        if view != "random" and not 0 <= int(view) < spec.num_views:
            raise ValueError(f"view must be 'random' or in [0, {spec.num_views}); got {view!r}.")
        if num_views is not None and (view != "random" or isinstance(num_views, bool)
                                      or not 1 <= int(num_views) <= spec.num_views):
            raise ValueError(
                f"num_views must be in [1, {spec.num_views}] (the cache's views) and goes with "
                f"view='random'; got num_views={num_views!r}, view={view!r}.")
        self.num_views = spec.num_views if num_views is None else int(num_views)
        names = None
        if images is None or labels is None:
            images, labels, names = load_dataset(
                spec.dataset if dataset is None else dataset, spec.split, data_dir,
                **self.cache.read_options)
        _random_access(images)
        self.cache.check_data(spec.dataset, spec.split, images, labels, rows=check_rows,
                              sample_size=SAMPLE_ROWS, seed=seed, class_names=names)
        # no copies: images are indexed per batch (a memory map stays a memory map) and
        # teacher distributions are reconstructed per batch from the stored outputs
        self.images = images
        self.index = self.cache.sample_index
        self.labels = self.cache.labels.astype(np.int32)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.view = view if view == "random" else int(view)
        self.targets = targets
        if not 0.0 <= float(labelled_fraction) <= 1.0:
            raise ValueError(f"labelled_fraction must lie in [0, 1]; got {labelled_fraction}.")
        if targets == "label" and labelled_fraction < 1.0:
            raise ValueError("labelled_fraction < 1 needs targets='kd' (the teacher's labels).")
        n = len(self.labels)
        self.rows = np.arange(n) if rows is None else np.unique(np.asarray(rows, np.int64))
        if not len(self.rows) or self.rows[0] < 0 or self.rows[-1] >= n:
            raise ValueError(f"rows must be a non-empty set of cache rows in [0, {n}).")
        served = len(self.rows)
        keep = self.rows[np.random.default_rng([self.seed, 2**31]).permutation(served)[
            : int(round(labelled_fraction * served))
        ]]
        self.labelled = np.zeros(n, dtype=bool)
        self.labelled[keep] = True
        self.labelled_only = bool(labelled_only)
        # The online teacher plugs into this reader instead of being a second data
        # source: order, views, labels and augmentation stay one piece of code, and the
        # reader calls it as a plain function (tosc_sionna never imports torch).
        self.teacher = teacher
        self.fresh_views = teacher is not None and bool(fresh_views)
        if self.labelled_only and not len(keep):
            raise ValueError(
                f"labelled_only=True but labelled_fraction={labelled_fraction} keeps no sample "
                f"of {n}: raise the fraction."
            )
        self.epoch = 0
        self._plan()

    @property
    def num_classes(self) -> int:
        return self.cache.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the student's input images."""
        shape = tuple(self.images.shape[1:])
        return shape + (1,) if len(shape) == 2 else shape

    def _plan(self) -> None:
        n, served = len(self.labels), len(self.rows)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.labelled_only:
            pool = np.flatnonzero(self.labelled)
            passes = -(-served // len(pool))
            self.order = np.concatenate(
                [rng.permutation(pool) if self.shuffle else pool for _ in range(passes)]
            )[:served]
        else:
            self.order = self.rows[rng.permutation(served)] if self.shuffle else self.rows
        if self.view == "random":
            self.views = rng.integers(0, self.num_views, size=n)
        else:
            self.views = np.full(n, self.view)
        if self.fresh_views:  # a stream of its own: order and views stay the cache's
            self.fresh_seeds = np.random.default_rng([self.seed, self.epoch, 2**31 + 1]).integers(
                1, 2**64, size=n, dtype=np.uint64)

    def replay_views(self, rows: np.ndarray, views: np.ndarray) -> np.ndarray:
        """The uint8 views ``[len(rows), H, W(, C)]`` the teacher saw for (row, view) pairs."""
        return self._view_images(rows, self.cache.view_seeds[rows, views])

    def _view_images(self, rows: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        samples = self.index[rows]
        _prefetch(self.images, samples)
        return augment_batch(self.images[samples], seeds, self.cache.spec.augmentation)

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range [0, {len(self)}).")
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        views = self.views[rows]
        if self.fresh_views:
            pixels = self._view_images(rows, np.where(views == 0, np.uint64(0),
                                                      self.fresh_seeds[rows]))
        else:
            pixels = self.replay_views(rows, views)
        x = student_inputs(pixels)
        if self.targets == "label":
            return x, self.labels[rows]
        if self.teacher is None:
            probs = self.cache.teacher_probs(rows, views)
        else:
            probs = np.asarray(self.teacher(pixels), dtype=np.float32)
            if probs.shape != (len(rows), self.num_classes):
                raise ValueError(f"teacher gave {probs.shape} for {len(rows)} views; expected "
                                 f"{(len(rows), self.num_classes)}.")
        labelled = self.labelled[rows]
        y = {"label": np.where(labelled, self.labels[rows], -1).astype(np.int32),
             "labelled": labelled.astype(np.float32),
             "teacher": probs.astype(np.float32, copy=False)}
        if self.features:
            y["features"] = np.asarray(self.cache.teacher_features(rows, views), np.float32)
        return x, y

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._plan()
