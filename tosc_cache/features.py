"""Compression of pooled teacher features (NumPy only).

``float16``, or ``int8`` with one float32 scale per row (symmetric, ``x ~ q * scale``).
"""

from __future__ import annotations

import numpy as np

FEATURE_METHODS = ("float16", "int8")


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

