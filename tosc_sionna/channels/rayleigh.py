"""Flat Rayleigh block fading: one complex gain per example."""

from __future__ import annotations

from typing import Any

import keras
from sionna.phy.channel import AWGN, RayleighBlockFading

from ..backends import ops
from ..checks import check_int
from .base import EQUALIZERS, ChannelLayer, check_equalizer, equalize, untracked

CSI_MODES = ("perfect", "ls")
__all__ = ["CSI_MODES", "EQUALIZERS", "RayleighBlockFadingChannel"]


@keras.saving.register_keras_serializable(package="tosc_sionna")
class RayleighBlockFadingChannel(ChannelLayer):
    r"""Flat Rayleigh block fading with equalization: ``y = h x + w``.

    Each example gets one independent gain ``h ~ CN(0, 1)`` (drawn with
    Sionna's :class:`~sionna.phy.channel.RayleighBlockFading`), constant over
    its n symbols; ``w ~ CN(0, no)``. The receiver equalizes with either
    perfect CSI or an estimate from ``num_pilots`` pilot symbols (value 1)
    sent through the same gain (``csi="ls"``). The estimate is the LMMSE one,
    ``g = E[h | pilots] = mean(y_p) / (1 + no / P)``, whose error
    ``h - g`` has variance ``e = no / (P + no)`` and is uncorrelated with
    ``g``: so the equalizer below and its reported noise are exact at every
    SNR. (The raw least-squares average ``mean(y_p)`` is not: its error is
    correlated with it, and at -10 dB with 4 pilots equalizing with it gives
    a larger error than sending nothing.)

    * ``"lmmse"``: ``x_hat = conj(g) y / (|g|^2 + no + e)``, error variance
      ``(no + e) / (|g|^2 + no + e)`` for unit-power symbols (``g`` the CSI,
      ``e`` its error variance). Bounded in deep fades.
    * ``"zf"``: ``x_hat = y / g``, error variance ``(no + e) / |g|^2``.
      Unbiased but unbounded in deep fades (``|g|^2`` is floored at 1e-12 so
      values stay finite); calibrated given ``g``, but its mean over fades
      is infinite (``E[1/|g|^2]`` diverges for Rayleigh fading).

    Pilots are extra channel uses: with ``csi="ls"`` an example occupies
    ``n + num_pilots`` channel uses (:attr:`channel_uses`).

    Parameters
    ----------
    equalizer : "lmmse" (default) | "zf"
        ``"mmse"``, the name used before, is accepted for ``"lmmse"``.
    csi : "perfect" (default) | "ls"
    num_pilots : int, (default 4)
        Pilot symbols per example for ``csi="ls"``.
    return_noise : bool, (default False)
        Also return the effective noise variance of every symbol.

    Input
    -----
    x : [batch, 2n], float, or [batch, n], complex
        Channel input, (Re, Im) interleaved, or complex symbols (returned complex).
    snr_db : scalar or [batch], float
        Es/N0 per complex symbol in dB, within [-30, 60]. Keyword only.
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
        equalizer: str = "lmmse",
        csi: str = "perfect",
        num_pilots: int = 4,
        return_noise: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(return_noise=return_noise, **kwargs)
        equalizer = check_equalizer(equalizer)
        if csi not in CSI_MODES:
            raise ValueError(f"csi must be one of {CSI_MODES}; got {csi!r}.")
        self.equalizer = equalizer
        self.csi = csi
        self.num_pilots = check_int("num_pilots", num_pilots, 1)

    def build_channel(self, num_symbols: int) -> None:
        # precision=None: Sionna's config.precision decides
        untracked(self, _fading=RayleighBlockFading(1, 1, 1, 1), _awgn=AWGN())

    @property
    def channel_uses(self) -> int | None:
        """Complex channel uses per example: ``n``, plus the pilots with ``csi="ls"``."""
        if self.num_symbols is None:
            return None
        return self.num_symbols + (self.num_pilots if self.csi == "ls" else 0)

    def draw_gains(self, batch_size: Any) -> Any:
        """One CN(0, 1) gain per example, ``[batch_size, 1]`` complex."""
        if not self.built:
            self.build_channel(0)
        # a: [batch, 1, 1, 1, 1, 1 path, 1 time step]
        a, _ = self._fading(batch_size, 1)
        return ops.reshape(a, [batch_size, 1])

    def estimate_gains(self, h: Any, no: Any) -> tuple[Any, Any]:
        """The receiver's CSI for gains ``h`` [batch, 1] at noise ``no`` [batch, 1].

        Returns ``(g, e)``: the estimate and its error variance (``h`` and 0
        with perfect CSI; the LMMSE estimate from the pilots with ``"ls"``).
        """
        if self.csi == "perfect":
            return h, ops.zeros_like(no)
        pilots = ops.ones([ops.batch_size(h), self.num_pilots], h.dtype)
        y_pilots = self._awgn(h * pilots, no)
        # mean(y_p) = h + w, w ~ CN(0, no / P): E[h | y_p] = mean(y_p) / (1 + no / P)
        ls_noise = no / self.num_pilots
        shrink = 1.0 / (1.0 + ls_noise)
        h_hat = ops.mean(y_pilots, axis=1, keepdims=True) * ops.as_complex(shrink, h)
        return h_hat, ls_noise * shrink

    def transmit(self, s: Any, no: Any) -> tuple[Any, Any]:
        h = self.draw_gains(ops.batch_size(s))
        no_col = no[:, None]
        y = self._awgn(h * s, no_col)
        h_hat, err_var = self.estimate_gains(h, no_col)
        x_hat, no_eff = equalize(y, h_hat, err_var, no_col, self.equalizer)
        return x_hat, ops.broadcast_to(no_eff, ops.shape(s))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(equalizer=self.equalizer, csi=self.csi, num_pilots=self.num_pilots)
        return config
