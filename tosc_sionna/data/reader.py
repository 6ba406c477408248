"""The Keras-side reader of a teacher cache (NumPy + h5py, backend-neutral)."""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tosc_cache.augment import augment_batch
from tosc_cache.pairing import Checks, DataSource, PairedCache, pair
from tosc_cache.reader import TeacherCache

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


@dataclass(frozen=True)
class LabelPolicy:
    """Which samples' labels a reader serves (a few-label study).

    Parameters
    ----------
    fraction : float, (default 1.0)
        Keep the labels of a fraction of the served samples, drawn once from
        the reader's ``seed``; the others get label -1 in ``"kd"`` targets
        (teacher only).
    only : bool, (default False)
        Serve only the labelled samples: the teacher-free baseline of a
        few-label study. An epoch keeps its length of ``ceil(N / batch_size)``
        batches by cycling through the labelled samples (reshuffled on every
        pass), so a baseline makes as many optimizer steps as the distilled
        student it is compared with.
    """

    fraction: float = 1.0
    only: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.fraction) <= 1.0:
            raise ValueError(f"the labelled fraction must lie in [0, 1]; got {self.fraction}.")


@dataclass(frozen=True)
class OnlineDistillation:
    """An online teacher in place of the cached outputs (the baseline the cache replaces).

    Parameters
    ----------
    teacher : callable
        ``teacher(views)`` maps a batch's uint8 views ``[batch, H, W(, C)]`` to
        float32 probabilities ``[batch, C]`` on the cache's classes (e.g.
        :class:`cache_tools.online.OnlineTeacher`). Rows, order, view choice,
        labels and the labelled samples stay the cache's, so only the teacher's
        outputs differ from a cached run.
    fresh_views : bool, (default True)
        A sample drawn with an augmented view (``view >= 1``) gets a new crop
        and flip every epoch, drawn from the reader's ``seed`` and the epoch
        instead of the stored view seeds (view 0 stays the unaugmented image,
        so the share of clean views is the cache's). False replays the stored
        views.
    """

    teacher: Callable[[np.ndarray], np.ndarray]
    fresh_views: bool = True

    def __post_init__(self) -> None:
        if not callable(self.teacher):
            raise TypeError(f"teacher must map uint8 views to probabilities; got "
                            f"{self.teacher!r}.")


