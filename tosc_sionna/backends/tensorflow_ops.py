"""Channel tensor operations on TensorFlow, for Sionna 1.2.x (see the package docstring)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from sionna.phy import config as sionna_config

NAME = "tensorflow"
Tensor = tf.Tensor


def sionna_dtypes() -> tuple[tf.DType, tf.DType]:
    """The (real, complex) dtypes of ``sionna.phy.config.precision``."""
    if sionna_config.precision == "double":
        return tf.float64, tf.complex128
    return tf.float32, tf.complex64


def seed_sionna(seed: int) -> None:
    """Seed Sionna's global generator (``config.tf_rng``)."""
    sionna_config.seed = int(seed)


def prepare() -> None:
    """Create Sionna's global generator outside any Keras trace.

    Created inside one, it becomes a graph-captured variable and fails.
    """
    with tf.init_scope():
        _ = sionna_config.tf_rng


def outside_trace() -> contextlib.AbstractContextManager:
    """Context in which Sionna objects (eager state) are built: outside ``tf.function``."""
    return tf.init_scope()


@contextlib.contextmanager
def sionna_rng_seeded(seed: int) -> Iterator[None]:
    """Draw from Sionna's generator reseeded with ``seed``, then restore its state."""
    rng = sionna_config.tf_rng
    saved = tf.identity(rng.state)
    rng.reset_from_seed(seed)
    try:
        yield
    finally:
        rng.reset(saved)


def is_tensor(x: Any) -> bool:
    return tf.is_tensor(x)


def static_value(x: Any) -> np.ndarray | None:
    """The value of a tensor known now (eager or constant), else None (traced)."""
    return tf.get_static_value(x)


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x)


def constant(value: Any, dtype: Any) -> tf.Tensor:
    return tf.constant(value, dtype)


def cast(x: Any, dtype: Any) -> tf.Tensor:
    return tf.cast(x, dtype)


def batch_size(x: tf.Tensor) -> tf.Tensor:
    return tf.shape(x)[0]


def shape(x: tf.Tensor) -> tf.Tensor:
    return tf.shape(x, out_type=tf.int32)


def real_to_complex(x: tf.Tensor, dtype: tf.DType = tf.complex64) -> tf.Tensor:
    """``[batch, 2n]`` float, (Re, Im) interleaved -> ``[batch, n]`` complex ``dtype``."""
    x = tf.cast(x, dtype.real_dtype)
    return tf.complex(x[:, 0::2], x[:, 1::2])


def complex_to_real(z: tf.Tensor) -> tf.Tensor:
    """``[batch, n]`` complex -> ``[batch, 2n]`` float32, (Re, Im) interleaved."""
    pairs = tf.cast(tf.stack([tf.math.real(z), tf.math.imag(z)], axis=-1), tf.float32)
    return tf.reshape(pairs, [tf.shape(z)[0], 2 * z.shape[-1]])


def real(z: tf.Tensor) -> tf.Tensor:
    return tf.math.real(z)


def conj(z: tf.Tensor) -> tf.Tensor:
    return tf.math.conj(z)


def as_complex(r: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """A real tensor as complex with ``like``'s dtype (zero imaginary part).

    ``tf.complex`` rather than a cast: the gradient of a real-to-complex cast
    casts a complex gradient back to real, and TensorFlow warns of a
    discarded imaginary part at each trace.
    """
    r = tf.cast(r, like.dtype.real_dtype)
    return tf.complex(r, tf.zeros_like(r))


def gather(x: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """``x[:, indices]``."""
    return tf.gather(x, indices, axis=1)


def pad_zero_column(x: tf.Tensor) -> tf.Tensor:
    """Append one column of zeros: ``[batch, n]`` -> ``[batch, n + 1]``."""
    return tf.pad(x, [[0, 0], [0, 1]])


def pad_rows(x: tf.Tensor, rows: Any) -> tf.Tensor:
    """Append zero rows up to ``rows``: ``[batch, ...]`` -> ``[rows, ...]`` (rows >= batch)."""
    extra = [[0, rows - tf.shape(x)[0]]] + [[0, 0]] * (len(x.shape) - 1)
    return tf.pad(x, extra)


def reshape(x: tf.Tensor, shape: Any) -> tf.Tensor:
    return tf.reshape(x, shape)


def tile(x: tf.Tensor, multiples: Any) -> tf.Tensor:
    # tile, not tf.repeat: repeat is several times slower on the CPU
    return tf.tile(x, multiples)


def broadcast_to(x: tf.Tensor, shape: Any) -> tf.Tensor:
    return tf.broadcast_to(x, shape)


def ones(shape: Any, dtype: Any) -> tf.Tensor:
    return tf.ones(shape, dtype)


def zeros_like(x: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(x)


def mean(x: tf.Tensor, axis: int, keepdims: bool = False) -> tf.Tensor:
    return tf.reduce_mean(x, axis=axis, keepdims=keepdims)


def matmul(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.matmul(a, b)


def maximum(x: tf.Tensor, floor: float) -> tf.Tensor:
    return tf.maximum(x, tf.cast(floor, x.dtype))


def minimum(x: tf.Tensor, cap: float) -> tf.Tensor:
    return tf.minimum(x, tf.cast(cap, x.dtype))


def assert_in_range(x: tf.Tensor, low: float, high: float, message: str) -> None:
    """A graph assertion for traced values (a no-op under XLA, which drops asserts)."""
    ok = tf.reduce_all(tf.logical_and(x >= low, x <= high))
    tf.debugging.Assert(ok, [message])
