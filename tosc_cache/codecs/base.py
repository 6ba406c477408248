"""The one interface every compression kind of the teacher's distribution implements.

A :class:`Codec` knows the arrays its kind stores (per row and once per
cache), how to fit the per-cache arrays on calibration logits, how to encode
logits into row arrays and decode row arrays back into distributions. The
writer, the reader, extraction and ``tosc-cache info`` ask the codec of a
spec's ``probs`` (:func:`tosc_cache.codecs.get_codec`); no other code
dispatches on the kind's name.

``spec`` below is a :class:`tosc_cache.spec.CacheSpec` (read for
``num_samples``, ``num_views``, ``num_classes``, ``topk``, ``rank``, ``bits``).
Array names are those of the cache file (``teacher/...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Array name -> (shape, dtype).
Layout = dict[str, tuple[tuple[int, ...], np.dtype]]


class Codec:
    """A compression kind (subclasses set :attr:`kind` and implement the methods)."""

    #: The ``probs`` name of this kind in a cache spec.
    kind: str = ""
    #: Which spec fields the kind uses (the others must be left at 0).
    uses_topk: bool = False
    uses_rank: bool = False
    uses_bits: bool = False
    #: Logit rows (first samples, all their views) the per-cache arrays are fitted
    #: on; 0: nothing is fitted (no per-cache arrays).
    calibration_rows: int = 0

    def validate(self, spec: Any) -> None:
        """Raise ValueError, saying why, unless the spec's settings suit this kind."""

    def shared_layout(self, spec: Any) -> Layout:
        """The arrays stored once per cache (fitted by :meth:`fit`)."""
        return {}

    def row_layout(self, spec: Any) -> Layout:
        """The arrays stored per row, ``[num_samples, num_views, ...]``."""
        raise NotImplementedError

    def fit(self, logits: np.ndarray, spec: Any) -> dict[str, np.ndarray]:
        """The per-cache arrays, fitted on calibration logit rows ``[rows, C]``."""
        raise ValueError(f"a {self.kind} compression fits nothing per cache.")

    def encode(self, logits: np.ndarray, spec: Any,
               shared: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Logits ``[rows, views, C]`` -> the row arrays (every name of :meth:`row_layout`)."""
        raise NotImplementedError

    def decode(self, rows: Mapping[str, np.ndarray], spec: Any,
               shared: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Row arrays (any leading shape) -> the distributions ``[..., C]`` (float32)."""
        raise NotImplementedError

    def top1(self, rows: Mapping[str, np.ndarray], spec: Any,
             shared: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The class each stored row ranks first."""
        return self.decode(rows, spec, shared).argmax(-1)

    def describe(self, spec: Any) -> str:
        """One line for ``tosc-cache info``."""
        return self.kind

    def kl_bound(self, rows: Mapping[str, np.ndarray], temperature: float) -> np.ndarray | None:
        """An upper bound on the tempered reconstruction KL per row, where one is known
        without the teacher's outputs (``tosc-cache info`` of caches that did not record it)."""
        return None

    def _need(self, shared: Mapping[str, np.ndarray] | None) -> Mapping[str, np.ndarray]:
        if shared is None:
            raise ValueError(f"A {self.kind} compression needs the cache's per-cache arrays "
                             "(shared arrays).")
        return shared
