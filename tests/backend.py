"""What the tests need from the Keras backend, written once for both Sionna lines.

Tests that exercise one line only (a TensorFlow graph assertion, XLA, a
SavedModel) carry the marker ``tensorflow`` or ``torch``; conftest deselects
them on the other line, and CI runs both lines, so every test runs somewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# isort: off
import tosc_sionna  # noqa: F401  (before keras: it picks Keras' backend from the Sionna line)
import keras

# isort: on

BACKEND = keras.backend.backend()


def numpy(x: Any) -> np.ndarray:
    """A tensor of either backend (or an array) as a NumPy array, detached."""
    if BACKEND == "torch" and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy"):  # eager TensorFlow tensors and variables (complex included)
        return np.asarray(x.numpy())
    return keras.ops.convert_to_numpy(x)


def _device() -> Any:
    from sionna.phy import config as sionna_config

    return sionna_config.device


def tensor(x: Any, dtype: str | None = None) -> Any:
    """A backend tensor of ``x`` (complex dtypes included), on Sionna's device."""
    array = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    if BACKEND == "torch":
        import torch

        return torch.as_tensor(array, device=_device())
    import tensorflow as tf

    return tf.constant(array)


def complex_tensor(re: Any, im: Any) -> Any:
    """``re + 1j * im`` of two real backend tensors (differentiable in both)."""
    if BACKEND == "torch":
        import torch

        return torch.complex(re, im)
    import tensorflow as tf

    return tf.complex(re, im)


def real(z: Any) -> Any:
    return keras.ops.real(z)


def imag(z: Any) -> Any:
    return keras.ops.imag(z)


def gradient(fn: Callable[[Any], Any], x: Any) -> np.ndarray:
    """``d sum(fn(x)) / dx`` at ``x`` (a NumPy array), through the backend's autodiff.

    A gradient that does not exist (no path from ``x`` to the output) is zeros.
    """
    if BACKEND == "torch":
        import torch

        xt = torch.tensor(np.asarray(x), requires_grad=True, device=_device())
        total = torch.sum(fn(xt))
        if not total.requires_grad:  # the output does not depend on x through autodiff
            return np.zeros_like(np.asarray(x))
        (grad,) = torch.autograd.grad(total, xt, allow_unused=True)
        return np.zeros_like(np.asarray(x)) if grad is None else numpy(grad)
    import tensorflow as tf

    xt = tf.Variable(np.asarray(x))
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(fn(xt))
    grad = tape.gradient(out, xt)
    return np.zeros_like(np.asarray(x)) if grad is None else grad.numpy()


def value_and_gradient(fn: Callable[[Any], Any], x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(fn(x), d sum(fn(x)) / dx)`` at ``x`` (a NumPy array), both as NumPy arrays."""
    values = []

    def keep(t: Any) -> Any:
        out = fn(t)
        values.append(out)
        return out

    grad = gradient(keep, x)
    return numpy(values[0]), grad


def variable_gradients(loss_fn: Callable[[], Any],
                       variables: Sequence[Any] | Callable[[], Sequence[Any]]
                       ) -> list[np.ndarray | None]:
    """``d loss_fn() / dv`` for each Keras variable ``v`` (None where there is no path).

    ``variables`` may be a callable, read after ``loss_fn`` ran (a model it builds).
    """
    if BACKEND == "torch":
        import torch

        loss = loss_fn()
        params = [v.value for v in (variables() if callable(variables) else variables)]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return [None if g is None else numpy(g) for g in grads]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn()
    variables = variables() if callable(variables) else variables
    return [None if g is None else np.asarray(g) for g in tape.gradient(loss, list(variables))]


def dtype_name(x: Any) -> str:
    """``"float32"``, ``"complex128"``, ... of a tensor (or a dtype) of either backend."""
    dtype = getattr(x, "dtype", x)
    name = getattr(dtype, "name", None)  # tf.DType
    if isinstance(name, str):
        return name
    return str(dtype).split(".")[-1].replace("'>", "").replace("<dtype: '", "")


def sionna_normal(shape: Sequence[int]) -> np.ndarray:
    """Normal draws from Sionna's global generator (to see whether something moved it)."""
    from sionna.phy import config as sionna_config

    if BACKEND == "torch":
        import torch

        device = sionna_config.device
        return numpy(torch.randn(tuple(shape), generator=sionna_config.torch_rng(device),
                                 device=device))
    return sionna_config.tf_rng.normal(list(shape)).numpy()
