"""OFDM link over Sionna channel models, with channel estimation and equalization."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from sionna.phy.channel import (
    ApplyOFDMChannel,
    ChannelModel,
    GenerateOFDMChannel,
    RayleighBlockFading,
    cir_to_ofdm_channel,
    subcarrier_frequencies,
)
from sionna.phy.channel.tr38901 import CDL, TDL, Antenna
from sionna.phy.ofdm import LSChannelEstimator, ResourceGrid, ResourceGridMapper

from .backends import ops
from .base import EQUALIZERS, ChannelLayer, check_equalizer, equalize, untracked
from .ofdm_grid import (
    MAPPINGS,
    PilotLMMSEEstimator,
    grid_positions,
    sampled_covariances,
    symbol_positions,
    tdl_covariances,
)

#: Channel model names understood by :class:`OFDMChannel`.
CHANNEL_MODELS = ("rayleigh",) + tuple(f"tdl-{m}" for m in "abcde") + tuple(
    f"cdl-{m}" for m in "abcde"
)
CSI_MODES = ("perfect", "ls")
INTERPOLATIONS = ("lmmse", "nn", "lin", "lin_time_avg")
#: TR 38.901 tables the TDL/CDL models use on both Sionna lines: Sionna 1.2's
#: (2.1 and later default to V19.2; its TDL files hold the same profiles today, but
#: pinning keeps both lines on one table whatever a later release changes).
SPEC_VERSION = "16.1"
#: Angle of arrival of the TDL-D/E line-of-sight path: Sionna 1.2's default
#: (2.x defaults to arccos(0.7)).
LOS_ANGLE_OF_ARRIVAL = np.pi / 4
# Seed of the pilots' draw on Sionna 2 (Sionna 1.2's Kronecker pattern seeds itself).
_PILOT_SEED = 1
__all__ = ["CHANNEL_MODELS", "CSI_MODES", "EQUALIZERS", "INTERPOLATIONS", "OFDMChannel"]


def make_channel_model(
    name: str, delay_spread: float, carrier_frequency: float, speed: float
) -> ChannelModel:
    """A single-antenna Sionna channel model from its name (see ``CHANNEL_MODELS``).

    The same physics on both Sionna lines: TR 38.901 V16.1 tables, the
    line-of-sight angle of Sionna 1.2, and one fixed speed.
    """
    if name == "rayleigh":
        return RayleighBlockFading(1, 1, 1, 1)
    family, letter = name.split("-")
    pinned = {"spec_version": SPEC_VERSION} if ops.NAME == "torch" else {}
    if family == "tdl":
        return TDL(
            letter.upper(), delay_spread, carrier_frequency,
            los_angle_of_arrival=LOS_ANGLE_OF_ARRIVAL,
            min_speed=speed, max_speed=speed, **pinned,
        )
    antenna = Antenna(
        polarization="single", polarization_type="V",
        antenna_pattern="omni", carrier_frequency=carrier_frequency,
    )
    return CDL(
        letter.upper(), delay_spread, carrier_frequency, ut_array=antenna,
        bs_array=antenna, direction="uplink", min_speed=speed, max_speed=speed, **pinned,
    )


@keras.saving.register_keras_serializable(package="tosc_sionna")
class OFDMChannel(ChannelLayer):
    r"""Analog symbols over a 5G NR-like OFDM grid through a Sionna channel model.

    Each example gets its own resource grid (one slot: 14 OFDM symbols of
    ``12 * num_resource_blocks`` subcarriers at 30 kHz by default, a 15 MHz
    NR carrier) and an independent channel realization. Its n complex
    symbols are placed on n data resource elements (``mapping``): spread
    over the whole band and every data OFDM symbol by default, so they see
    the channel's frequency and time selectivity; the other data elements
    carry zeros, and Kronecker pilots (unit-modulus QPSK) fill the OFDM
    symbols ``pilot_ofdm_symbol_indices``. Sionna's ``GenerateOFDMChannel``
    and ``ApplyOFDMChannel`` (the two halves of its ``OFDMChannel``) apply
    the frequency response (not normalized per example, so fading is kept;
    the 3GPP power delay profiles have unit energy) and the noise; at speed 0
    the response is computed for one OFDM symbol and repeated over the slot,
    which it equals.

    The receiver estimates the channel at the n data elements (perfect CSI,
    or from the pilots: by default the LMMSE estimate ``E[h | pilots]`` from
    all pilots of the grid, with the model's time and frequency covariances,
    exact for TDL models; or Sionna's LS estimator with ``"nn"``/``"lin"``/
    ``"lin_time_avg"`` interpolation) and equalizes each symbol:
    ``"lmmse"``: ``x_hat = conj(g) y / (|g|^2 + no + e)``, effective noise
    ``(no + e) / (|g|^2 + no + e)``; ``"zf"``: ``y / g``, ``(no + e) / |g|^2``
    (``g`` the estimate, ``e`` its error variance). With perfect or LMMSE CSI
    the reported effective noise is the true error variance (exact for
    TDL-A/B/C and for any TDL at speed 0; TDL-D/E in motion and CDL are only
    approximately time x frequency separable); Sionna's LS
    interpolators report an error variance that ignores the correlation of
    the estimate with its error and the interpolation error, so it is not.

    Parameters
    ----------
    channel_model : str or ``sionna.phy.channel.ChannelModel``, (default "tdl-a")
        One of ``"rayleigh"``, ``"tdl-a"`` .. ``"tdl-e"``, ``"cdl-a"`` ..
        ``"cdl-e"`` (one omnidirectional antenna at each end, uplink), or a Sionna channel model
        object with one single-antenna transmitter and receiver.
    delay_spread : float, (default 300e-9)
        RMS delay spread [s] of the TDL/CDL models (3GPP TR 38.901's "long").
    carrier_frequency : float, (default 3.5e9)
        Carrier frequency [Hz].
    speed : float, (default 0.0)
        Terminal speed [m/s]; nonzero gives time variation across OFDM symbols
        (small within one slot: the time correlation over a slot is still
        0.98 at 30 km/h and 3.5 GHz).
    subcarrier_spacing : float, (default 30e3)
        Subcarrier spacing [Hz].
    num_ofdm_symbols : int, (default 14)
    num_resource_blocks : int or None, (default 38)
        Resource blocks of 12 subcarriers (38: a 15 MHz carrier at 30 kHz).
        None (with ``fft_size=None``): the fewest subcarriers that hold n
        symbols, the sizing before version 0.2.
    fft_size : int or None, (default None)
        Number of subcarriers; overrides ``num_resource_blocks``.
    pilot_ofdm_symbol_indices : tuple of int, (default (2, 11))
    mapping : "spread" (default) | "contiguous"
        Placement of an example's symbols on the data resource elements:
        spread over band and slot, or the first n in Sionna's order
        (subcarrier by subcarrier, then OFDM symbol by symbol).
    csi : "ls" (default) | "perfect"
    interpolation : "lmmse" (default) | "nn" | "lin" | "lin_time_avg"
        Channel estimation from the pilots (``csi="ls"`` only).
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
        delay_spread: float = 300e-9,
        carrier_frequency: float = 3.5e9,
        speed: float = 0.0,
        subcarrier_spacing: float = 30e3,
        num_ofdm_symbols: int = 14,
        fft_size: int | None = None,
        pilot_ofdm_symbol_indices: tuple[int, ...] = (2, 11),
        csi: str = "ls",
        interpolation: str = "lmmse",
        equalizer: str = "lmmse",
        resource_grid: ResourceGrid | None = None,
        return_noise: bool = False,
        num_resource_blocks: int | None = 38,
        mapping: str = "spread",
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
        equalizer = check_equalizer(equalizer)
        for name, value, allowed in (
            ("csi", csi, CSI_MODES),
            ("interpolation", interpolation, INTERPOLATIONS),
            ("mapping", mapping, MAPPINGS),
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
        if num_resource_blocks is not None and int(num_resource_blocks) < 1:
            raise ValueError(f"num_resource_blocks must be >= 1; got {num_resource_blocks}.")
        if fft_size is not None and int(fft_size) < 1:
            raise ValueError(f"fft_size must be >= 1; got {fft_size}.")
        untracked(self, channel_model=channel_model, resource_grid=resource_grid)
        self.delay_spread = float(delay_spread)
        self.carrier_frequency = float(carrier_frequency)
        self.speed = float(speed)
        self.subcarrier_spacing = float(subcarrier_spacing)
        self.num_ofdm_symbols = int(num_ofdm_symbols)
        self.num_resource_blocks = (
            None if num_resource_blocks is None else int(num_resource_blocks)
        )
        self.fft_size = None if fft_size is None else int(fft_size)
        self.pilot_ofdm_symbol_indices = pilots
        self.mapping = mapping
        self.csi = csi
        self.interpolation = interpolation
        self.equalizer = equalizer

    def _make_resource_grid(self, num_symbols: int) -> ResourceGrid:
        fft_size = self.fft_size
        if fft_size is None and self.num_resource_blocks is None:
            # the sizing before 0.2: the fewest subcarriers that hold n symbols
            data_symbols = self.num_ofdm_symbols - len(self.pilot_ofdm_symbol_indices)
            fft_size = -(-num_symbols // data_symbols)
        # Sionna 2 draws Kronecker pilots from its global generator: a fixed seed keeps a
        # build from moving it, and gives a reloaded layer the same pilots
        with ops.sionna_rng_seeded(_PILOT_SEED):
            return ResourceGrid(
                num_ofdm_symbols=self.num_ofdm_symbols,
                fft_size=fft_size or 12 * self.num_resource_blocks,
                subcarrier_spacing=self.subcarrier_spacing,
                num_tx=1,
                num_streams_per_tx=1,
                pilot_pattern="kronecker",
                pilot_ofdm_symbol_indices=list(self.pilot_ofdm_symbol_indices),
            )

    def build_channel(self, num_symbols: int) -> None:
        rg = self.resource_grid or self._make_resource_grid(num_symbols)
        data, pilots, pilot_values = grid_positions(rg)
        chosen = symbol_positions(data, num_symbols, self.mapping)
        untracked(self, grid=rg)
        self._capacity = len(data)
        #: ``(ofdm_symbol, subcarrier)`` of each of the example's symbols
        self.symbol_positions = data[chosen]
        # data vector of the mapper: symbol k at data element chosen[k], zeros elsewhere
        # (index num_symbols points at an appended zero column)
        scatter = np.full(len(data), num_symbols)
        scatter[chosen] = np.arange(num_symbols)
        self._scatter = ops.constant(scatter, "int32")
        fft = rg.fft_size
        self._used = ops.constant(self.symbol_positions @ [fft, 1], "int32")
        self._pilot_flat = ops.constant(pilots @ [fft, 1], "int32")
        model = self.channel_model
        if isinstance(model, str):
            model = make_channel_model(
                model, self.delay_spread, self.carrier_frequency, self.speed
            )
        untracked(self, _mapper=ResourceGridMapper(rg))
        # Sionna's OFDMChannel, taken apart so that a static channel (our
        # models at speed 0) is computed for one OFDM symbol and repeated: its
        # [batch, paths, symbols, subcarriers] intermediate dominates a step.
        # No per-example normalization: it would cancel the fading of narrow
        # grids. The 3GPP power delay profiles already have unit total energy.
        self._static = isinstance(self.channel_model, str) and self.speed == 0.0
        untracked(
            self,
            _model=model,
            _generate_full=GenerateOFDMChannel(model, rg, normalize_channel=False),
            _apply=ApplyOFDMChannel(),
        )
        self._frequencies = subcarrier_frequencies(
            rg.fft_size, rg.subcarrier_spacing, precision=self._generate_full.precision
        )
        if self.csi == "ls" and self.interpolation == "lmmse":
            r_t, r_f = self._covariances(model, rg)
            self._lmmse = PilotLMMSEEstimator(
                r_t, r_f, pilots, pilot_values, self.symbol_positions,
                dtype=self._apply.cdtype,
            )
        elif self.csi == "ls":
            untracked(
                self, _estimator=LSChannelEstimator(rg, interpolation_type=self.interpolation)
            )
            # Sionna's estimate covers the effective subcarriers (no guards, no DC)
            effective = ops.to_numpy(rg.effective_subcarrier_ind)
            column = np.full(fft, -1)
            column[effective] = np.arange(len(effective))
            self._used_effective = ops.constant(
                self.symbol_positions[:, 0] * len(effective)
                + column[self.symbol_positions[:, 1]],
                "int32",
            )

    def _covariances(self, model: ChannelModel, rg: ResourceGrid) -> tuple[Any, Any]:
        name = self.channel_model
        if name == "rayleigh":
            return np.ones([rg.num_ofdm_symbols] * 2), np.ones([rg.fft_size] * 2)
        if isinstance(name, str) and name.startswith("tdl-"):
            return tdl_covariances(
                name[-1].upper(), model, rg, self.carrier_frequency, self.speed,
                LOS_ANGLE_OF_ARRIVAL,
            )
        return sampled_covariances(model, rg)

    def _generate(self, batch_size: Any) -> Any:
        """Frequency responses ``[batch, 1, 1, 1, 1, T, fft]`` (Sionna's layout)."""
        if not self._static:
            return self._generate_full(batch_size)
        a, tau = self._model(batch_size, 1, 1.0 / self.grid.ofdm_symbol_duration)
        h = cir_to_ofdm_channel(self._frequencies, a, tau, normalize=False)
        return ops.tile(h, [1, 1, 1, 1, 1, self.grid.num_ofdm_symbols, 1])

    def draw_channel(self, batch_size: int) -> Any:
        """Fresh channel realizations at an example's symbols, ``[batch_size, n]`` complex.

        The frequency response the n symbols of each example would see (for
        inspecting the physics; :meth:`call` draws its own).
        """
        if self.num_symbols is None:
            raise ValueError("Build the layer first (call it once, or build((None, 2n))).")
        h = ops.reshape(self._generate(batch_size), [batch_size, -1])
        return ops.gather(h, self._used)

    def bandwidth_ratio(self, source_dimension: int) -> dict[str, float]:
        """Complex channel uses per source dimension (e.g. 784 pixels).

        ``"data"``: the n symbols of an example; ``"with_pilots"``: plus the
        grid's pilot resource elements; ``"grid"``: the whole grid an example
        occupies (data, pilots and unused resource elements).
        """
        if self.num_symbols is None:
            raise ValueError("Build the layer first (call it once, or build((None, 2n))).")
        rg = self.grid
        pilots = int(rg.num_pilot_symbols)
        total = int(rg.num_ofdm_symbols * rg.fft_size)
        return {
            "data": self.num_symbols / source_dimension,
            "with_pilots": (self.num_symbols + pilots) / source_dimension,
            "grid": total / source_dimension,
        }

    def transmit(self, s: Any, no: Any) -> tuple[Any, Any]:
        batch = ops.batch_size(s)
        data = ops.gather(ops.pad_zero_column(s), self._scatter)
        x_rg = self._mapper(data[:, None, None, :])
        h_freq = self._generate(batch)
        y = self._apply(x_rg, h_freq, no)
        y = ops.reshape(y, [batch, -1])  # [batch, T * fft]
        y_used = ops.gather(y, self._used)
        no_col = no[:, None]
        if self.csi == "perfect":
            h_hat = ops.gather(ops.reshape(h_freq, [batch, -1]), self._used)
            err_var = ops.zeros_like(no_col)
        elif self.interpolation == "lmmse":
            h_hat, err_var = self._lmmse(ops.gather(y, self._pilot_flat), no)
        else:
            h_ls, err_ls = self._estimator(y_rg_shape(y, self.grid), no)
            h_hat = ops.gather(ops.reshape(h_ls, [batch, -1]), self._used_effective)
            err_var = ops.gather(ops.reshape(err_ls, [batch, -1]), self._used_effective)
        return equalize(y_used, h_hat, err_var, no_col, self.equalizer)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OFDMChannel:
        config = dict(config)
        if "mapping" not in config:
            # saved before 0.2: keep that grid and mapping, not today's defaults
            config["mapping"] = "contiguous"
            config.setdefault("num_resource_blocks", None)
        return cls(**config)

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
            num_resource_blocks=self.num_resource_blocks,
            fft_size=self.fft_size,
            pilot_ofdm_symbol_indices=list(self.pilot_ofdm_symbol_indices),
            mapping=self.mapping,
            csi=self.csi,
            interpolation=self.interpolation,
            equalizer=self.equalizer,
        )
        return config


def y_rg_shape(y: Any, rg: ResourceGrid) -> Any:
    """Flat received grids ``[batch, T * fft]`` -> Sionna's ``[batch, 1, 1, T, fft]``."""
    return ops.reshape(y, [-1, 1, 1, rg.num_ofdm_symbols, rg.fft_size])
