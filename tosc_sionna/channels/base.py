"""The contract shared by every channel layer.

A channel layer takes the transmitter's real tensor ``[batch, 2n]`` (pairs of
reals ``(Re, Im)`` interleaved: ``x[:, 2k] + 1j * x[:, 2k+1]`` is complex
symbol ``k``) and an SNR in dB, and returns the receiver's equalized symbols in
the same real layout. Complex tensors live only inside ``call``: they never
cross a Keras layer boundary.

This package is the only code of ``tosc_sionna`` that touches Sionna and
backend (TensorFlow) tensors.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sionna.phy import config as sionna_config

from ..shapes import check_symbol_shape
from ..snr import SNR_DB_MAX, SNR_DB_MIN, check_snr_db

# Floor on |h|^2 in zero-forcing divisions: keeps deep fades finite (never inf/NaN).
_GAIN_FLOOR = 1e-12
# Cap on reported effective noise variances, for the same reason.
_NOISE_CAP = 1e6


def set_seed(seed: int) -> None:
    """Seed every random draw of the link: Keras, NumPy, Python and Sionna.

    Sionna draws channel realizations and noise from its own global
    generator (``sionna.phy.config.tf_rng``); Keras draws weights and
    training SNRs from its seed generators. Call this once, eagerly, before
    building a model: the same seed then gives the same numbers.
    """
    keras.utils.set_random_seed(int(seed))
    sionna_config.seed = int(seed)


def snr_db_to_noise_variance(snr_db: Any) -> tf.Tensor:
    """Noise variance per complex symbol, ``no = 10 ** (-snr_db / 10)``.

    The SNR is Es/N0 per complex channel use with Es = 1 (the power
    normalization's unit average power per complex symbol). Sionna's
    ``ebnodb2no`` is for coded bits and does not apply to analog symbols.
    """
    snr_db = tf.cast(snr_db, tf.float32)
    return tf.pow(10.0, -snr_db / 10.0)


def check_static_snr_db(snr_db: Any) -> None:
    """Check an SNR whose value is known now (Python, NumPy, eager or constant tensor).

    Symbolic tensors (inside ``tf.function``) cannot be checked in Python;
    :meth:`ChannelLayer.noise_variance` adds a graph assertion for those.
    """
    value = tf.get_static_value(snr_db) if tf.is_tensor(snr_db) else snr_db
    if value is not None:
        check_snr_db(value)


def sionna_dtypes() -> tuple[tf.DType, tf.DType]:
    """The (real, complex) dtypes of ``sionna.phy.config.precision`` ("single" or "double")."""
    if sionna_config.precision == "double":
        return tf.float64, tf.complex128
    return tf.float32, tf.complex64


def real_to_complex(x: tf.Tensor, dtype: tf.DType = tf.complex64) -> tf.Tensor:
    """``[batch, 2n]`` float, (Re, Im) interleaved -> ``[batch, n]`` complex ``dtype``."""
    x = tf.cast(x, dtype.real_dtype)
    return tf.complex(x[:, 0::2], x[:, 1::2])


def complex_to_real(z: tf.Tensor) -> tf.Tensor:
    """``[batch, n]`` complex -> ``[batch, 2n]`` float32, (Re, Im) interleaved."""
    pairs = tf.cast(tf.stack([tf.math.real(z), tf.math.imag(z)], axis=-1), tf.float32)
    return tf.reshape(pairs, [tf.shape(z)[0], 2 * z.shape[-1]])


def noise_variance_to_snr_db(no: Any) -> Any:
    """``snr_db = -10 log10(no)``; concrete values are checked (finite, > 0, in range)."""
    if tf.is_tensor(no) or isinstance(no, keras.KerasTensor):
        value = tf.get_static_value(no) if tf.is_tensor(no) else None
        if value is None:
            return -10.0 * keras.ops.log(keras.ops.cast(no, "float32")) / np.log(10.0)
        no = value
    value = np.asarray(no, dtype=np.float64)
    if not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ValueError(
            "no (the noise variance per complex symbol) must be finite and > 0; got "
            f"{no!r}. Pass snr_db in dB instead if that is what you have."
        )
    snr_db = -10.0 * np.log10(value)
    check_snr_db(snr_db)
    return snr_db.astype(np.float32)


class ChannelLayer(keras.layers.Layer):
    """Base class of the channel layers (see the module docstring for the contract).

    Parameters
    ----------
    return_noise : bool, (default False)
        If True, ``call`` also returns the effective noise variance of every
        equalized symbol.

    Input
    -----
    x : [batch, 2n], float
        Channel input, (Re, Im) interleaved, normally unit average power per
        complex symbol (see :class:`~tosc_sionna.PowerNormalization`).
    snr_db : scalar or [batch], float
        Es/N0 per complex symbol in dB, within [-30, 60].
    no : scalar or [batch], float
        Instead of ``snr_db`` (keyword only): the noise variance per complex
        symbol, ``no = 10 ** (-snr_db / 10)``, Sionna's convention.

    The Sionna blocks run in ``sionna.phy.config.precision`` ("single" by
    default; "double" for reference simulations); inputs and outputs are
    float32 either way.

    Output
    ------
    y : [batch, 2n], float32
        Equalized symbols, same layout as ``x``.
    no_eff : [batch, n], float32
        Only with ``return_noise=True``: effective noise variance of each
        equalized symbol, ``E|y_k - x_k|^2`` given the receiver's CSI.
    """

    def __init__(self, return_noise: bool = False, **kwargs: Any) -> None:
        # The channel computes in float32 even under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.return_noise = bool(return_noise)
        self.num_symbols: int | None = None
        # Sionna's global generator must exist before any Keras trace:
        # created inside one, it becomes a graph-captured variable and fails.
        with tf.init_scope():
            _ = sionna_config.tf_rng

    def __call__(self, x: Any, snr_db: Any = None, no: Any = None, **kwargs: Any) -> Any:
        # Sionna users think in noise variances: ``no=`` is the same contract,
        # converted once here so that every layer keeps one code path.
        if (snr_db is None) == (no is None):
            raise ValueError(
                "Pass exactly one of snr_db (Es/N0 in dB) and no (noise variance per "
                "complex symbol, no = 10 ** (-snr_db / 10))."
            )
        if no is not None:
            snr_db = noise_variance_to_snr_db(no)
        # Keras accepts only tensors as positional inputs: let users write
        # layer(x, 10.0) by converting Python/NumPy SNRs (checked first).
        if not (tf.is_tensor(snr_db) or isinstance(snr_db, keras.KerasTensor)):
            check_snr_db(snr_db)
            snr_db = tf.convert_to_tensor(np.asarray(snr_db, dtype=np.float32))
        return super().__call__(x, snr_db, **kwargs)

    def build(self, x_shape: Any, snr_db_shape: Any = None) -> None:
        self.num_symbols = check_symbol_shape(x_shape)
        if snr_db_shape is not None and len(tuple(snr_db_shape)) > 1:
            raise ValueError(
                f"snr_db must be a scalar or have shape [batch]; got shape {tuple(snr_db_shape)}."
            )
        # Sionna objects hold NumPy/eager state: create them outside any trace.
        # Their precision is fixed now, so the layer's dtypes are too.
        self._dtypes = sionna_dtypes()
        with tf.init_scope():
            self.build_channel(self.num_symbols)
        self.built = True

    def build_channel(self, num_symbols: int) -> None:
        """Create the Sionna blocks for ``num_symbols`` complex symbols."""

    def noise_variance(self, snr_db: Any, batch_size: tf.Tensor) -> tf.Tensor:
        """Validate ``snr_db`` and return the noise variance ``no`` as ``[batch]``."""
        check_static_snr_db(snr_db)
        snr_db = tf.cast(snr_db, tf.float32)
        if snr_db.shape.rank is not None and snr_db.shape.rank > 1:
            raise ValueError(
                f"snr_db must be a scalar or have shape [batch]; got shape {snr_db.shape}."
            )
        if tf.get_static_value(snr_db) is None:
            # Runtime check for traced SNRs (a no-op under XLA, which drops asserts).
            ok = tf.reduce_all(
                tf.logical_and(snr_db >= SNR_DB_MIN, snr_db <= SNR_DB_MAX)
            )
            tf.debugging.Assert(
                ok, [f"snr_db must be finite and lie in [{SNR_DB_MIN}, {SNR_DB_MAX}] dB"]
            )
        snr_db = tf.broadcast_to(snr_db, [batch_size])
        return snr_db_to_noise_variance(snr_db)

    def call(self, x: Any, snr_db: Any) -> Any:
        check_symbol_shape(x.shape)
        x = tf.cast(x, tf.float32)
        rdtype, cdtype = self._dtypes
        no = tf.cast(self.noise_variance(snr_db, tf.shape(x)[0]), rdtype)
        y, no_eff = self.transmit(real_to_complex(x, cdtype), no)
        y = complex_to_real(y)
        if self.return_noise:
            return y, tf.cast(tf.minimum(no_eff, _NOISE_CAP), tf.float32)
        return y

    def transmit(self, s: tf.Tensor, no: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Send complex symbols ``s`` [batch, n] with noise variance ``no`` [batch].

        Returns the equalized symbols [batch, n] (complex) and their effective
        noise variance [batch, n] (float).
        """
        raise NotImplementedError

    def compute_output_spec(self, x: Any, snr_db: Any = None) -> Any:
        # Shapes are known without tracing Sionna (keeps functional models cheap).
        n = check_symbol_shape(x.shape)
        y = keras.KerasTensor((x.shape[0], 2 * n), dtype="float32")
        if self.return_noise:
            return y, keras.KerasTensor((x.shape[0], n), dtype="float32")
        return y

    def compute_output_shape(self, x_shape: Any, snr_db_shape: Any = None) -> Any:
        n = check_symbol_shape(x_shape)
        y = (tuple(x_shape)[0], 2 * n)
        return (y, (y[0], n)) if self.return_noise else y

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["return_noise"] = self.return_noise
        return config


#: Equalizer names shared by every fading channel layer.
EQUALIZERS = ("lmmse", "zf")


def check_equalizer(equalizer: str) -> str:
    """Validate an equalizer name; ``"mmse"`` (the name used before 0.2) means ``"lmmse"``."""
    if equalizer == "mmse":
        return "lmmse"
    if equalizer not in EQUALIZERS:
        raise ValueError(f"equalizer must be one of {EQUALIZERS}; got {equalizer!r}.")
    return equalizer


def equalize(
    y: tf.Tensor, h_hat: tf.Tensor, err_var: tf.Tensor, no: tf.Tensor, equalizer: str
) -> tuple[tf.Tensor, tf.Tensor]:
    r"""Single-antenna equalization of ``y = h x + w`` from an LMMSE channel estimate.

    ``h = h_hat + eps`` with ``eps`` of variance ``err_var``, uncorrelated with
    ``h_hat`` (true of an LMMSE estimate), so for unit-power symbols the
    receiver sees ``y = h_hat x + n'`` with ``E|n'|^2 = no + err_var``,
    uncorrelated with ``x``:

    * ``"lmmse"``: ``x_hat = conj(h_hat) y / (|h_hat|^2 + s)``, error variance
      ``s / (|h_hat|^2 + s)`` with ``s = no + err_var``; bounded in deep fades.
    * ``"zf"``: ``x_hat = y / h_hat``, error variance ``s / |h_hat|^2``; unbiased,
      unbounded in deep fades (``|h_hat|^2`` floored at 1e-12).

    All arguments broadcast against each other; returns ``(x_hat, no_eff)``.
    """
    gain = tf.math.real(h_hat * tf.math.conj(h_hat))
    noise = no + err_var
    if equalizer == "lmmse":
        denom = gain + noise
    else:
        denom = tf.maximum(gain, tf.cast(_GAIN_FLOOR, gain.dtype))
    # tf.complex rather than a cast: the gradient of a real-to-complex cast casts a complex
    # gradient back to real, and TensorFlow warns of a discarded imaginary part at each trace
    real = tf.cast(denom, y.dtype.real_dtype)
    x_hat = tf.math.conj(h_hat) * y / tf.complex(real, tf.zeros_like(real))
    return x_hat, noise / denom
