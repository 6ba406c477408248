"""What the tests need from the Keras backend, written once for both Sionna lines.

Tests that exercise one line only (a TensorFlow graph assertion, XLA, a
SavedModel) carry the marker ``tensorflow`` or ``torch``; conftest deselects
them on the other line, and CI runs both lines, so every test runs somewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

BACKEND = keras.backend.backend()


def numpy(x: Any) -> np.ndarray:
    """A tensor of either backend (or an array) as a NumPy array, detached."""
    if BACKEND == "torch" and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return keras.ops.convert_to_numpy(x)


def tensor(x: Any, dtype: str | None = None) -> Any:
    """A backend tensor of ``x`` (complex dtypes included)."""
    array = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    if BACKEND == "torch":
        import torch

        return torch.as_tensor(array)
    import tensorflow as tf

    return tf.constant(array)


def gradient(fn: Callable[[Any], Any], x: Any) -> np.ndarray:
    """``d sum(fn(x)) / dx`` at ``x`` (a NumPy array), through the backend's autodiff."""
    if BACKEND == "torch":
        import torch

        xt = torch.tensor(np.asarray(x), requires_grad=True)
        out = fn(xt)
        torch.sum(out).backward()
        return np.zeros_like(np.asarray(x)) if xt.grad is None else xt.grad.numpy()
    import tensorflow as tf

    xt = tf.Variable(np.asarray(x))
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(fn(xt))
    grad = tape.gradient(out, xt)
    return np.zeros_like(np.asarray(x)) if grad is None else grad.numpy()


def dtype_name(x: Any) -> str:
    """``"float32"``, ``"complex128"``, ... of a tensor of either backend."""
    return str(x.dtype).split(".")[-1].replace("'>", "").replace("<dtype: '", "")
