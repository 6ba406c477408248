"""The digital baseline: quantize, CRC, 5G LDPC, QAM, channel, demap, decode, dequantize."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops as K
from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import Demapper, Mapper

from ..backends import ops
from ..checks import check_bool, check_int
from .awgn import AWGNChannel
from .base import ChannelLayer, noise_variance_to_snr_db, sionna_dtypes, untracked
from .rayleigh import CSI_MODES, RayleighBlockFadingChannel

__all__ = [
    "CRC_DEGREES",
    "DIGITAL_CHANNELS",
    "DigitalChannel",
    "LDPC5G_RATE_MAX",
    "LDPC5G_RATE_MIN",
    "LDPC5G_RATE_MIN_REPEATED",
]

#: Channels the digital link can run over.
DIGITAL_CHANNELS = ("awgn", "rayleigh")
#: QAM orders the layer accepts (powers of 4: square Gray-labelled QAM).
QAM_ORDERS = (4, 16, 64, 256)
#: The lowest rate Sionna's 5G LDPC encoder produces (its rate matching stops at 1/5: it
#: repeats nothing); the layer reaches lower rates by repeating its codeword (see the class).
LDPC5G_RATE_MIN = 1 / 5
#: The lowest code rate of 5G NR: MCS index 0 of MCS table 3 (TS 38.214 Table 5.1.3.1-3),
#: 30/1024 with QPSK, reached in 5G by the rate matcher's circular buffer.
LDPC5G_RATE_MIN_REPEATED = 30 / 1024
#: The highest code rate of 5G NR (38.212 5.4.2.1; MCS tables).
LDPC5G_RATE_MAX = 948 / 1024
#: Information bits of one 5G LDPC codeword without segmentation (38.212 5.2.2).
LDPC5G_K_MIN = 12
LDPC5G_K_MAX = 8448
#: Bits per value: indices are int32; 5G's 8448 info bits cap k * b anyway.
MAX_BITS_PER_VALUE = 16
DEMAPPING_METHODS = ("app", "maxlog")
#: CRC polynomials of 5G NR (38.212 5.1), as Sionna's CRCEncoder names them: degree in bits.
CRC_DEGREES = {"CRC6": 6, "CRC11": 11, "CRC16": 16, "CRC24A": 24, "CRC24B": 24, "CRC24C": 24}
#: LLR magnitude of a bit the receiver knows (shortened filler): the decoder's clipping level
#: (its ``llr_max``), the value Sionna's own decoder gives its filler bits.
LLR_KNOWN = 20.0


@keras.saving.register_keras_serializable(package="tosc_sionna")
class DigitalChannel(ChannelLayer):
    r"""Separate source-channel coding over a Sionna channel: the digital baseline.

    Each example's ``k`` reals are clipped to ``[-clip, clip]`` and uniformly
    quantized to ``b`` bits (mid-rise, ``2^b`` levels, step
    ``Δ = 2 clip / 2^b``, reconstruction at the cell centres, index in natural
    binary, most significant bit first). The ``k b`` bits of an example
    (optionally followed by a 5G CRC) form **one** 5G NR LDPC codeword
    (:class:`~sionna.phy.fec.ldpc.LDPC5GEncoder` with its rate matching,
    then repetition below rate 1/5 and the 5G output interleaver for the QAM
    order, see below), whose coded bits are Gray-mapped to ``M``-QAM (Sionna
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
    the effective rate ``k_info / n`` (:attr:`effective_code_rate`; CRC bits
    are overhead inside ``n``) is at most ``code_rate`` and an example spends
    exactly ``channel_uses = n / log2 M`` complex channel uses (plus
    ``num_pilots`` with ``channel="rayleigh", csi="ls"``). Compare with an
    analog link of ``n_analog = channel_uses`` complex symbols (``2 n_analog``
    reals) for equal bandwidth.

    **Rates below 1/5: repetition.** 5G NR goes down to code rate 30/1024
    (MCS table 3, TS 38.214 Table 5.1.3.1-3); Sionna's encoder stops at 1/5.
    The layer encodes a *mother* codeword at the longest length Sionna
    accepts, ``n_m = min(n, 5 k_enc)`` bits (``k_enc`` the encoder's
    information bits), sends its ``t_m`` bits that are not known (see
    shortening; ``t_m = n_m`` without) and repeats them circularly: sent bit
    ``i < n`` is mother bit ``i mod t_m``. The receiver adds the LLRs of all
    copies of a mother bit before decoding (``repetitions = n / t_m``, see
    :meth:`code_parameters`). 5G's rate matcher reads a circular buffer that
    holds the whole mother code (base graph 2: about 50 Z bits, rate about
    1/8 at ``k = 12``), so below 1/5 it first sends *new* parity and repeats
    only after the buffer wraps; Sionna's encoder does not expose that
    longer codeword (Sionna 1.2 has no redundancy versions; 2.2's serve
    HARQ), so repeating from 1/5 down is a slightly pessimistic stand-in
    for 5G at the lowest rates (repetition gains SNR, new parity also
    coding gain).

    **Shortening.** 5G LDPC takes at least 12 information bits. A smaller
    block (``k_info`` plus CRC bits below 12) is padded at its end with known
    zero filler bits up to ``k_enc = 12``; the coded bits determined by the
    filler alone (the code is linear: the positions whose generator column,
    found at build time by encoding the identity, has support only in the
    filler rows; the filler's own systematic bits among them) are not sent,
    and the receiver gives them the LLR of a known zero, ``-20`` (the
    decoder's clipping level; Sionna's LLRs are logits ``log p(1)/p(0)``).
    The encoder's length is the largest whose unknown bits fit ``n``; a 5G
    rate-matched codeword is a prefix of one circular buffer, so that length
    is read off one long encoder (and checked on the final one).

    **Output interleaver.** As in 5G (38.212 5.4.2.2), the ``n``
    transmitted bits (after repetition) pass through the output interleaver
    for ``log2 M`` bits per symbol (``LDPC5GEncoder.generate_out_int``), so
    the bits of one QAM symbol come from different parts of the codeword.
    Without shortening and repetition this is exactly what Sionna's encoder
    does when given ``num_bits_per_symbol``. The receiver de-interleaves,
    adds the copies and places them at their encoder positions (gathers:
    the product with the ``[n, n_enc]`` 0/1 combining matrix, without
    storing it), adds the known-filler LLRs and decodes.

    **CRC** (``crc``, default none): one of 5G's CRCs (Sionna's
    :class:`~sionna.phy.fec.crc.CRCEncoder` names, ``"CRC6"`` to
    ``"CRC24C"``) is appended to the information bits before the LDPC
    encoder; its bits count as overhead (``effective_code_rate`` stays
    ``k_info / n``). A codeword whose CRC fails after decoding is an
    **erasure**: every value of the example is returned as 0 (the middle of
    the quantizer range) and, with ``return_noise``, its noise estimate is
    ``clip² / 3`` (the second moment of a value uniform on
    ``[-clip, clip]``), instead of silently wrong values.

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
    bits treated as independent given the LLRs; ``clip² / 3`` for an
    erasure). It needs only what the receiver has, so
    :class:`~tosc_sionna.TaskOrientedLink` can feed it to the receiver's
    channel-adaptive module like an analog equalizer's noise. It is an
    estimate, not a calibrated promise: clipping error is excluded (the
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
        Target code rate ``r`` in [30/1024, 948/1024] (5G NR; below 1/5 by
        repetition, see above).
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
    crc : None (default) | "CRC6" | "CRC11" | "CRC16" | "CRC24A" | "CRC24B" | "CRC24C"
        CRC appended before the LDPC code; a failed check erases the example.
    return_noise : bool, (default False)
        Also return the receiver's squared-error estimate per value.

    Input
    -----
    x : [batch, k], float
        Real values to send (not symbols: any ``k`` with
        ``k b + crc bits <= 8448``).
    snr_db : scalar or [batch], float
        Es/N0 per complex channel use in dB, within [-30, 60]
        (or ``no=`` the noise variance, keyword only).

    Output
    ------
    y : [batch, k], float32
        Decoded, dequantized values (equal to :meth:`quantize_values` ``(x)`` when
        the codeword is decoded correctly; all 0 for a CRC erasure).
    noise : [batch, k], float32
        Only with ``return_noise=True``: estimated squared error per value.

    Example
    -------
    >>> channel = DigitalChannel(num_bits=2, code_rate=0.1, modulation_order=4, crc="CRC11")
    >>> y = channel(x, 0.0)  # x: [batch, 12]: 24 bits + 11 CRC bits in 240 coded bits
    >>> channel.channel_uses, channel.code_parameters(12)["repetitions"]  # mother: 175 bits
    (120, 1.3714285714285714)
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
        crc: str | None = None,
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
        if not (LDPC5G_RATE_MIN_REPEATED <= code_rate <= LDPC5G_RATE_MAX):
            raise ValueError(
                f"code_rate must lie in [30/1024, 948/1024] (the code rates of 5G NR); "
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
        if demapping_method not in DEMAPPING_METHODS:
            raise ValueError(
                f"demapping_method must be one of {DEMAPPING_METHODS}; got {demapping_method!r}."
            )
        if crc is not None and crc not in CRC_DEGREES:
            raise ValueError(
                f"crc must be None or one of {tuple(CRC_DEGREES)} (5G's CRCs); got {crc!r}."
            )
        self.num_bits = int(num_bits)
        self.clip = clip
        self.code_rate = code_rate
        self.modulation_order = int(modulation_order)
        self.bits_per_symbol = int(round(math.log2(self.modulation_order)))
        self.num_iter = int(num_iter)
        self.channel = channel
        self.csi = csi
        self.num_pilots = check_int("num_pilots", num_pilots, 1)
        self.demapping_method = demapping_method
        self.straight_through = check_bool("straight_through", straight_through)
        self.crc = crc
        self.num_values: int | None = None
        self.num_info_bits: int | None = None
        self.num_coded_bits: int | None = None
        # mother bits sent once (t_m), known after build: see code_parameters
        self._mother_bits: int | None = None

    # ----------------------------------------------------------------- sizes
    @property
    def step(self) -> float:
        """Quantizer step ``Δ = 2 clip / 2^b``."""
        return 2.0 * self.clip / 2**self.num_bits

    @property
    def crc_bits(self) -> int:
        """CRC bits appended to each codeword's information bits (0 without a CRC)."""
        return CRC_DEGREES[self.crc] if self.crc else 0

    def code_parameters(self, num_values: int) -> dict[str, Any]:
        """Code sizes for ``num_values`` reals per example (checked; no Sionna object built).

        Returns ``k_info`` (info bits), ``crc_bits``, ``filler_bits`` (known
        zeros that shorten the code up to 5G's 12-bit minimum), ``n`` (coded
        bits sent), ``effective_code_rate`` (``k_info / n``),
        ``bits_per_symbol``, ``channel_uses`` (complex channel uses per
        example, pilots included), ``mother_bits`` (distinct coded bits sent,
        ``t_m``) and ``repetitions`` (``n / t_m``, 1 at rates >= 1/5 without
        shortening). ``t_m`` needs the encoder when the code is shortened
        (the known bits are found by encoding): until the layer is built for
        ``num_values``, ``mother_bits`` is then ``min(n, 5 k_enc)``, the
        count before removing the known bits. Raises ``ValueError`` if the
        sizes do not fit one 5G LDPC codeword.
        """
        k = int(num_values)
        if k < 1:
            raise ValueError(f"DigitalChannel needs at least one value per example; got {k}.")
        k_info = k * self.num_bits
        crc_bits = self.crc_bits
        if k_info + crc_bits > LDPC5G_K_MAX:
            raise ValueError(
                f"k * num_bits + CRC = {k} * {self.num_bits} + {crc_bits} = {k_info + crc_bits} "
                f"information bits exceed one 5G LDPC codeword ({LDPC5G_K_MAX}; code-block "
                "segmentation is not supported): send fewer values, fewer bits per value or a "
                "shorter CRC."
            )
        k_enc = max(k_info + crc_bits, LDPC5G_K_MIN)
        m = self.bits_per_symbol
        # smallest whole number of QAM symbols carrying k_info / code_rate bits
        n = m * math.ceil(k_info / self.code_rate / m - 1e-9)
        rate = k_info / n
        if rate < LDPC5G_RATE_MIN_REPEATED:
            raise ValueError(
                f"Rounding the codeword up to whole {self.modulation_order}-QAM symbols gives "
                f"n = {n} coded bits for k_info = {k_info}, rate {rate:.4f} < 30/1024 (the "
                "lowest 5G code rate): raise code_rate or the number of information bits."
            )
        if (k_info + crc_bits) / n > LDPC5G_RATE_MAX:
            raise ValueError(
                f"{k_info} information + {crc_bits} CRC bits in n = {n} coded bits is a rate "
                "above 948/1024 (the highest 5G code rate): lower code_rate or use a shorter "
                "CRC (or none)."
            )
        if self._mother_bits is not None and k == self.num_values:
            mother = self._mother_bits
        else:
            mother = min(n, 5 * k_enc)
        pilots = self.num_pilots if (self.channel == "rayleigh" and self.csi == "ls") else 0
        return {
            "k_info": k_info,
            "crc_bits": crc_bits,
            "filler_bits": k_enc - k_info - crc_bits,
            "n": n,
            "effective_code_rate": rate,
            "bits_per_symbol": m,
            "channel_uses": n // m + pilots,
            "mother_bits": mother,
            "repetitions": n / mother,
        }

    @property
    def channel_uses(self) -> int | None:
        """Complex channel uses per example, ``n / log2 M`` (+ pilots); None before build."""
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
        k_info, n, m = params["k_info"], params["n"], params["bits_per_symbol"]
        k_crc = k_info + params["crc_bits"]  # information bits the decoder must recover
        k_enc = k_crc + params["filler_bits"]
        self._dtypes = sionna_dtypes()
        with ops.outside_trace():  # Sionna objects hold eager state: never inside a trace
            try:
                encoder, known = self._mother_encoder(k_crc, k_enc, n)
            except ValueError as err:
                raise ValueError(
                    f"Sionna's 5G LDPC encoder refused k_info={k_info} (+{params['crc_bits']} "
                    f"CRC, +{params['filler_bits']} filler) for n={n}: {err}"
                ) from err
            plan = rate_matching(known, n, encoder.generate_out_int(n, m))
            rdtype = self._dtypes[0]
            untracked(
                self,
                _encoder=encoder,
                _decoder=LDPC5GDecoder(
                    encoder, hard_out=False, return_infobits=True, num_iter=self.num_iter,
                    llr_max=LLR_KNOWN,
                ),
                _mapper=Mapper("qam", m),
                _demapper=Demapper(self.demapping_method, "qam", m),
                _tx_index=ops.constant(plan["tx_index"], "int32"),
                _combine_index=ops.constant(plan["combine_index"], "int32"),
                _scatter_index=ops.constant(plan["scatter_index"], "int32"),
                _known_llr=(ops.constant(plan["known_llr"], rdtype)
                            if np.any(known) else None),
                # information bits + CRC, then the filler (the appended zero column)
                _fill_index=(ops.constant(np.minimum(np.arange(k_enc), k_crc), "int32")
                             if k_enc > k_crc else None),
                _crc_encoder=None,
                _crc_decoder=None,
            )
            if self.crc:
                crc_encoder = CRCEncoder(self.crc)
                crc_decoder = CRCDecoder(crc_encoder)
                # built here, on a dummy batch: they build their matrices on first call
                crc_decoder(crc_encoder(ops.constant(np.zeros((1, k_info)), rdtype)))
                untracked(self, _crc_encoder=crc_encoder, _crc_decoder=crc_decoder)
            if self.channel == "awgn":
                inner = AWGNChannel(return_noise=True)
            else:
                inner = RayleighBlockFadingChannel(
                    equalizer="zf", csi=self.csi, num_pilots=self.num_pilots, return_noise=True
                )
            inner.build((None, 2 * (n // m)))
            untracked(self, _inner=inner)  # simulation machinery, not a sublayer to save
        self._mother_bits = plan["mother_bits"]
        self._combine_rows = plan["combine_rows"]
        if params["filler_bits"]:
            with ops.outside_trace():
                self._check_shortened_code_decodes(k_info, n)
        self.num_values = int(shape[-1])
        self.num_info_bits = k_info
        self.num_coded_bits = n
        self.num_symbols = n // m
        self.built = True

    def _check_shortened_code_decodes(self, k_info: int, n: int) -> None:
        """Refuse a shortened code that does not decode even without noise.

        A shortened block is not one 5G specifies (5G's smallest LDPC block
        has 24 + 16 CRC bits); at the highest rates its few parity bits may
        not let belief propagation recover the two punctured systematic
        columns (e.g. 3 bits in 4). Every one of the ``2^k_info`` (at most
        2048) blocks is sent noiselessly and decoded.
        """
        patterns = (np.arange(2**k_info)[:, None] >> np.arange(k_info)[::-1]) & 1
        coded = self._coded_bits(ops.constant(patterns, self._dtypes[0]))
        llr = coded * (2.0 * LLR_KNOWN) - LLR_KNOWN  # certain bits: 1 -> +, 0 -> -
        decoded = ops.to_numpy(self._decoder(self._decoder_llrs(llr)))[:, :k_info] > 0
        if not np.array_equal(decoded, patterns.astype(bool)):
            raise ValueError(
                f"A shortened block of {k_info} information + {self.crc_bits} CRC bits in "
                f"n = {n} coded bits does not decode even without noise (belief propagation "
                "cannot recover the 5G code's punctured systematic bits from so few parity "
                "bits): lower code_rate or use a shorter CRC (or none)."
            )

    def _mother_encoder(self, k_crc: int, k_enc: int, n: int) -> tuple[Any, np.ndarray]:
        """The 5G encoder of the mother codeword and its known (filler-only) positions.

        Without filler: ``min(n, 5 k_enc)`` bits, none known. With filler
        (``k_enc = 12 > k_crc``): the length whose unknown bits are the most
        that fit ``n``, found on one encoder of the longest length (a
        rate-matched 5G codeword is a prefix of one circular buffer) and
        checked on the final one.
        """
        if k_enc == k_crc:
            n_enc = min(n, 5 * k_enc)
            return LDPC5GEncoder(k_enc, n_enc), np.zeros(n_enc, bool)
        longest = 5 * k_enc
        generator = generator_matrix(LDPC5GEncoder(k_enc, longest), self._dtypes[0])
        known = ~generator[:k_crc].any(axis=0)  # support only in the filler rows
        unknown_in_prefix = np.cumsum(~known)  # [j]: unknown bits among the first j + 1
        shortest = math.ceil(k_enc / LDPC5G_RATE_MAX - 1e-9)  # Sionna warns above 948/1024
        fits = [j + 1 for j in range(shortest - 1, longest) if unknown_in_prefix[j] <= n]
        n_enc = max(fits) if fits else shortest  # else some unknown bits go unsent (punctured)
        encoder = LDPC5GEncoder(k_enc, n_enc)
        if not np.array_equal(generator_matrix(encoder, self._dtypes[0]), generator[:, :n_enc]):
            raise RuntimeError(
                f"Sionna's 5G LDPC codeword of k={k_enc}, n={n_enc} is not a prefix of the "
                f"n={longest} one: shortening cannot find its known bits."
            )
        return encoder, known[:n_enc]

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
    def _coded_bits(self, bits: Any) -> Any:
        """``[batch, k_info]`` bits -> the ``[batch, n]`` bits sent (CRC, filler, LDPC,
        repetition, output interleaver), Sionna's real dtype."""
        if self._crc_encoder is not None:
            bits = self._crc_encoder(bits)
        if self._fill_index is not None:  # known zeros up to the 12-bit minimum
            bits = ops.gather(ops.pad_zero_column(bits), self._fill_index)
        # unknown mother bits, repeated circularly and interleaved: one gather
        return ops.gather(self._encoder(bits), self._tx_index)

    def _decoder_llrs(self, llr: Any) -> Any:
        """``[batch, n]`` channel LLRs -> the decoder's ``[batch, n_enc]``: de-interleave, add
        the copies of each mother bit, place them, known filler bits at ``-LLR_KNOWN``."""
        llr = ops.gather(ops.pad_zero_column(llr), self._combine_index)  # zero-padded
        if self._combine_rows > 1:
            llr = ops.reshape(llr, [ops.batch_size(llr), self._combine_rows, self._mother_bits])
            llr = K.sum(llr, axis=1)
        llr = ops.gather(ops.pad_zero_column(llr), self._scatter_index)  # unsent: 0
        return llr if self._known_llr is None else llr + self._known_llr

    def _send(self, x: Any, snr_db: Any) -> tuple[Any, Any]:
        """Quantize, encode, map, transmit, demap: (coded bits, channel LLRs) ``[batch, n]``."""
        if not self.built:
            self.build(x.shape)
        rdtype, _ = self._dtypes
        no = ops.cast(self.noise_variance(snr_db, ops.batch_size(x)), rdtype)
        coded = self._coded_bits(self._index_to_bits(self.quantize_indices(x)))
        s = self._mapper(coded)
        y, no_eff = self._inner.transmit(s, no)
        llr = self._demapper(y, ops.cast(no_eff, rdtype))
        return coded, llr

    def call(self, x: Any, snr_db: Any) -> Any:
        x = ops.cast(x, "float32")
        _, llr = self._send(x, snr_db)
        # Sionna's LLRs are logits log p(1)/p(0); so are the decoder's outputs.
        decoded = self._decoder(self._decoder_llrs(llr))  # [batch, k_enc]
        logits = ops.cast(decoded[:, : self.num_info_bits], "float32")
        logits = ops.reshape(logits, [ops.batch_size(x), self.num_values, self.num_bits])
        hard = K.cast(logits > 0, "float32")
        weights = self._weights()
        idx = K.sum(hard * weights, axis=-1)
        y = self.dequantize(idx)
        if self._crc_decoder is not None:
            with_crc = decoded[:, : self.num_info_bits + self.crc_bits]
            _, valid = self._crc_decoder(ops.cast(with_crc > 0, self._dtypes[0]))  # [batch, 1]
            kept = K.cast(valid, "float32")
            y = y * kept  # an erasure: the middle of the quantizer range
        y = K.stop_gradient(y)
        if self.straight_through:
            y = x + K.stop_gradient(y - x)
        if not self.return_noise:
            return y
        q = K.sigmoid(-K.abs(logits))  # probability that the hard decision is wrong
        sign = 1.0 - 2.0 * hard
        mean_err = K.sum(weights * sign * q, axis=-1)
        var_err = K.sum(weights**2 * q * (1.0 - q), axis=-1)
        noise = self.step**2 * (1.0 / 12.0 + mean_err**2 + var_err)
        if self._crc_decoder is not None:  # an erasure: a value uniform on [-clip, clip]
            noise = noise * kept + (1.0 - kept) * (self.clip**2 / 3.0)
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
            crc=self.crc,
        )
        return config


def generator_matrix(encoder: Any, dtype: Any) -> np.ndarray:
    """The ``[k, n]`` 0/1 generator matrix of a (linear) Sionna encoder: it encodes the identity."""
    eye = ops.constant(np.eye(encoder.k), dtype)
    return ops.to_numpy(encoder(eye)).astype(bool)


def rate_matching(known: np.ndarray, n: int, interleaver: tuple[np.ndarray, np.ndarray]
                  ) -> dict[str, Any]:
    """Index maps from a mother codeword with ``known`` positions to ``n`` sent bits and back.

    The unknown positions (the first ``n`` of them) are sent once each in
    order, repeated circularly up to ``n`` bits and interleaved by
    ``interleaver = (perm, perm_inv)`` (sent bit ``j`` is pre-interleaver
    bit ``perm[j]``). Returns ``tx_index`` (``[n]``: the codeword position
    of each sent bit), ``combine_index`` (``[combine_rows * t]``: for each
    pre-interleaver bit its received position; ``n``, an appended zero
    column, past the end), ``scatter_index`` (``[n_enc]``: the mother bit
    of each position; ``t``, a zero column, for unsent ones), ``known_llr``
    (``-LLR_KNOWN`` at known positions), ``mother_bits`` ``t`` and
    ``combine_rows`` (``ceil(n / t)``, the rows to add).
    """
    perm, perm_inv = (np.asarray(p, np.int64) for p in interleaver)
    sent = np.flatnonzero(~known)[:n]
    t = len(sent)
    if t == 0:
        raise ValueError("The mother codeword has no unknown bit to send.")
    rows = -(-n // t)
    combine = np.full(rows * t, n, np.int64)
    combine[:n] = perm_inv
    scatter = np.full(len(known), t, np.int64)
    scatter[sent] = np.arange(t)
    return {
        "tx_index": sent[perm % t],
        "combine_index": combine,
        "scatter_index": scatter,
        "known_llr": np.where(known, -LLR_KNOWN, 0.0),
        "mother_bits": t,
        "combine_rows": rows,
    }
