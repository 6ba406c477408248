"""``topk``: the k largest probabilities as float16 with their class indices.

Indices are stored in the smallest unsigned integer type; on reconstruction
the remaining mass ``1 - sum(top-k)`` is spread evenly over the other
``C - k`` classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..probability import softmax
from .base import Codec, Layout

#: Total mass given to the classes outside a float16 top-k whose values round to >= 1.
TOPK_TAIL_FLOOR = 1e-6


def index_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned integer type that holds class indices 0..C-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if num_classes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def encode_topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``[..., C]`` logits -> top-k probabilities (float16) and indices, largest first."""
    num_classes = logits.shape[-1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"top-k needs 1 <= k <= {num_classes} classes; got k={k}.")
    probs = softmax(logits)
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    values = np.take_along_axis(probs, order, axis=-1)
    return values.astype(np.float16), order.astype(index_dtype(num_classes))


def decode_topk(values: np.ndarray, indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-k -> full distribution ``[..., C]`` (float32), rest spread evenly.

    The remaining mass is ``1 - sum(top-k)`` computed in float64 from the
    float16 values; where rounding makes the kept values sum to 1 or more
    (a confident row), the other classes still get :data:`TOPK_TAIL_FLOOR` in
    all, never exactly zero (a zero tail has no tempered mass and makes
    KL(teacher || reconstruction) infinite).
    """
    values = np.asarray(values, dtype=np.float64)
    k = values.shape[-1]
    kept = values.sum(axis=-1, keepdims=True)
    if k < num_classes:
        rest = np.maximum(1.0 - kept, TOPK_TAIL_FLOOR) / (num_classes - k)
        probs = np.broadcast_to(rest, values.shape[:-1] + (num_classes,)).copy()
    else:
        probs = np.zeros(values.shape[:-1] + (num_classes,))
    np.put_along_axis(probs, indices.astype(np.int64), values, axis=-1)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs.astype(np.float32)



class TopkCodec(Codec):
    kind = "topk"
    uses_topk = True

    def validate(self, spec: Any) -> None:
        if not 1 <= spec.topk <= spec.num_classes:
            raise ValueError(f"topk must lie in [1, {spec.num_classes}] for {spec.num_classes} "
                             f"classes; got {spec.topk}.")

    def row_layout(self, spec: Any) -> Layout:
        n, v, k = spec.num_samples, spec.num_views, spec.topk
        return {"teacher/topk_values": ((n, v, k), np.dtype(np.float16)),
                "teacher/topk_indices": ((n, v, k), index_dtype(spec.num_classes))}

    def encode(self, logits, spec, shared=None):
        values, indices = encode_topk(logits, spec.topk)
        return {"teacher/topk_values": values, "teacher/topk_indices": indices}

    def decode(self, rows, spec, shared=None):
        return decode_topk(rows["teacher/topk_values"], rows["teacher/topk_indices"],
                           spec.num_classes)

    def top1(self, rows, spec, shared=None):
        return rows["teacher/topk_indices"][..., 0]

    def describe(self, spec: Any) -> str:
        return f"top-{spec.topk} probabilities (float16)"
