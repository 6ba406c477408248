"""OFDM link over Sionna channel models, with channel estimation and equalization."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sionna.phy.channel import ChannelModel, RayleighBlockFading
from sionna.phy.channel import OFDMChannel as SionnaOFDMChannel
from sionna.phy.channel.tr38901 import CDL, TDL, Antenna
from sionna.phy.mimo import StreamManagement
from sionna.phy.ofdm import (
    LMMSEEqualizer,
    LSChannelEstimator,
    RemoveNulledSubcarriers,
    ResourceGrid,
    ResourceGridMapper,
    ZFEqualizer,
)

from .base import ChannelLayer, mmse_shrink

#: Channel model names understood by :class:`OFDMChannel`.
CHANNEL_MODELS = ("rayleigh",) + tuple(f"tdl-{m}" for m in "abcde") + tuple(
    f"cdl-{m}" for m in "abcde"
)
EQUALIZERS = ("lmmse", "zf")
CSI_MODES = ("perfect", "ls")
INTERPOLATIONS = ("nn", "lin", "lin_time_avg")


def make_channel_model(
    name: str, delay_spread: float, carrier_frequency: float, speed: float
) -> ChannelModel:
    """A single-antenna Sionna channel model from its name (see ``CHANNEL_MODELS``)."""
    if name == "rayleigh":
        return RayleighBlockFading(1, 1, 1, 1, precision="single")
    family, letter = name.split("-")
    if family == "tdl":
        return TDL(
            letter.upper(), delay_spread, carrier_frequency,
            min_speed=speed, max_speed=speed, precision="single",
        )
    antenna = Antenna(
        polarization="single", polarization_type="V",
        antenna_pattern="omni", carrier_frequency=carrier_frequency,
    )
    return CDL(
        letter.upper(), delay_spread, carrier_frequency, ut_array=antenna,
        bs_array=antenna, direction="uplink", min_speed=speed, max_speed=speed,
        precision="single",
    )


@keras.saving.register_keras_serializable(package="tosc_sionna")
class OFDMChannel(ChannelLayer):
    r"""Analog symbols over an OFDM resource grid through a Sionna channel model.

    The n complex symbols of an example fill the first n data resource
    elements of one Sionna :class:`~sionna.phy.ofdm.ResourceGrid` (the rest
    carry zeros); pilots follow a Kronecker pattern on the OFDM symbols
    ``pilot_ofdm_symbol_indices``. Sionna's
    :class:`~sionna.phy.channel.OFDMChannel` applies the frequency response
    (unit average energy per resource element over channel draws, not per
    example, so fading is kept) and the noise;
    the receiver estimates the channel (perfect CSI, or LS at the pilots with
    interpolation) and equalizes with Sionna's LMMSE or ZF equalizer.

    Sionna's LMMSE equalizer returns the unbiased estimate; this layer
    returns the MMSE estimate ``x_hat / (1 + no_eff)`` with error variance
    ``no_eff / (1 + no_eff)``, so deep fades on a subcarrier stay bounded.
    ZF returns the unbiased estimate and Sionna's ``no_eff``.

    Parameters
    ----------
    channel_model : str or ``sionna.phy.channel.ChannelModel``, (default "tdl-a")
        One of ``"rayleigh"``, ``"tdl-a"`` .. ``"tdl-e"``, ``"cdl-a"`` ..
        ``"cdl-e"`` (one omnidirectional antenna at each end, uplink), or a Sionna channel model
        object with one single-antenna transmitter and receiver.
    delay_spread : float, (default 100e-9)
        RMS delay spread [s] of the TDL/CDL models.
    carrier_frequency : float, (default 3.5e9)
        Carrier frequency [Hz].
    speed : float, (default 0.0)
        Terminal speed [m/s]; nonzero gives time variation across OFDM symbols.
    subcarrier_spacing : float, (default 30e3)
        Subcarrier spacing [Hz].
    num_ofdm_symbols : int, (default 14)
    fft_size : int or None, (default None)
        Number of subcarriers; None picks the smallest grid that holds n symbols.
    pilot_ofdm_symbol_indices : tuple of int, (default (2, 11))
    csi : "ls" (default) | "perfect"
    interpolation : "lin" (default) | "nn" | "lin_time_avg"
        Interpolation of the LS estimates (``csi="ls"`` only).
    equalizer : "lmmse" (default) | "zf"
    resource_grid : ``sionna.phy.ofdm.ResourceGrid`` or None, (default None)
        A grid of your own (one transmitter, one stream); overrides the grid
        parameters above.
    return_noise : bool, (default False)
        Also return the effective noise variance of every symbol.

    A layer built from user-supplied Sionna objects cannot be saved to a
    ``.keras`` file; build it again in code (it has no weights).

    Input
    -----
    x : [batch, 2n], float
        Channel input, (Re, Im) interleaved.
    snr_db : scalar or [batch], float
        Es/N0 per complex symbol (per resource element) in dB, within [-30, 60].

    Output
    ------
    y : [batch, 2n], float32
        Equalized symbols.
    no_eff : [batch, n], float32
        Only with ``return_noise=True``: error variance of each equalized symbol.
    """

    def __init__(
        self,
        channel_model: str | ChannelModel = "tdl-a",
        delay_spread: float = 100e-9,
        carrier_frequency: float = 3.5e9,
        speed: float = 0.0,
        subcarrier_spacing: float = 30e3,
        num_ofdm_symbols: int = 14,
        fft_size: int | None = None,
        pilot_ofdm_symbol_indices: tuple[int, ...] = (2, 11),
        csi: str = "ls",
        interpolation: str = "lin",
        equalizer: str = "lmmse",
        resource_grid: ResourceGrid | None = None,
        return_noise: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(return_noise=return_noise, **kwargs)
        if isinstance(channel_model, str):
            if channel_model.lower() not in CHANNEL_MODELS:
                raise ValueError(
                    f"Unknown channel model {channel_model!r}; choose one of "
                    f"{', '.join(CHANNEL_MODELS)} or pass a Sionna ChannelModel."
                )
            channel_model = channel_model.lower()
        elif not isinstance(channel_model, ChannelModel):
            raise ValueError(
                "channel_model must be a name or a sionna.phy.channel.ChannelModel; "
                f"got {type(channel_model).__name__}."
            )
        for name, value, allowed in (
            ("csi", csi, CSI_MODES),
            ("interpolation", interpolation, INTERPOLATIONS),
            ("equalizer", equalizer, EQUALIZERS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {value!r}.")
        if resource_grid is not None and not isinstance(resource_grid, ResourceGrid):
            raise ValueError(
                "resource_grid must be a sionna.phy.ofdm.ResourceGrid; "
                f"got {type(resource_grid).__name__}."
            )
        if resource_grid is not None and (
            resource_grid.num_tx != 1 or resource_grid.num_streams_per_tx != 1
        ):
            raise ValueError("resource_grid must have one transmitter and one stream.")
        pilots = tuple(int(i) for i in pilot_ofdm_symbol_indices)
        if any(i < 0 or i >= num_ofdm_symbols for i in pilots) or len(set(pilots)) != len(
            pilots
        ):
            raise ValueError(
                f"pilot_ofdm_symbol_indices {pilots} must be distinct indices in "
                f"[0, {num_ofdm_symbols})."
            )
        if len(pilots) >= num_ofdm_symbols:
            raise ValueError("At least one OFDM symbol must carry data.")
        self.channel_model = channel_model
        self.delay_spread = float(delay_spread)
        self.carrier_frequency = float(carrier_frequency)
        self.speed = float(speed)
        self.subcarrier_spacing = float(subcarrier_spacing)
        self.num_ofdm_symbols = int(num_ofdm_symbols)
        self.fft_size = None if fft_size is None else int(fft_size)
        self.pilot_ofdm_symbol_indices = pilots
        self.csi = csi
        self.interpolation = interpolation
        self.equalizer = equalizer
        self.resource_grid = resource_grid

    def _make_resource_grid(self, num_symbols: int) -> ResourceGrid:
        data_ofdm_symbols = self.num_ofdm_symbols - len(self.pilot_ofdm_symbol_indices)
        fft_size = self.fft_size or math.ceil(num_symbols / data_ofdm_symbols)
        return ResourceGrid(
            num_ofdm_symbols=self.num_ofdm_symbols,
            fft_size=fft_size,
            subcarrier_spacing=self.subcarrier_spacing,
            num_tx=1,
            num_streams_per_tx=1,
            pilot_pattern="kronecker",
            pilot_ofdm_symbol_indices=list(self.pilot_ofdm_symbol_indices),
            precision="single",
        )

    def build_channel(self, num_symbols: int) -> None:
        rg = self.resource_grid or self._make_resource_grid(num_symbols)
        capacity = int(rg.num_data_symbols)
        if num_symbols > capacity:
            raise ValueError(
                f"{num_symbols} complex symbols do not fit the resource grid's {capacity} "
                "data resource elements; use a larger fft_size / num_ofdm_symbols, or "
                "fewer symbols."
            )
        self.grid = rg
        self._capacity = capacity
        model = self.channel_model
        if isinstance(model, str):
            model = make_channel_model(
                model, self.delay_spread, self.carrier_frequency, self.speed
            )
        self._mapper = ResourceGridMapper(rg, precision="single")
        # No per-example normalization: it would cancel the fading of narrow
        # grids. The 3GPP power delay profiles already have unit total energy.
        self._channel = SionnaOFDMChannel(
            model, rg, normalize_channel=False, return_channel=True, precision="single"
        )
        self._remove_nulled = RemoveNulledSubcarriers(rg, precision="single")
        self._estimator = LSChannelEstimator(
            rg, interpolation_type=self.interpolation, precision="single"
        )
        sm = StreamManagement(np.ones([1, 1], dtype=int), 1)
        equalizer = LMMSEEqualizer if self.equalizer == "lmmse" else ZFEqualizer
        self._equalize = equalizer(rg, sm, precision="single")

    def transmit(self, s: tf.Tensor, no: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        n = s.shape[-1]
        # Unused data resource elements carry zeros.
        data = tf.pad(s, [[0, 0], [0, self._capacity - n]])
        x_rg = self._mapper(data[:, None, None, :])
        y, h_freq = self._channel(x_rg, no)
        if self.csi == "perfect":
            h_hat = self._remove_nulled(h_freq)
            err_var = tf.zeros([], tf.float32)
        else:
            h_hat, err_var = self._estimator(y, no)
        x_hat, no_eff = self._equalize(y, h_hat, err_var, no)
        x_hat, no_eff = x_hat[:, 0, 0, :n], no_eff[:, 0, 0, :n]
        if self.equalizer == "lmmse":
            x_hat, no_eff = mmse_shrink(x_hat, no_eff)
        return x_hat, no_eff

    def get_config(self) -> dict[str, Any]:
        if not isinstance(self.channel_model, str) or self.resource_grid is not None:
            raise NotImplementedError(
                "An OFDMChannel built from a user-supplied Sionna channel model or "
                "resource grid cannot be serialized; build it again in code (it has "
                "no weights)."
            )
        config = super().get_config()
        config.update(
            channel_model=self.channel_model,
            delay_spread=self.delay_spread,
            carrier_frequency=self.carrier_frequency,
            speed=self.speed,
            subcarrier_spacing=self.subcarrier_spacing,
            num_ofdm_symbols=self.num_ofdm_symbols,
            fft_size=self.fft_size,
            pilot_ofdm_symbol_indices=list(self.pilot_ofdm_symbol_indices),
            csi=self.csi,
            interpolation=self.interpolation,
            equalizer=self.equalizer,
        )
        return config
