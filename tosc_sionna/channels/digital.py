"""The digital baseline: quantize, 5G LDPC, QAM, channel, demap, decode, dequantize."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops as K
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import Demapper, Mapper

from .awgn import AWGNChannel
from .backends import ops
from .base import ChannelLayer, noise_variance_to_snr_db, sionna_dtypes, untracked
from .rayleigh import CSI_MODES, RayleighBlockFadingChannel

__all__ = ["DIGITAL_CHANNELS", "DigitalChannel", "LDPC5G_RATE_MAX", "LDPC5G_RATE_MIN"]

#: Channels the digital link can run over.
DIGITAL_CHANNELS = ("awgn", "rayleigh")
#: QAM orders the layer accepts (powers of 4: square Gray-labelled QAM).
QAM_ORDERS = (4, 16, 64, 256)
#: Code rates of the 5G NR LDPC code after rate matching (38.212 5.4.2.1; no outer repetition).
LDPC5G_RATE_MIN = 1 / 5
LDPC5G_RATE_MAX = 948 / 1024
#: Information bits of one 5G LDPC codeword without segmentation (38.212 5.2.2).
LDPC5G_K_MIN = 12
LDPC5G_K_MAX = 8448
#: Bits per value: indices are int32; 5G's 8448 info bits cap k * b anyway.
MAX_BITS_PER_VALUE = 16
DEMAPPING_METHODS = ("app", "maxlog")


@keras.saving.register_keras_serializable(package="tosc_sionna")
class DigitalChannel(ChannelLayer):
    r"""Separate source-channel coding over a Sionna channel: the digital baseline.

    Each example's ``k`` reals are clipped to ``[-clip, clip]`` and uniformly
    quantized to ``b`` bits (mid-rise, ``2^b`` levels, step
    ``Δ = 2 clip / 2^b``, reconstruction at the cell centres, index in natural
    binary, most significant bit first). The ``k b`` bits of an example form
    **one** 5G NR LDPC codeword (:class:`~sionna.phy.fec.ldpc.LDPC5GEncoder`,
    rate matching and the 5G output interleaver for the QAM order), whose
    coded bits are Gray-mapped to ``M``-QAM (Sionna
    :class:`~sionna.phy.mapping.Mapper`, unit average energy), sent over
    AWGN or flat Rayleigh block fading (the package's
    :class:`AWGNChannel` / :class:`RayleighBlockFadingChannel`, zero-forcing
    with the stated CSI, so the demapper sees unbiased symbols and their
    effective noise), demapped to soft LLRs
    (:class:`~sionna.phy.mapping.Demapper`, ``"app"`` by default), decoded by
    belief propagation (:class:`~sionna.phy.fec.ldpc.LDPC5GDecoder`,
    ``num_iter`` iterations) and dequantized.

    **Code length and channel uses.** ``k_info = k b`` information bits; the
    coded length ``n`` is ``k_info / code_rate`` rounded *up* to a whole
    number of QAM symbols (the would-be padding carries parity instead), so
    the effective rate ``k_info / n`` (:attr:`effective_code_rate`) is at
    most ``code_rate`` and an example spends exactly
    ``channel_uses = ceil(n / log2 M)`` complex channel uses (plus
    ``num_pilots`` with ``channel="rayleigh", csi="ls"``). Compare with an
    analog link of ``n_analog = channel_uses`` complex symbols (``2 n_analog``
    reals) for equal bandwidth.

    **SNR** is Es/N0 per complex channel use, as for the analog layers:
    ``no = 10 ** (-snr_db / 10)`` with unit-energy QAM symbols (so
    Eb/N0 = Es/N0 / (log2 M · effective rate) per information bit).

    **Noise output** (``return_noise=True``): the receiver's own estimate of
    the squared error of each returned value, ``[batch, k]``, computed from
    the decoder's output LLRs ``L_j`` of the value's ``b`` bits. With
    ``q_j = sigmoid(-|L_j|)`` the probability that hard decision ``b̂_j`` is
    wrong, ``s_j = 1 - 2 b̂_j`` and bit weights ``w_j = 2^(b-1-j)``,

    ``noise = Δ² / 12 + Δ² [ (Σ_j w_j s_j q_j)² + Σ_j w_j² q_j (1 - q_j) ]``

    (granular quantization noise plus the expected error of the hard index,
    bits treated as independent given the LLRs). It needs only what the
    receiver has, so :class:`~tosc_sionna.TaskOrientedLink` can feed it to the
    receiver's channel-adaptive module like an analog equalizer's noise. It is
    an estimate, not a calibrated promise: clipping error is excluded (the
    receiver cannot see it) and belief propagation's LLRs are overconfident
    when decoding fails. At high SNR it tends to ``Δ² / 12``.

    **Gradients.** Quantization and decoding are not differentiable: by
    default no gradient flows to ``x`` (the output is a constant to autodiff).
    With ``straight_through=True`` the forward pass is unchanged and the
    backward pass is the identity, ``y = x + stop_gradient(y_digital - x)``
    (the straight-through estimator), so a transmitter can be trained with
    the digital link in the loop.

    Parameters
    ----------
    num_bits : int, (default 4)
        Bits per real value ``b`` (1 to 16).
    clip : float, (default 3.0)
        Quantizer range ``[-clip, clip]``; must be > 0.
    code_rate : float, (default 0.5)
        Target LDPC rate ``r`` in [1/5, 948/1024] (5G NR, no segmentation).
    modulation_order : int, (default 16)
        ``M`` of square QAM: 4 (QPSK), 16, 64 or 256.
    num_iter : int, (default 20)
        Belief-propagation iterations (>= 1).
    channel : "awgn" (default) | "rayleigh"
        Flat Rayleigh block fading: one gain per example, as
        :class:`RayleighBlockFadingChannel`.
    csi : "perfect" (default) | "ls"
        Receiver CSI for ``channel="rayleigh"`` (LMMSE estimate from
        ``num_pilots`` pilots with ``"ls"``).
    num_pilots : int, (default 4)
        Pilots per example for ``csi="ls"``.
    demapping_method : "app" (default) | "maxlog"
    straight_through : bool, (default False)
        Identity gradient (see above).
    return_noise : bool, (default False)
        Also return the receiver's squared-error estimate per value.

    Input
    -----
    x : [batch, k], float
        Real values to send (not symbols: any ``k`` with ``1 <= k b <= 8448``
        and ``k b >= 12``).
    snr_db : scalar or [batch], float
        Es/N0 per complex channel use in dB, within [-30, 60]
        (or ``no=`` the noise variance, keyword only).

    Output
    ------
    y : [batch, k], float32
        Decoded, dequantized values (equal to :meth:`quantize_values` ``(x)`` when
        the codeword is decoded correctly).
    noise : [batch, k], float32
        Only with ``return_noise=True``: estimated squared error per value.
    """

    takes_symbols = False  # real values [batch, k]

    def __init__(
        self,
        num_bits: int = 4,
        clip: float = 3.0,
        code_rate: float = 0.5,
        modulation_order: int = 16,
        num_iter: int = 20,
        channel: str = "awgn",
        csi: str = "perfect",
        num_pilots: int = 4,
        demapping_method: str = "app",
        straight_through: bool = False,
        return_noise: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(return_noise=return_noise, **kwargs)
        if isinstance(num_bits, bool) or int(num_bits) != num_bits or not (
            1 <= int(num_bits) <= MAX_BITS_PER_VALUE
        ):
            raise ValueError(
                f"num_bits (bits per value) must be an integer in [1, {MAX_BITS_PER_VALUE}]; "
                f"got {num_bits!r}."
            )
        clip = float(clip)
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"clip (the quantizer range [-clip, clip]) must be > 0; got {clip}.")
        code_rate = float(code_rate)
        if not (LDPC5G_RATE_MIN <= code_rate <= LDPC5G_RATE_MAX):
            raise ValueError(
                f"code_rate must lie in [1/5, 948/1024] (5G NR LDPC without repetition); "
                f"got {code_rate}."
            )
        if isinstance(modulation_order, bool) or modulation_order not in QAM_ORDERS:
            raise ValueError(
                f"modulation_order must be a square QAM order (a power of 4) in {QAM_ORDERS}; "
                f"got {modulation_order!r}."
            )
        if isinstance(num_iter, bool) or int(num_iter) != num_iter or int(num_iter) < 1:
            raise ValueError(f"num_iter (BP iterations) must be an integer >= 1; got {num_iter!r}.")
        if channel not in DIGITAL_CHANNELS:
            raise ValueError(f"channel must be one of {DIGITAL_CHANNELS}; got {channel!r}.")
        if csi not in CSI_MODES:
            raise ValueError(f"csi must be one of {CSI_MODES}; got {csi!r}.")
        if int(num_pilots) < 1:
            raise ValueError(f"num_pilots must be >= 1; got {num_pilots}.")
        if demapping_method not in DEMAPPING_METHODS:
            raise ValueError(
                f"demapping_method must be one of {DEMAPPING_METHODS}; got {demapping_method!r}."
            )
        self.num_bits = int(num_bits)
        self.clip = clip
        self.code_rate = code_rate
        self.modulation_order = int(modulation_order)
        self.bits_per_symbol = int(round(math.log2(self.modulation_order)))
        self.num_iter = int(num_iter)
        self.channel = channel
        self.csi = csi
        self.num_pilots = int(num_pilots)
        self.demapping_method = demapping_method
        self.straight_through = bool(straight_through)
        self.num_values: int | None = None
        self.num_info_bits: int | None = None
        self.num_coded_bits: int | None = None

    # ----------------------------------------------------------------- sizes
    @property
    def step(self) -> float:
        """Quantizer step ``Δ = 2 clip / 2^b``."""
        return 2.0 * self.clip / 2**self.num_bits

    def code_parameters(self, num_values: int) -> dict[str, Any]:
        """Code sizes for ``num_values`` reals per example (checked; no Sionna object built).

        Returns ``k_info`` (info bits), ``n`` (coded bits), ``effective_code_rate``,
        ``bits_per_symbol`` and ``channel_uses`` (complex channel uses per
        example, pilots included). Raises ``ValueError`` if they do not fit
        one 5G LDPC codeword.
        """
        k = int(num_values)
        if k < 1:
            raise ValueError(f"DigitalChannel needs at least one value per example; got {k}.")
        k_info = k * self.num_bits
        if k_info > LDPC5G_K_MAX:
            raise ValueError(
                f"k * num_bits = {k} * {self.num_bits} = {k_info} information bits exceed one 5G "
                f"LDPC codeword ({LDPC5G_K_MAX}; code-block segmentation is not supported): "
                "send fewer values or fewer bits per value."
            )
        if k_info < LDPC5G_K_MIN:
            raise ValueError(
                f"k * num_bits = {k} * {self.num_bits} = {k_info} information bits are below "
                f"the 5G LDPC minimum of {LDPC5G_K_MIN}."
            )
        m = self.bits_per_symbol
        # smallest whole number of QAM symbols carrying k_info / code_rate bits
        n = m * math.ceil(k_info / self.code_rate / m - 1e-9)
        rate = k_info / n
        if rate < LDPC5G_RATE_MIN:
            raise ValueError(
                f"Rounding the codeword up to whole {self.modulation_order}-QAM symbols gives "
                f"n = {n} coded bits for k_info = {k_info}, rate {rate:.4f} < 1/5 (the 5G "
                "minimum): raise code_rate or the number of information bits."
            )
        pilots = self.num_pilots if (self.channel == "rayleigh" and self.csi == "ls") else 0
        return {
            "k_info": k_info,
            "n": n,
            "effective_code_rate": rate,
            "bits_per_symbol": m,
            "channel_uses": n // m + pilots,
        }

    @property
    def channel_uses(self) -> int | None:
        """Complex channel uses per example, ``ceil(n / log2 M)`` (+ pilots); None before build."""
        if self.num_values is None:
            return None
        return self.code_parameters(self.num_values)["channel_uses"]

    @property
    def effective_code_rate(self) -> float | None:
        """``k_info / n`` after rounding ``n`` up to whole QAM symbols; None before build."""
        if self.num_values is None:
            return None
        return self.num_info_bits / self.num_coded_bits

    # ------------------------------------------------------------------ build
    def build(self, x_shape: Any, snr_db_shape: Any = None) -> None:
        shape = tuple(x_shape)
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(
                f"DigitalChannel takes x of shape [batch, k] with a known k; got {shape}."
            )
        if snr_db_shape is not None and len(tuple(snr_db_shape)) > 1:
            raise ValueError(
                f"snr_db must be a scalar or have shape [batch]; got shape {tuple(snr_db_shape)}."
            )
        params = self.code_parameters(shape[-1])
        self.num_values = int(shape[-1])
        self.num_info_bits = params["k_info"]
        self.num_coded_bits = params["n"]
        self.num_symbols = params["n"] // params["bits_per_symbol"]
        self._dtypes = sionna_dtypes()
        with ops.outside_trace():  # Sionna objects hold eager state: never inside a trace
            m = self.bits_per_symbol
            try:
                encoder = LDPC5GEncoder(
                    self.num_info_bits, self.num_coded_bits, num_bits_per_symbol=m
                )
            except ValueError as err:
                raise ValueError(
                    f"Sionna's 5G LDPC encoder refused k_info={self.num_info_bits}, "
                    f"n={self.num_coded_bits}: {err}"
                ) from err
            untracked(
                self,
                _encoder=encoder,
                _decoder=LDPC5GDecoder(
                    encoder, hard_out=False, return_infobits=True, num_iter=self.num_iter
                ),
                _mapper=Mapper("qam", m),
                _demapper=Demapper(self.demapping_method, "qam", m),
            )
            if self.channel == "awgn":
                inner = AWGNChannel(return_noise=True)
            else:
                inner = RayleighBlockFadingChannel(
                    equalizer="zf", csi=self.csi, num_pilots=self.num_pilots, return_noise=True
                )
            inner.build((None, 2 * self.num_symbols))
            untracked(self, _inner=inner)  # simulation machinery, not a sublayer to save
        self.built = True

    # -------------------------------------------------------------- quantizer
    def quantize_indices(self, x: Any) -> Any:
        """Quantizer cell index of every value, int32 in ``[0, 2^b - 1]``."""
        x = K.cast(x, "float32")
        idx = K.floor((x + self.clip) / self.step)
        return K.cast(K.clip(idx, 0.0, 2.0**self.num_bits - 1.0), "int32")

    def dequantize(self, idx: Any) -> Any:
        """Cell centre ``-clip + (idx + 1/2) Δ`` of each index, float32."""
        return -self.clip + (K.cast(idx, "float32") + 0.5) * self.step

    def quantize_values(self, x: Any) -> Any:
        """What the link returns when decoding succeeds: clip, quantize, dequantize.

        (Not named ``quantize``: that is Keras's own model-quantization method.)
        """
        return self.dequantize(self.quantize_indices(x))

    def _index_to_bits(self, idx: Any) -> Any:
        """``[batch, k]`` int32 -> ``[batch, k b]`` bits (MSB first), Sionna's real dtype."""
        # bit j of idx is floor(idx / 2^(b-1-j)) mod 2, exact in int32
        powers = K.convert_to_tensor(
            [2 ** (self.num_bits - 1 - j) for j in range(self.num_bits)], "int32"
        )
        bits = K.mod(K.floor_divide(idx[..., None], powers), 2)
        bits = ops.reshape(bits, [ops.batch_size(idx), self.num_info_bits])
        return ops.cast(bits, self._dtypes[0])

    def _weights(self) -> Any:
        return K.convert_to_tensor(
            [2.0 ** (self.num_bits - 1 - j) for j in range(self.num_bits)], "float32"
        )

    # ------------------------------------------------------------------- link
    def _send(self, x: Any, snr_db: Any) -> tuple[Any, Any]:
        """Quantize, encode, map, transmit, demap: (coded bits, channel LLRs) ``[batch, n]``."""
        if not self.built:
            self.build(x.shape)
        rdtype, _ = self._dtypes
        no = ops.cast(self.noise_variance(snr_db, ops.batch_size(x)), rdtype)
        bits = self._index_to_bits(self.quantize_indices(x))
        coded = self._encoder(bits)
        s = self._mapper(coded)
        y, no_eff = self._inner.transmit(s, no)
        llr = self._demapper(y, ops.cast(no_eff, rdtype))
        return coded, llr

    def call(self, x: Any, snr_db: Any) -> Any:
        x = ops.cast(x, "float32")
        _, llr = self._send(x, snr_db)
        # Sionna's LLRs are logits log p(1)/p(0); so are the decoder's outputs.
        logits = ops.cast(self._decoder(llr), "float32")
        logits = ops.reshape(logits, [ops.batch_size(x), self.num_values, self.num_bits])
        hard = K.cast(logits > 0, "float32")
        weights = self._weights()
        idx = K.sum(hard * weights, axis=-1)
        y = K.stop_gradient(self.dequantize(idx))
        if self.straight_through:
            y = x + K.stop_gradient(y - x)
        if not self.return_noise:
            return y
        q = K.sigmoid(-K.abs(logits))  # probability that the hard decision is wrong
        sign = 1.0 - 2.0 * hard
        mean_err = K.sum(weights * sign * q, axis=-1)
        var_err = K.sum(weights**2 * q * (1.0 - q), axis=-1)
        noise = self.step**2 * (1.0 / 12.0 + mean_err**2 + var_err)
        return y, K.stop_gradient(noise)

    def raw_bit_error_rate(self, x: Any, snr_db: Any = None, no: Any = None) -> float:
        """Uncoded bit error rate: hard decisions on the demapper's LLRs vs the coded bits.

        The same transmission as ``call`` up to the demapper (no decoding),
        over every coded bit of the batch. Pass exactly one of ``snr_db``
        (Es/N0 per complex symbol, dB) and ``no``.
        """
        if (snr_db is None) == (no is None):
            raise ValueError("Pass exactly one of snr_db and no.")
        if no is not None:
            snr_db = noise_variance_to_snr_db(no)
        x = ops.cast(x if ops.is_tensor(x) else np.asarray(x, np.float32), "float32")
        coded, llr = self._send(x, ops.constant(np.asarray(snr_db, np.float32), "float32"))
        errors = ops.to_numpy(llr > 0) != ops.to_numpy(coded).astype(bool)
        return float(np.mean(errors))

    # ----------------------------------------------------------------- shapes
    def compute_output_spec(self, x: Any, snr_db: Any = None) -> Any:
        shape = tuple(x.shape)
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(
                f"DigitalChannel takes x of shape [batch, k] with a known k; got {shape}."
            )
        y = keras.KerasTensor(shape, dtype="float32")
        return (y, keras.KerasTensor(shape, dtype="float32")) if self.return_noise else y

    def compute_output_shape(self, x_shape: Any, snr_db_shape: Any = None) -> Any:
        shape = tuple(x_shape)
        return (shape, shape) if self.return_noise else shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_bits=self.num_bits,
            clip=self.clip,
            code_rate=self.code_rate,
            modulation_order=self.modulation_order,
            num_iter=self.num_iter,
            channel=self.channel,
            csi=self.csi,
            num_pilots=self.num_pilots,
            demapping_method=self.demapping_method,
            straight_through=self.straight_through,
        )
        return config
