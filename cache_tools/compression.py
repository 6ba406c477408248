"""Compression of teacher outputs, and its exact inverse (NumPy only).

* ``topk``: the k largest probabilities as float16 with their class indices
  in the smallest unsigned integer type; on reconstruction the remaining mass
  ``1 - sum(top-k)`` is spread evenly over the other ``C - k`` classes.
* ``logits``: all C logits as float16 (best when C is small).
* features: pooled teacher features as float16, or int8 with one float32
  scale per row (symmetric, ``x ~ q * scale``).
"""

from __future__ import annotations

import numpy as np

PROB_METHODS = ("topk", "logits")
FEATURE_METHODS = ("float16", "int8")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


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
    """Top-k -> full distribution ``[..., C]`` (float32), rest spread evenly."""
    values = np.asarray(values, dtype=np.float64)
    k = values.shape[-1]
    kept = values.sum(axis=-1, keepdims=True)
    if k < num_classes:
        rest = np.clip(1.0 - kept, 0.0, None) / (num_classes - k)
        probs = np.broadcast_to(rest, values.shape[:-1] + (num_classes,)).copy()
    else:
        probs = np.zeros(values.shape[:-1] + (num_classes,))
    np.put_along_axis(probs, indices.astype(np.int64), values, axis=-1)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs.astype(np.float32)


def encode_features(features: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``[..., D]`` -> (stored values, per-row scale or None)."""
    features = np.asarray(features, dtype=np.float32)
    if method == "float16":
        return features.astype(np.float16), None
    if method == "int8":
        scale = np.abs(features).max(axis=-1) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        q = np.clip(np.rint(features / scale[..., None]), -127, 127).astype(np.int8)
        return q, scale
    raise ValueError(f"feature compression must be one of {FEATURE_METHODS}; got {method!r}.")


def decode_features(values: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    return values if scale is None else values * np.asarray(scale, np.float32)[..., None]


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) along the last axis, in nats (``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.clip(np.asarray(q, dtype=np.float64), 1e-30, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.clip(p, 1e-300, None)) - np.log(q)), 0.0)
    return terms.sum(axis=-1)
