"""``logits``: all C logits as float16 (best when C is small)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..probability import softmax
from .base import Codec, Layout


def logits_kl_bound(logits16: np.ndarray, temperature: float) -> np.ndarray:
    """Upper bound on the tempered KL of softmax(float16 logits), per row.

    Rounding shifts each logit by at most half a float16 spacing ``h``, so the
    log-probabilities move by values in a range ``r <= 2 max h``; by Hoeffding's
    lemma ``KL(softmax(z / T) || softmax((z + d) / T)) <= r**2 / (8 T**2)``
    (the 1e-12 floor of :func:`temper` only narrows the range).
    """
    z = np.abs(np.asarray(logits16, dtype=np.float16))
    half = np.spacing(z).astype(np.float64) / 2
    spread = 2 * half.max(axis=-1)
    return spread**2 / (8 * float(temperature) ** 2)



class LogitsCodec(Codec):
    kind = "logits"

    def row_layout(self, spec: Any) -> Layout:
        return {"teacher/logits": ((spec.num_samples, spec.num_views, spec.num_classes),
                                   np.dtype(np.float16))}

    def encode(self, logits, spec, shared=None):
        return {"teacher/logits": np.asarray(logits).astype(np.float16)}

    def decode(self, rows, spec, shared=None):
        return softmax(rows["teacher/logits"].astype(np.float32)).astype(np.float32)

    def top1(self, rows, spec, shared=None):
        return rows["teacher/logits"].argmax(-1)

    def describe(self, spec: Any) -> str:
        return "float16 logits"

    def kl_bound(self, rows, temperature):
        return logits_kl_bound(rows["teacher/logits"], temperature)
