"""Online distillation, the baseline a teacher cache replaces (torch + transformers, lazily).

:class:`OnlineTeacher` runs a cache's teacher on the views of each training
batch as the batch is drawn, instead of reading the outputs stored at
extraction. It gives what a cache of full-precision probabilities of those
views would give: the teacher's own preprocessing, its logits put on the
cache's class axis as extraction put them, the softmax at temperature 1 (the
loss tempers it, as it tempers a cache's). It is the teacher half only: the
student's data source stays :class:`tosc_sionna.data.TeacherCacheDataset`
(``online=OnlineDistillation(OnlineTeacher(...))``), so an online run draws the same rows, order,
views and labels as a cached one and differs only in where the teacher's
outputs come from. Importing this module imports neither torch nor TensorFlow.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from tosc_cache.errors import CacheMismatchError
from tosc_cache.probability import softmax
from tosc_cache.reader import TeacherCache

from .labels import LabelAlignment, LabelMismatchError, align_labels
from .teachers import DEFAULT_PROMPT, load_teacher

#: Preprocessing entries that name rather than define the image path (a processor
#: class is called ``ViTImageProcessor`` or ``ViTImageProcessorPil`` by version).
_NAMES_ONLY = ("processor",)


class OnlineTeacher:
    r"""A cache's teacher, run on the views as training draws them.

    Loading checks that this is the teacher the cache was extracted with: the
    same classes (aligned to the dataset's as the cache records), the same
    weights (digest) and the same preprocessing; anything else is a
    :class:`~tosc_cache.errors.CacheMismatchError` that says what differs.
    Each call adds its forward time to :attr:`seconds` and its images to
    :attr:`images`. Torch keeps its own thread setting, as extraction does.

    Parameters
    ----------
    model : str or path
        The teacher: a directory saved with ``save_pretrained`` (or a hub id).
    cache : str, path or :class:`~tosc_cache.TeacherCache`
        The cache it stands in for: its teacher kind, classes, prompt (CLIP)
        and fitted head (encoder) are used.
    device : str, (default "cpu")
        Where the teacher runs.

    Input
    -----
    views : [batch, H, W] or [batch, H, W, C], uint8
        Views of dataset images, as :func:`tosc_cache.augment.augment_batch`
        makes them (the pixels the student sees, times 255).

    Output
    ------
    probs : [batch, num_classes], float32
        The teacher's distribution over the cache's classes.

    Example
    -------
    >>> teacher = OnlineTeacher("teachers/fashion-mnist-lite0", default_teacher_cache())
    >>> data = TeacherCacheDataset(default_teacher_cache(),
    ...                            online=OnlineDistillation(teacher))
    >>> x, y = data[0]  # y[:, 1:] computed now, on freshly augmented views
    """

    def __init__(
        self, model: str | os.PathLike, cache: str | os.PathLike | TeacherCache,
        device: str = "cpu",
    ) -> None:
        self.cache = cache if isinstance(cache, TeacherCache) else TeacherCache(cache)
        spec = self.cache.spec
        cached = spec.preprocessing
        resize = cached.get("resize")
        # a cache extracted with --image-size records the square it warped to
        image_size = int(resize["height"]) if cached.get("rule") == "square" else None
        self.teacher = load_teacher(
            model, kind=spec.teacher_kind, device=device, image_size=image_size,
            class_names=list(spec.class_names), prompt=spec.extra.get("prompt") or DEFAULT_PROMPT)
        where = f"{model} is not the teacher of {self.cache.path}"
        self.alignment = _alignment(self.teacher.class_names, spec, where)
        if self.teacher.digest != spec.teacher_digest:
            raise CacheMismatchError(
                f"{where}: its weights differ (digest {self.teacher.digest[:12]}... here, "
                f"{spec.teacher_digest[:12]}... in the cache, from {spec.teacher_id}).")
        differs = _preprocessing_differences(cached, self.teacher.preprocess.to_dict())
        if differs:
            raise CacheMismatchError(f"{where}: its preprocessing differs ({'; '.join(differs)}).")
        if self.teacher.kind == "encoder":
            self.teacher.head = (self.cache.arrays["head/weight"], self.cache.arrays["head/bias"])
        self.seconds, self.images = 0.0, 0

    @property
    def num_classes(self) -> int:
        return self.cache.num_classes

    @property
    def threads(self) -> int:
        """Torch's intra-op threads (what extraction records in its environment)."""
        import torch

        return int(torch.get_num_threads())

    def __call__(self, views: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        logits, _ = self.teacher(views)
        if self.alignment is not None:
            logits = self.alignment.apply(logits)
        probs = softmax(logits).astype(np.float32)
        self.seconds += time.perf_counter() - start
        self.images += len(views)
        return probs


def _alignment(teacher_names: list[str], spec: Any, where: str) -> LabelAlignment | None:
    """How extraction put this teacher's classes on the cache's axis (None: the
    teacher's kind takes the cache's classes), or a mismatch error."""
    if spec.teacher_kind != "classifier":
        return None
    options, dataset_names = spec.dataset_options, tuple(spec.class_names)
    if "teacher_class_names" not in options:  # the teacher's classes were the dataset's
        try:
            alignment = align_labels(teacher_names, dataset_names)
        except LabelMismatchError:
            alignment = None
        if alignment is not None and alignment.identity:
            return alignment
        recorded = list(dataset_names)
    else:
        recorded = list(options["teacher_class_names"])
        if list(teacher_names) == recorded:
            if "label_permutation" in options:
                targets = [0] * len(recorded)
                for dataset_class, teacher_class in enumerate(options["label_permutation"]):
                    targets[teacher_class] = dataset_class
            else:
                targets = list(options["label_targets"])
            return LabelAlignment(tuple(recorded), dataset_names, tuple(targets))
    raise CacheMismatchError(
        f"{where}: its classes differ: {_show(teacher_names)} here, {_show(recorded)} in the "
        "cache. Give the teacher the cache was extracted with.")


def _show(names: list[str], limit: int = 10) -> str:
    return f"{list(names)[:limit]}{'...' if len(names) > limit else ''} ({len(names)})"


def _preprocessing_differences(cached: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The image-path entries a cache records that differ from the teacher's now
    (older caches record fewer entries, and the resize as ``[h, w]``)."""

    def plain(key: str, value: Any) -> Any:
        if key == "resize" and isinstance(value, dict):
            return [int(value["height"]), int(value["width"])] if "height" in value else value
        return list(value) if isinstance(value, tuple) else value

    return [f"{key}: {cached[key]!r} in the cache, {now[key]!r} here"
            for key in sorted(set(cached) & set(now) - set(_NAMES_ONLY))
            if plain(key, cached[key]) != plain(key, now[key])]
