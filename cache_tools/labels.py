"""A teacher's classes put on the dataset's class axis, or a refusal (NumPy only).

A classifier teacher's label set must be the dataset's: the same classes in
any order are aligned by name (case, spaces, ``_`` and ``-`` ignored) and the
permutation is recorded; other classes need a label map, a JSON object
``{"teacher class": "dataset class", ...}``. A map may send several teacher
classes to one dataset class (every ImageNet dog to CIFAR-10's "dog"): their
probabilities add up, i.e. the dataset class's logit is the log-sum-exp of
theirs; teacher classes left out of the map are dropped (the distribution is
renormalized over the mapped ones). Every dataset class needs at least one
teacher class.

A classifier fine-tuned without ``id2label`` carries transformers' default
names ``LABEL_0``, ``LABEL_1``, ...: they name no class, so such a teacher is
aligned by index (teacher class ``i`` is dataset class ``i``) when the class
counts match, with a :class:`LabelsByIndexWarning` saying so; other counts are
refused. A label map (``{"LABEL_3": "Dress", ...}``) still applies.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class LabelMismatchError(ValueError):
    """A teacher's classes are not the dataset's, and no label map says how they relate."""


class LabelsByIndexWarning(UserWarning):
    """A teacher's classes carry transformers' default names (``LABEL_i``) and were taken
    to be the dataset's classes in the dataset's order."""


def default_names(names: Sequence[str]) -> bool:
    """The names are transformers' defaults for a config without ``id2label``:
    ``LABEL_0``, ``LABEL_1``, ... in order."""
    return len(names) > 0 and all(str(n) == f"LABEL_{i}" for i, n in enumerate(names))


def normalize(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name)).strip().casefold()


@dataclass(frozen=True)
class LabelAlignment:
    """Teacher class ``i`` feeds dataset class ``targets[i]`` (-1: dropped)."""

    teacher_names: tuple[str, ...]
    dataset_names: tuple[str, ...]
    targets: tuple[int, ...]
    #: The teacher's classes had transformers' default names and were aligned by index.
    by_index: bool = False

    def notice(self, model: str) -> str:
        """One line saying that ``model``'s classes were aligned by index (``by_index``)."""
        n, data = len(self.teacher_names), self.dataset_names
        return (f"{model} names its {n} classes {_range(self.teacher_names)} (transformers' "
                f"defaults: fine-tuned without id2label); they are taken as the dataset's "
                f"classes in the dataset's order (LABEL_0 = {data[0]!r}, ..., "
                f"LABEL_{n - 1} = {data[-1]!r}). If the teacher's order differs, pass "
                "--label-map FILE, a JSON object {\"LABEL_0\": \"<dataset class>\", ...}.")

    @property
    def identity(self) -> bool:
        """The teacher's classes are the dataset's, in the same order, by the same names."""
        return self.targets == tuple(range(len(self.dataset_names))) and [
            normalize(n) for n in self.teacher_names] == [normalize(n) for n in self.dataset_names]

    @property
    def permutation(self) -> list[int] | None:
        """``perm`` with dataset class ``j`` = teacher class ``perm[j]``, for a one-to-one map."""
        if sorted(self.targets) != list(range(len(self.dataset_names))):
            return None
        perm = [0] * len(self.dataset_names)
        for teacher, target in enumerate(self.targets):
            perm[target] = teacher
        return perm

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Teacher logits ``[..., C_teacher]`` -> logits on the dataset's axis ``[..., C]``."""
        if self.targets == tuple(range(len(self.dataset_names))) and len(
                self.teacher_names) == len(self.dataset_names):
            return logits
        perm = self.permutation
        if perm is not None:
            return logits[..., perm]
        z = np.asarray(logits, dtype=np.float64)
        out = np.empty(z.shape[:-1] + (len(self.dataset_names),))
        targets = np.asarray(self.targets)
        for j in range(len(self.dataset_names)):
            members = z[..., targets == j]
            top = members.max(axis=-1, keepdims=True)
            out[..., j] = (top + np.log(np.exp(members - top).sum(-1, keepdims=True)))[..., 0]
        return out.astype(logits.dtype, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """What a cache records: the teacher's classes and where each went."""
        out: dict[str, Any] = {"teacher_class_names": list(self.teacher_names)}
        perm = self.permutation
        if perm is not None:
            out["label_permutation"] = perm
        else:
            out["label_targets"] = list(self.targets)
        return out


def read_label_map(path: str | os.PathLike) -> dict[str, str]:
    try:
        mapping = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise LabelMismatchError(f"Cannot read the label map {path}: {err}.") from err
    if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise LabelMismatchError(f"{path} must hold a JSON object of teacher class -> "
                                 "dataset class names.")
    return mapping


def align_labels(
    teacher_names: Sequence[str], dataset_names: Sequence[str],
    label_map: dict[str, str] | None = None,
) -> LabelAlignment:
    """Match the teacher's classes to the dataset's (see the module docstring)."""
    teacher, data = tuple(map(str, teacher_names)), tuple(map(str, dataset_names))
    index = {}
    for j, name in enumerate(data):
        if normalize(name) in index:
            raise LabelMismatchError(f"The dataset has two classes named like {name!r}.")
        index[normalize(name)] = j
    if label_map is None:
        targets = [index.get(normalize(name), -1) for name in teacher]
        if len(teacher) == len(data) and sorted(targets) == list(range(len(data))):
            return LabelAlignment(teacher, data, tuple(targets))
        if default_names(teacher):  # unnamed: by index, or refused
            if len(teacher) == len(data):
                return LabelAlignment(teacher, data, tuple(range(len(data))), by_index=True)
            raise LabelMismatchError(
                f"The teacher's {len(teacher)} classes carry transformers' default names "
                f"{_range(teacher)} (fine-tuned without id2label), which can only be matched "
                f"by index, and the dataset has {len(data)} classes {_show(data)}. Map them "
                "with --label-map FILE (a JSON object {\"LABEL_0\": \"<dataset class>\", "
                "...}), or use a teacher trained on these classes.")
        raise LabelMismatchError(
            f"The teacher's {len(teacher)} classes are not the dataset's {len(data)}: teacher "
            f"{_show(teacher)}; dataset {_show(data)}. Map them with --label-map FILE (a JSON "
            "object of teacher class -> dataset class), or use a teacher trained on these "
            "classes.")
    teacher_index = {normalize(name): i for i, name in enumerate(teacher)}
    unknown_teacher = [k for k in label_map if normalize(k) not in teacher_index]
    unknown_data = [v for v in label_map.values() if normalize(v) not in index]
    if unknown_teacher or unknown_data:
        raise LabelMismatchError(
            "The label map names classes that do not exist: "
            + (f"teacher classes {unknown_teacher[:10]} (the teacher has {_show(teacher)})"
               if unknown_teacher else "")
            + ("; " if unknown_teacher and unknown_data else "")
            + (f"dataset classes {unknown_data[:10]} (the dataset has {_show(data)})"
               if unknown_data else "") + ".")
    targets = [-1] * len(teacher)
    for source, target in label_map.items():
        targets[teacher_index[normalize(source)]] = index[normalize(target)]
    missing = [data[j] for j in range(len(data)) if j not in targets]
    if missing:
        raise LabelMismatchError(f"The label map gives no teacher class to the dataset "
                                 f"classes {missing}.")
    return LabelAlignment(teacher, data, tuple(targets))


def _range(names: Sequence[str]) -> str:
    return f"{names[0]} ... {names[-1]}" if len(names) > 2 else ", ".join(names)


def _show(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)})"
