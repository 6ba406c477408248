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
from sionna.phy.ofdm import LSChannelEstimator, ResourceGrid

from ..backends import ops
from ..checks import check_int, check_real
from .base import EQUALIZERS, ChannelLayer, check_equalizer, equalize, untracked
from .ofdm_grid import (
    MAPPINGS,
    SLOTS,
    PilotLMMSEEstimator,
    effective_diversity,
    grid_positions,
    sampled_covariances,
    slot_positions,
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
__all__ = ["CHANNEL_MODELS", "CSI_MODES", "EQUALIZERS", "INTERPOLATIONS", "MAPPINGS", "OFDMChannel",
           "SLOTS"]


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

    The examples of a batch share NR-like slots (one slot: 14 OFDM symbols
    of ``12 * num_resource_blocks`` subcarriers at 30 kHz by default, a
    15 MHz NR carrier; Kronecker pilots, unit-modulus QPSK, fill the OFDM
    symbols ``pilot_ofdm_symbol_indices``, 2 of 14 as in NR). A slot's
    ``D`` data resource elements carry ``E = floor(D / n)`` examples of n
    complex symbols each (:attr:`examples_per_slot`; 342 of n = 16 or 85 of
    n = 64 on the default grid), placed by ``mapping``: ``"contiguous"``
    (default), example ``j`` on data elements ``j n .. j n + n - 1`` in
    Sionna's order (adjacent subcarriers of one OFDM symbol: a narrowband
    allocation), or ``"spread"``, a comb (every ``E``-th data element) over
    the whole slot. A batch of ``B`` examples uses ``ceil(B / E)`` slots,
    each with its own channel realization, shared by the examples it
    carries; empty data elements carry zeros. With ``slot="per_example"``
    every example gets a whole slot and its own channel realization (the
    layout before version 0.5; ``"spread"`` then spreads its n symbols over
    the band and every data OFDM symbol, see
    :func:`~tosc_sionna.channels.ofdm_grid.symbol_positions`):
    far more pilots per example than any system spends, kept for
    comparison. :meth:`diversity` says how many independent fades an
    example sees under each layout. Sionna's ``GenerateOFDMChannel``
    and ``ApplyOFDMChannel`` (the two halves of its ``OFDMChannel``) apply
    the frequency response (not normalized per example, so fading is kept;
    the 3GPP power delay profiles have unit energy) and the noise; at speed 0
    the response is computed for one OFDM symbol and repeated over the slot,
    which it equals. ``snr_db`` may differ per example: each data element
    gets its example's noise variance, and a slot's pilots the mean noise
    variance of the examples it carries.

    The receiver estimates the channel at the n data elements (perfect CSI,
    or from the pilots: by default the LMMSE estimate ``E[h | pilots]`` from
    all pilots of the slot, with the model's time and frequency covariances,
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
    mapping : "contiguous" (default) | "spread"
        Placement of an example's symbols on the slot's data resource
        elements (see above).
    csi : "ls" (default) | "perfect"
    interpolation : "lmmse" (default) | "nn" | "lin" | "lin_time_avg"
        Channel estimation from the pilots (``csi="ls"`` only).
    equalizer : "lmmse" (default) | "zf"
    resource_grid : ``sionna.phy.ofdm.ResourceGrid`` or None, (default None)
        A grid of your own (one transmitter, one stream); overrides the grid
        parameters above.
    return_noise : bool, (default False)
        Also return the effective noise variance of every symbol.
    slot : "shared" (default) | "per_example"
        Examples of a batch share slots, or each example has its own.

    A layer built from user-supplied Sionna objects cannot be saved to a
    ``.keras`` file; build it again in code (it has no weights).

    Input
    -----
    x : [batch, 2n], float, or [batch, n], complex
        Channel input, (Re, Im) interleaved, or complex symbols (returned complex).
    snr_db : scalar or [batch], float
        Es/N0 per complex symbol (per resource element) in dB, within [-30, 60]. Keyword only.
    no : scalar or [batch], float
        Instead of ``snr_db`` (keyword only): the noise variance per complex
        symbol, ``no = 10 ** (-snr_db / 10)``, Sionna's convention.

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
        mapping: str = "contiguous",
        slot: str = "shared",
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
            ("slot", slot, SLOTS),
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
        num_ofdm_symbols = check_int("num_ofdm_symbols", num_ofdm_symbols, 2)
        pilots = tuple(check_int("pilot_ofdm_symbol_indices", i)
                       for i in pilot_ofdm_symbol_indices)
        if any(i < 0 or i >= num_ofdm_symbols for i in pilots) or len(set(pilots)) != len(
            pilots
        ):
            raise ValueError(
                f"pilot_ofdm_symbol_indices {pilots} must be distinct indices in "
                f"[0, {num_ofdm_symbols})."
            )
        if len(pilots) >= num_ofdm_symbols:
            raise ValueError("At least one OFDM symbol must carry data.")
        untracked(self, channel_model=channel_model, resource_grid=resource_grid)
        # physical ranges: a negative speed or a zero carrier would run and give numbers
        self.delay_spread = check_real("delay_spread", delay_spread, 0.0, 1e-3, low_open=True,
                                       unit="s")
        self.carrier_frequency = check_real("carrier_frequency", carrier_frequency, 0.0,
                                            low_open=True, unit="Hz")
        self.speed = check_real("speed", speed, 0.0, 3e8, unit="m/s")
        self.subcarrier_spacing = check_real("subcarrier_spacing", subcarrier_spacing, 0.0,
                                             low_open=True, unit="Hz")
        self.num_ofdm_symbols = num_ofdm_symbols
        self.num_resource_blocks = (
            None if num_resource_blocks is None
            else check_int("num_resource_blocks", num_resource_blocks, 1)
        )
        self.fft_size = None if fft_size is None else check_int("fft_size", fft_size, 1)
        self.pilot_ofdm_symbol_indices = pilots
        self.mapping = mapping
        self.slot = slot
        self.examples_per_slot: int | None = None
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
        chosen = slot_positions(data, num_symbols, self.mapping, self.slot)  # [E, n]
        untracked(self, grid=rg)
        per_slot = self.examples_per_slot = int(chosen.shape[0])
        #: ``(ofdm_symbol, subcarrier)`` of every symbol of a slot's examples, ``[E, n, 2]``
        self.slot_positions = data[chosen]
        #: ``(ofdm_symbol, subcarrier)`` of the symbols of a slot's first example, ``[n, 2]``
        self.symbol_positions = self.slot_positions[0]
        flat = chosen.reshape(-1)  # example-major: example j's symbols at [j n, (j + 1) n)
        fft = rg.fft_size
        # A slot's grid, [T * fft], is one gather from its symbols and an appended zero
        # (the slot's symbol i at data element flat[i], index E n elsewhere) plus the
        # constant pilots: the grid Sionna's ResourceGridMapper makes, without
        # scattering a pilot template afresh at every call.
        source = np.full(rg.num_ofdm_symbols * fft, flat.size)
        source[data[flat] @ [fft, 1]] = np.arange(flat.size)
        self._grid_source = ops.constant(source, "int32")
        used = self.slot_positions.reshape(-1, 2)
        used_flat, pilot_flat = used @ [fft, 1], pilots @ [fft, 1]
        self._used = ops.constant(used_flat, "int32")
        self._pilot_flat = ops.constant(pilot_flat, "int32")
        # whose noise each resource element gets: its example's, else (pilots, empty
        # elements) the slot's mean, held in column E
        owner = np.full(rg.num_ofdm_symbols * fft, per_slot)
        owner[used_flat] = np.repeat(np.arange(per_slot), num_symbols)
        self._owner = ops.constant(owner, "int32")
        self._mean_column = ops.constant(np.arange(per_slot + 1) == per_slot, "float32")
        model = self.channel_model
        if isinstance(model, str):
            model = make_channel_model(
                model, self.delay_spread, self.carrier_frequency, self.speed
            )
        # Sionna's OFDMChannel, taken apart so that a static channel (our
        # models at speed 0) is computed for one OFDM symbol and repeated: its
        # [batch, paths, symbols, subcarriers] intermediate dominates a step.
        # No per-example normalization: it would cancel the fading of narrow
        # grids. The 3GPP power delay profiles already have unit total energy.
        self._static = isinstance(self.channel_model, str) and self.speed == 0.0
        untracked(self, _cov=None)  # this model's covariances on this grid: _covariances
        untracked(
            self,
            _model=model,
            _generate_full=GenerateOFDMChannel(model, rg, normalize_channel=False),
            _apply=ApplyOFDMChannel(),
        )
        pilot_grid = np.zeros(rg.num_ofdm_symbols * fft, np.complex128)
        pilot_grid[pilot_flat] = pilot_values
        self._pilot_grid = ops.constant(pilot_grid, self._apply.cdtype)
        self._frequencies = subcarrier_frequencies(
            rg.fft_size, rg.subcarrier_spacing, precision=self._generate_full.precision
        )
        # A TDL model's path delays are fixed, so its response on the grid is the path
        # gains times one matrix exp(-j 2 pi f tau), [paths, fft], computed here once:
        # Sionna's cir_to_ofdm_channel recomputes the exponentials at every draw, which
        # cost more than the rest of a static draw together.
        self._delay_phases = None
        if self._static and self.channel_model.startswith("tdl-"):
            tau = ops.to_numpy(model.delays).astype(np.float64).reshape(-1)
            f = ops.to_numpy(self._frequencies).astype(np.float64)
            self._delay_phases = ops.constant(
                np.exp(-2j * np.pi * tau[:, None] * f[None, :]), self._apply.cdtype)
        if self.csi == "ls" and self.interpolation == "lmmse":
            r_t, r_f = self._covariances()
            self._lmmse = PilotLMMSEEstimator(
                r_t, r_f, pilots, pilot_values, used, dtype=self._apply.cdtype,
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
                used[:, 0] * len(effective) + column[used[:, 1]], "int32"
            )

    def _covariances(self) -> tuple[Any, Any]:
        """Time and frequency covariances of the built model on the built grid, computed
        once (a CDL or user model's are sampled: seconds) for the estimator and diversity."""
        if self._cov is None:
            name, model, rg = self.channel_model, self._model, self.grid
            if name == "rayleigh":
                cov = np.ones([rg.num_ofdm_symbols] * 2), np.ones([rg.fft_size] * 2)
            elif isinstance(name, str) and name.startswith("tdl-"):
                cov = tdl_covariances(
                    name[-1].upper(), model, rg, self.carrier_frequency, self.speed,
                    LOS_ANGLE_OF_ARRIVAL,
                )
            else:
                cov = sampled_covariances(model, rg)
            untracked(self, _cov=cov)  # NumPy arrays: nothing for Keras to track
        return self._cov

    def _generate(self, batch_size: Any) -> Any:
        """Frequency responses ``[batch, 1, 1, 1, 1, T, fft]`` (Sionna's layout)."""
        if not self._static:
            return self._generate_full(batch_size)
        a, tau = self._model(batch_size, 1, 1.0 / self.grid.ofdm_symbol_duration)
        if self._delay_phases is None:
            h = cir_to_ofdm_channel(self._frequencies, a, tau, normalize=False)
        else:  # single antennas, one time step: a is [batch, 1, 1, 1, 1, paths, 1]
            paths, fft = (int(d) for d in self._delay_phases.shape)
            h = ops.matmul(ops.reshape(a, [-1, paths]), self._delay_phases)
            h = ops.reshape(h, [-1, 1, 1, 1, 1, 1, fft])
        return ops.tile(h, [1, 1, 1, 1, 1, self.grid.num_ofdm_symbols, 1])

    def draw_channel(self, batch_size: int) -> Any:
        """Fresh channel realizations at an example's symbols, ``[batch_size, n]`` complex.

        The frequency response the n symbols of each example would see (for
        inspecting the physics; :meth:`call` draws its own).
        """
        if self.num_symbols is None:
            raise ValueError("Build the layer first (call it once, or build((None, 2n))).")
        slots = -(-int(batch_size) // self.examples_per_slot)
        h = ops.reshape(self._generate(slots), [slots, -1])
        return self._per_example(ops.gather(h, self._used), batch_size)

    def _per_example(self, per_slot: Any, batch_size: Any) -> Any:
        """``[slots, E n]`` values at the slot's used elements -> ``[batch, n]`` per example."""
        return ops.reshape(per_slot, [-1, self.num_symbols])[:batch_size]

    def diversity(self) -> dict[str, float]:
        """Independent fades an example sees, from the model's channel covariance.

        ``(tr R)^2 / tr(R^2)`` of the covariance ``R`` of the channel at an
        example's resource elements (1: one flat fade; n: n independent
        fades), for each example of a slot: ``"mean"``, ``"min"`` and
        ``"max"`` over them. TDL models use their closed-form covariances
        (time x frequency), other models covariances sampled from 2,048 draws.
        """
        if self.num_symbols is None:
            raise ValueError("Build the layer first (call it once, or build((None, 2n))).")
        r_t, r_f = self._covariances()
        looks = [effective_diversity(r_t, r_f, p) for p in self.slot_positions]
        return {"mean": float(np.mean(looks)), "min": float(np.min(looks)),
                "max": float(np.max(looks))}

    def bandwidth_ratio(self, source_dimension: int,
                        batch_size: int | None = None) -> dict[str, float]:
        """Complex channel uses per source dimension (e.g. 784 pixels), per example.

        ``"data"``: the n symbols of an example; ``"with_pilots"``: plus its
        share of the pilot resource elements; ``"grid"``: its share of the
        slots (data, pilots and empty resource elements). Shares are of full
        slots (``E`` examples each) by default, or of the ``ceil(B / E)``
        slots that a batch of ``batch_size`` examples occupies, its last slot
        partly empty.
        """
        if self.num_symbols is None:
            raise ValueError("Build the layer first (call it once, or build((None, 2n))).")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
        rg = self.grid
        per_slot = self.examples_per_slot
        # slots per example
        share = 1.0 / per_slot if batch_size is None else -(-int(batch_size) // per_slot) / int(
            batch_size)
        pilots = int(rg.num_pilot_symbols) * share
        total = int(rg.num_ofdm_symbols * rg.fft_size) * share
        return {
            "data": self.num_symbols / source_dimension,
            "with_pilots": (self.num_symbols + pilots) / source_dimension,
            "grid": total / source_dimension,
        }

    def _map_to_grid(self, s: Any) -> Any:
        """Slots' symbols ``[slots, E n]`` -> their resource grids ``[slots, 1, 1, T, fft]``
        with the pilots (Sionna's ``ResourceGridMapper`` layout)."""
        x_rg = ops.gather(ops.pad_zero_column(s), self._grid_source) + self._pilot_grid
        return ops.reshape(x_rg, [-1, 1, 1, self.grid.num_ofdm_symbols, self.grid.fft_size])

    def transmit(self, s: Any, no: Any) -> tuple[Any, Any]:
        batch = ops.batch_size(s)
        per_slot = self.examples_per_slot
        n = self.num_symbols
        if per_slot == 1:
            slots, no_slot, no_grid = batch, no, no
        else:
            slots = (batch + per_slot - 1) // per_slot
            s = ops.reshape(ops.pad_rows(s, slots * per_slot), [slots, per_slot * n])
            valid = ops.reshape(ops.pad_rows(ops.ones([batch], no.dtype), slots * per_slot),
                                [slots, per_slot])
            no_examples = ops.reshape(ops.pad_rows(no, slots * per_slot), [slots, per_slot])
            no_slot = ops.mean(no_examples, 1) / ops.mean(valid, 1)  # over its examples
            # the slot's mean in column E and in the padding rows' places
            no_examples = no_examples + (1.0 - valid) * no_slot[:, None]
            mean_column = ops.cast(self._mean_column, no.dtype)
            no_columns = ops.pad_zero_column(no_examples) + no_slot[:, None] * mean_column
            no_grid = ops.reshape(ops.gather(no_columns, self._owner),
                                  [slots, 1, 1, self.grid.num_ofdm_symbols, self.grid.fft_size])
        x_rg = self._map_to_grid(s)
        h_freq = self._generate(slots)
        y = self._apply(x_rg, h_freq, no_grid)
        y = ops.reshape(y, [slots, -1])  # [slots, T * fft]
        y_used = self._per_example(ops.gather(y, self._used), batch)
        if self.csi == "perfect":
            h_hat = ops.gather(ops.reshape(h_freq, [slots, -1]), self._used)
            err_var = ops.zeros_like(ops.real(h_hat))
        elif self.interpolation == "lmmse":
            h_hat, err_var = self._lmmse(ops.gather(y, self._pilot_flat), no_slot)
        else:
            h_ls, err_ls = self._estimator(y_rg_shape(y, self.grid), no_slot)
            h_hat = ops.gather(ops.reshape(h_ls, [slots, -1]), self._used_effective)
            err_var = ops.gather(ops.reshape(err_ls, [slots, -1]), self._used_effective)
        h_hat = self._per_example(h_hat, batch)
        err_var = self._per_example(err_var, batch)
        return equalize(y_used, h_hat, err_var, no[:, None], self.equalizer)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OFDMChannel:
        config = dict(config)
        if "mapping" not in config:
            # saved before 0.2: keep that grid and mapping, not today's defaults
            config["mapping"] = "contiguous"
            config.setdefault("num_resource_blocks", None)
        # saved before 0.5: every example had its own slot
        config.setdefault("slot", "per_example")
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
            slot=self.slot,
            csi=self.csi,
            interpolation=self.interpolation,
            equalizer=self.equalizer,
        )
        return config


def y_rg_shape(y: Any, rg: ResourceGrid) -> Any:
    """Flat received grids ``[batch, T * fft]`` -> Sionna's ``[batch, 1, 1, T, fft]``."""
    return ops.reshape(y, [-1, 1, 1, rg.num_ofdm_symbols, rg.fft_size])