class TeacherCacheDataset(keras.utils.PyDataset):
    r"""Batches of (augmented view, targets) from a teacher cache and its dataset.

    Each epoch draws, from ``seed`` and the epoch number, a shuffled order and
    one view per sample (``view="random"``) and replays that view from its
    stored seed with the same NumPy augmentation the teacher saw. The cache is
    paired with its dataset first (:func:`tosc_cache.pairing.pair`): a cache of
    other samples, another split or order is refused with a message that says
    what differs.

    Parameters
    ----------
    cache : str, path, :class:`tosc_cache.TeacherCache` or :class:`tosc_cache.PairedCache`
        A cache, or one already paired with its data (then ``data`` and
        ``checks`` must be None).
    data : :class:`tosc_cache.DataSource` or None
        The data the cache describes: arrays (``DataSource(images, labels)``),
        or where to load the split from (``DataSource(dataset=...,
        data_dir=...)``); None (default) loads the dataset and split the cache
        names, read as it was at extraction.
    batch_size : int, (default 128)
    shuffle : bool, (default True)
    seed : int, (default 0)
        Order, views, labelled samples and the rows whose content hashes are checked.
    view : "random" (default) or int
        Which view to use: a random one per sample per epoch, or a fixed one
        (0 is unaugmented).
    num_views : int or None
        With ``view="random"``: draw among the first ``num_views`` stored
        views only, as if the cache held that many (1: the unaugmented image
        only); None (default) uses them all. With an ``online`` teacher and
        fresh views it sets the share of clean views (view 0); every other
        draw gets a fresh crop and flip.
    targets : "kd" (default) | "label"
        ``"kd"``: a dict of targets for
        :class:`~tosc_sionna.training.DistillationTrainer` (see Output);
        ``"label"``: int32 labels ``[batch]``.
    rows : int array or None
        Serve only these cache rows (e.g. the training part of a split whose
        other rows are held out for validation, see :func:`split_rows`); None
        serves all. The label policy then applies to these rows.
    labelling : :class:`LabelPolicy` or None
        Which samples keep their labels (default: all); ``LabelPolicy(fraction,
        only=True)`` serves the labelled samples alone.
    checks : :class:`tosc_cache.Checks` or None
        What is verified on opening and pairing (default: quick integrity, a
        seeded sample of row hashes).
    online : :class:`OnlineDistillation` or None
        An online teacher takes the place of the stored outputs. Needs
        ``targets="kd"``, not ``labelling.only``, and no ``features``.
    features : bool, (default False)
        Also serve the teacher's pooled features of each view for feature
        distillation: the targets gain ``"features"`` (see
        :class:`~tosc_sionna.training.DistillationTrainer`'s ``feature_dim``). The cache
        must store them (``tosc-cache extract --features``).
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
        by an online teacher); with ``features``, ``"features"``: float32
        ``[batch, D]``, the teacher's pooled features of that view.
    """

    def __init__(
        self,
        cache: str | os.PathLike | TeacherCache | PairedCache,
        data: DataSource | None = None,
        *,
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int = 0,
        view: str | int = "random",
        num_views: int | None = None,
        targets: str = "kd",
        rows: Any = None,
        labelling: LabelPolicy | None = None,
        checks: Checks | None = None,
        online: OnlineDistillation | None = None,
        features: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        labelling = labelling or LabelPolicy()
        if targets not in TARGETS:
            raise ValueError(f"targets must be one of {TARGETS}; got {targets!r}.")
        if online is not None and (targets != "kd" or labelling.only):
            raise ValueError("online= gives teacher targets: it needs targets='kd' and "
                             "not LabelPolicy(only=True).")
        if online is not None and not isinstance(online, OnlineDistillation):
            raise TypeError(f"online must be an OnlineDistillation; got {online!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        if isinstance(cache, PairedCache):
            if data is not None or checks is not None:
                raise ValueError("a PairedCache is already paired with its data: pass no "
                                 "data= or checks=.")
            paired = cache
        else:
            paired = pair(cache, data, checks, seed=seed)
        self.cache = paired.cache
        spec = self.cache.spec
        self.features = bool(features)
        if self.features and (spec.features is None or targets != "kd" or online is not None):
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
        # no copies: images are indexed per batch (a memory map stays a memory map) and
        # teacher distributions are reconstructed per batch from the stored outputs
        self.images = paired.images
        self.index = self.cache.sample_index
        self.labels = self.cache.labels.astype(np.int32)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.view = view if view == "random" else int(view)
        self.targets = targets
        if targets == "label" and labelling.fraction < 1.0:
            raise ValueError("a labelled fraction < 1 needs targets='kd' (the teacher's labels).")
        n = len(self.labels)
        self.rows = np.arange(n) if rows is None else np.unique(np.asarray(rows, np.int64))
        if not len(self.rows) or self.rows[0] < 0 or self.rows[-1] >= n:
            raise ValueError(f"rows must be a non-empty set of cache rows in [0, {n}).")
        served = len(self.rows)
        keep = self.rows[np.random.default_rng([self.seed, 2**31]).permutation(served)[
            : int(round(labelling.fraction * served))
        ]]
        self.labelled = np.zeros(n, dtype=bool)
        self.labelled[keep] = True
        self.labelled_only = bool(labelling.only)
        # The online teacher plugs into this reader instead of being a second data
        # source: order, views, labels and augmentation stay one piece of code, and the
        # reader calls it as a plain function (tosc_sionna never imports torch).
        self.teacher = None if online is None else online.teacher
        self.fresh_views = online is not None and bool(online.fresh_views)
        if self.labelled_only and not len(keep):
            raise ValueError(
                f"LabelPolicy(only=True) but its fraction {labelling.fraction} keeps no sample "
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
