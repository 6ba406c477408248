"""The contract shared by every channel layer.

A channel layer takes the transmitter's real tensor ``[batch, 2n]`` (pairs of
reals ``(Re, Im)`` interleaved: ``x[:, 2k] + 1j * x[:, 2k+1]`` is complex
symbol ``k``) and an SNR in dB, and returns the receiver's equalized symbols in
the same real layout. Complex tensors live only inside ``call``: they never
cross a Keras layer boundary.

This package is the only code of ``tosc_sionna`` that touches Sionna; the
tensor code that differs between TensorFlow (Sionna 1.2) and PyTorch
(Sionna 2.x) lives in :mod:`tosc_sionna.backends`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ..backends import ops
from ..checks import check_bool
from ..shapes import check_symbol_shape
from ..snr import SNR_DB_MAX, SNR_DB_MIN, check_snr_db

# Floor on |h|^2 in zero-forcing divisions: keeps deep fades finite (never inf/NaN).
_GAIN_FLOOR = 1e-12
# Cap on reported effective noise variances, for the same reason.
_NOISE_CAP = 1e6


def set_seed(seed: int) -> None:
    """Seed every random draw of the link: Keras, NumPy, Python and Sionna.

    Sionna draws channel realizations and noise from its own global
    generators (``sionna.phy.config``); Keras draws weights and training
    SNRs from its seed generators. Call this once, eagerly, before building a
    model: the same seed then gives the same numbers. (Sionna first: on the
    torch line, seeding Sionna also reseeds torch's global generators.)
    """
    ops.seed_sionna(int(seed))
    keras.utils.set_random_seed(int(seed))


def snr_db_to_noise_variance(snr_db: Any) -> Any:
    """Noise variance per complex symbol, ``no = 10 ** (-snr_db / 10)``.

    The SNR is Es/N0 per complex channel use with Es = 1 (the power
    normalization's unit average power per complex symbol). Sionna's
    ``ebnodb2no`` is for coded bits and does not apply to analog symbols.
    """
    snr_db = keras.ops.cast(snr_db, "float32")
    return keras.ops.power(10.0, -snr_db / 10.0)


def untracked(layer: keras.layers.Layer, **blocks: Any) -> None:
    """Set Sionna blocks as attributes of ``layer`` that Keras does not track.

    On the torch backend Keras wraps every ``torch.nn.Module`` attribute (every
    Sionna 2 object is one) in a ``TorchModuleWrapper`` and would save, count
    and train its state; the blocks are simulation machinery, rebuilt from the
    layer's config, never weights.
    """
    for name, block in blocks.items():
        object.__setattr__(layer, name, block)


def check_static_snr_db(snr_db: Any) -> None:
    """Check an SNR whose value is known now (Python, NumPy, eager or constant tensor).

    Symbolic tensors (inside ``tf.function``) cannot be checked in Python;
    :meth:`ChannelLayer.noise_variance` adds a graph assertion for those.
    """
    value = ops.static_value(snr_db) if ops.is_tensor(snr_db) else snr_db
    if value is not None:
        check_snr_db(value)


def noise_keywords(owner: str, args: tuple, snr_db: Any, no: Any, required: bool) -> Any:
    """The SNR in dB from a call's keywords; a positional noise argument is refused.

    Sionna's channels take the noise variance as their second argument
    (``AWGN()(x, no)``); this package once took the SNR in dB there. Neither
    reading is safe, so the noise argument of every channel layer and of the
    link is keyword-only: ``owner(x, 0.1)`` fails instead of running at 0.1 dB.
    ``no`` is converted to dB once, here. ``required``: exactly one of the two
    (channel layers), else at most one (None: the caller's default).
    """
    if args:
        value = args[0] if not ops.is_tensor(args[0]) else "..."
        raise TypeError(
            f"{owner}(x, {value}): the noise argument is keyword-only; write snr_db={value} "
            f"(Es/N0 in dB) or no={value} (noise variance per complex symbol, Sionna's "
            "convention).")
    if snr_db is not None and no is not None:
        raise ValueError(
            "Pass exactly one of snr_db (Es/N0 in dB) and no (noise variance per complex "
            "symbol, no = 10 ** (-snr_db / 10))." if required else
            "Pass at most one of snr_db (dB) and no (noise variance).")
    if required and snr_db is None and no is None:
        raise ValueError(
            "Pass exactly one of snr_db (Es/N0 in dB) and no (noise variance per complex "
            "symbol, no = 10 ** (-snr_db / 10)).")
    return noise_variance_to_snr_db(no) if no is not None else snr_db


def is_complex(x: Any) -> bool:
    """Whether ``x`` (NumPy array, backend tensor or KerasTensor) has a complex dtype."""
    return "complex" in str(getattr(x, "dtype", ""))


def interleave(z: Any) -> Any:
    """Complex ``[batch, n]`` -> float32 ``[batch, 2n]`` (Re, Im interleaved)."""
    if not ops.is_tensor(z):
        z = np.asarray(z)
        if z.ndim != 2:
            raise ValueError(
                f"Complex symbols must have shape [batch, n]; got shape {z.shape}.")
        return np.stack([z.real, z.imag], axis=-1).reshape(len(z), -1).astype(np.float32)
    if len(z.shape) != 2:
        raise ValueError(
            f"Complex symbols must have shape [batch, n]; got shape {tuple(z.shape)}.")
    return ops.cast(ops.complex_to_real(z), "float32")


sionna_dtypes = ops.sionna_dtypes
real_to_complex = ops.real_to_complex
complex_to_real = ops.complex_to_real


def noise_variance_to_snr_db(no: Any) -> Any:
    """``snr_db = -10 log10(no)``; concrete values are checked (finite, > 0, in range)."""
    if ops.is_tensor(no) or isinstance(no, keras.KerasTensor):
        value = ops.static_value(no) if ops.is_tensor(no) else None
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
    x : [batch, 2n], float, or [batch, n], complex
        Channel input, (Re, Im) interleaved, or complex symbols (returned
        complex), normally unit average power per complex symbol (see
        :class:`~tosc_sionna.PowerNormalization`).
    snr_db : scalar or [batch], float
        Es/N0 per complex symbol in dB, within [-30, 60]. Keyword only.
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
        self.return_noise = check_bool("return_noise", return_noise)
        self.num_symbols: int | None = None
        ops.prepare()

    #: Whether ``x`` holds complex symbols (False: real values, e.g. DigitalChannel's).
    takes_symbols = True

    def __call__(self, x: Any, *args: Any, snr_db: Any = None, no: Any = None,
                 **kwargs: Any) -> Any:
        # Sionna users think in noise variances: ``no=`` is the same contract,
        # converted once here so that every layer keeps one code path.
        snr_db = noise_keywords(type(self).__name__, args, snr_db, no, required=True)
        # Keras accepts only tensors as positional inputs: let users write
        # layer(x, snr_db=10.0) by converting Python/NumPy SNRs (checked first).
        if not (ops.is_tensor(snr_db) or isinstance(snr_db, keras.KerasTensor)):
            check_snr_db(snr_db)
            snr_db = keras.ops.convert_to_tensor(np.asarray(snr_db, dtype=np.float32))
        complex_input = is_complex(x)
        if complex_input:
            # what a Sionna Mapper produces: [batch, n] complex in, [batch, n] complex out
            # (Keras would cast it to float32 and drop the imaginary parts)
            if not self.takes_symbols:
                raise ValueError(
                    f"{type(self).__name__} sends real values [batch, k]; got complex "
                    f"{getattr(x, 'dtype', '')} input. Pass real values (e.g. the real "
                    "and imaginary parts side by side).")
            if isinstance(x, keras.KerasTensor):
                raise ValueError(
                    f"{type(self).__name__} takes complex symbols only as concrete tensors; "
                    "in a functional model pass [batch, 2n] reals (Re, Im interleaved).")
            x = interleave(x)
        out = super().__call__(x, snr_db=snr_db, **kwargs)
        if not complex_input:
            return out
        if isinstance(out, (tuple, list)):
            return (ops.real_to_complex(ops.cast(out[0], "float32")), *out[1:])
        return ops.real_to_complex(ops.cast(out, "float32"))

    def build(self, x_shape: Any, snr_db_shape: Any = None) -> None:
        self.num_symbols = check_symbol_shape(x_shape)
        if snr_db_shape is not None and len(tuple(snr_db_shape)) > 1:
            raise ValueError(
                f"snr_db must be a scalar or have shape [batch]; got shape {tuple(snr_db_shape)}."
            )
        # Sionna objects hold NumPy/eager state: create them outside any trace.
        # Their precision is fixed now, so the layer's dtypes are too.
        self._dtypes = sionna_dtypes()
        with ops.outside_trace():
            self.build_channel(self.num_symbols)
        self.built = True

    def build_channel(self, num_symbols: int) -> None:
        """Create the Sionna blocks for ``num_symbols`` complex symbols."""

    def noise_variance(self, snr_db: Any, batch_size: Any) -> Any:
        """Validate ``snr_db`` and return the noise variance ``no`` as ``[batch]``."""
        check_static_snr_db(snr_db)
        snr_db = ops.cast(snr_db, "float32")
        if len(snr_db.shape) > 1:
            raise ValueError(
                f"snr_db must be a scalar or have shape [batch]; got shape {tuple(snr_db.shape)}."
            )
        if ops.static_value(snr_db) is None:
            # runtime check of a traced SNR (TensorFlow graphs only)
            ops.assert_in_range(
                snr_db, SNR_DB_MIN, SNR_DB_MAX,
                f"snr_db must be finite and lie in [{SNR_DB_MIN}, {SNR_DB_MAX}] dB",
            )
        snr_db = ops.broadcast_to(snr_db, [batch_size])
        return snr_db_to_noise_variance(snr_db)

    def call(self, x: Any, snr_db: Any) -> Any:
        check_symbol_shape(x.shape)
        x = ops.cast(x, "float32")
        rdtype, cdtype = self._dtypes
        no = ops.cast(self.noise_variance(snr_db, ops.batch_size(x)), rdtype)
        y, no_eff = self.transmit(real_to_complex(x, cdtype), no)
        y = complex_to_real(y)
        if self.return_noise:
            return y, ops.cast(ops.minimum(no_eff, _NOISE_CAP), "float32")
        return y

    def transmit(self, s: Any, no: Any) -> tuple[Any, Any]:
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


def equalize(y: Any, h_hat: Any, err_var: Any, no: Any, equalizer: str) -> tuple[Any, Any]:
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
    gain = ops.real(h_hat * ops.conj(h_hat))
    noise = no + err_var
    if equalizer == "lmmse":
        denom = gain + noise
    else:
        denom = ops.maximum(gain, _GAIN_FLOOR)
    x_hat = ops.conj(h_hat) * y / ops.as_complex(denom, y)
    return x_hat, noise / denom
