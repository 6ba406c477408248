"""The cache spec: everything that defines a cache's contents (its provenance).

Written by :mod:`tosc_cache.writer` into the file's root attributes, read
back by :mod:`tosc_cache.reader`. The array layout of a spec comes from the
codec of its compression kind (:mod:`tosc_cache.codecs`). The file layout is
format version :data:`FORMAT_VERSION` (see ``docs/cache-format.md``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .codecs import CODECS, Codec, get_codec
from .errors import UsageError
from .features import FEATURE_METHODS

FORMAT_NAME = "tosc-teacher-cache"
#: Version written by this tool (every compression): version 3 adds the per-row
#: content hashes ``row_hash``, HDF5 chunk checksums and the ``environment``.
#: Version 1 (``topk``/``logits``) and 2 (``basis``) caches are still read.
FORMAT_VERSION = 3
READ_VERSIONS = (1, 2, 3)


def calibration_rows(spec: CacheSpec) -> int:
    """Samples (all their views) whose logits fit the per-cache arrays of a compression
    (a basis, tcq codebooks); 0 for a compression that fits nothing."""
    rows = spec.codec.calibration_rows
    return min(spec.num_samples, max(1, rows // spec.num_views)) if rows else 0


def _kinds(flag: str) -> str:
    return " or ".join(repr(kind) for kind, codec in CODECS.items() if getattr(codec, flag))


@dataclass
class CacheSpec:
    """Everything that defines a cache's contents (its provenance).

    Two extractions with equal specs produce identical caches; a resumed
    extraction must have the spec of the interrupted one.
    """

    teacher_id: str
    teacher_digest: str
    teacher_kind: str
    class_names: list[str]
    dataset: str
    split: str
    dataset_digest: str
    num_samples: int
    num_views: int
    seed: int
    augmentation: dict[str, Any]
    preprocessing: dict[str, Any]
    probs: str = "topk"
    topk: int = 5
    features: str | None = None
    feature_dim: int = 0
    teacher_params: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    #: Bits per row (sample and view) of a ``tcq`` compression.
    bits: int = 0
    #: How the dataset was read (``image_column``, ``label_column``, ``image_size``)
    #: and its own class names where they differ from the teacher's (version 3).
    dataset_options: dict[str, Any] = field(default_factory=dict)
    #: The file layout version (not part of the provenance: a reader sets it
    #: from the file; the writer always writes :data:`FORMAT_VERSION`).
    format_version: int = field(default=FORMAT_VERSION, compare=False)

    def __post_init__(self) -> None:
        try:
            codec = get_codec(self.probs)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if self.features not in (None,) + FEATURE_METHODS:
            raise UsageError(
                f"features must be None or one of {FEATURE_METHODS}; got {self.features!r}."
            )
        try:
            codec.validate(self)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if not codec.uses_rank and self.rank:
            raise UsageError(f"rank applies to probs={_kinds('uses_rank')} only; got "
                             f"probs={self.probs!r}.")
        if not codec.uses_bits and self.bits:
            raise UsageError(f"bits applies to probs={_kinds('uses_bits')} only; got "
                             f"probs={self.probs!r}.")
        if self.num_views < 1 or self.num_samples < 1:
            raise UsageError("A cache needs at least one sample and one view.")

    @property
    def codec(self) -> Codec:
        """The codec of this spec's compression kind (``probs``)."""
        return get_codec(self.probs)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        fields = asdict(self)
        del fields["format_version"]
        if not self.rank:
            del fields["rank"]  # topk and logits specs keep their version-1 form
        if not self.bits:
            del fields["bits"]  # and the others their earlier form
        if not self.dataset_options:
            del fields["dataset_options"]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, format_version: int = FORMAT_VERSION) -> CacheSpec:
        return cls(**json.loads(text), format_version=int(format_version))

    def array_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Name -> (shape, dtype) of every array the cache stores."""
        n, v, c = self.num_samples, self.num_views, self.num_classes
        layout = {
            "sample_index": ((n,), np.dtype(np.int64)),
            "labels": ((n,), np.dtype(np.int64)),
            "view_seeds": ((n, v), np.dtype(np.uint64)),
        }
        if self.format_version >= 3:
            layout["row_hash"] = ((n,), np.dtype(np.uint64))
        layout.update(self.codec.shared_layout(self))
        layout.update(self.codec.row_layout(self))
        if self.teacher_kind == "encoder":
            layout["head/weight"] = ((c, self.feature_dim), np.dtype(np.float32))
            layout["head/bias"] = ((c,), np.dtype(np.float32))
        if self.features == "float16":
            layout["teacher/features"] = ((n, v, self.feature_dim), np.dtype(np.float16))
        elif self.features == "int8":
            layout["teacher/features"] = ((n, v, self.feature_dim), np.dtype(np.int8))
            layout["teacher/features_scale"] = ((n, v), np.dtype(np.float32))
        return layout

    def shared_arrays(self) -> list[str]:
        """Teacher arrays stored once per cache (fitted by the codec), not per row."""
        return list(self.codec.shared_layout(self))

    def row_arrays(self) -> list[str]:
        """Arrays written per batch of rows during extraction (the teacher outputs)."""
        shared = self.codec.shared_layout(self)
        return [name for name in self.array_layout()
                if name.startswith("teacher/") and name not in shared]


def spec_attrs(spec: CacheSpec) -> dict[str, Any]:
    """Root attributes recording a spec (JSON for nested values)."""
    attrs: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": spec.format_version,
        "tool_version": __version__,
        "spec": spec.to_json(),
    }
    for key, value in json.loads(spec.to_json()).items():
        nested = isinstance(value, (dict, list)) or value is None
        attrs[key] = json.dumps(value) if nested else value
    return attrs

