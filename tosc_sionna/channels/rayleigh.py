"""Flat Rayleigh block fading: one complex gain per example."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from sionna.phy.channel import AWGN, RayleighBlockFading

from .base import _GAIN_FLOOR, ChannelLayer

EQUALIZERS = ("mmse", "zf")
CSI_MODES = ("perfect", "ls")


@keras.saving.register_keras_serializable(package="tosc_sionna")
class RayleighBlockFadingChannel(ChannelLayer):
    r"""Flat Rayleigh block fading with equalization: ``y = h x + w``.

    Each example gets one independent gain ``h ~ CN(0, 1)`` (drawn with
    Sionna's :class:`~sionna.phy.channel.RayleighBlockFading`), constant over
    its n symbols; ``w ~ CN(0, no)``. The receiver equalizes with either
    perfect CSI or a least-squares estimate from ``num_pilots`` pilot symbols
    (value 1) sent through the same gain, which has error variance
    ``no / num_pilots`` and is treated as extra noise.

    * ``"mmse"``: ``x_hat = conj(g) y / (|g|^2 + no + e)``, error variance
      ``(no + e) / (|g|^2 + no + e)`` for unit-power symbols (``g`` the CSI,
      ``e`` its error variance). Bounded in deep fades.
    * ``"zf"``: ``x_hat = y / g``, error variance ``(no + e) / |g|^2``.
      Unbiased but unbounded in deep fades (``|g|^2`` is floored at 1e-12 so
      values stay finite).

    Pilots are extra channel uses: with ``csi="ls"`` an example occupies
    ``n + num_pilots`` channel uses.

    Parameters
    ----------
    equalizer : "mmse" (default) | "zf"
    csi : "perfect" (default) | "ls"
    num_pilots : int, (default 4)
        Pilot symbols per example for ``csi="ls"``.
    return_noise : bool, (default False)
        Also return the effective noise variance of every symbol.

    Input
    -----
    x : [batch, 2n], float
        Channel input, (Re, Im) interleaved.
    snr_db : scalar or [batch], float
        Es/N0 per complex symbol in dB, within [-30, 60].

    Output
    ------
    y : [batch, 2n], float32
        Equalized symbols.
    no_eff : [batch, n], float32
        Only with ``return_noise=True``: error variance of each equalized symbol.
    """

    def __init__(
        self,
        equalizer: str = "mmse",
        csi: str = "perfect",
        num_pilots: int = 4,
        return_noise: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(return_noise=return_noise, **kwargs)
        if equalizer not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}; got {equalizer!r}.")
        if csi not in CSI_MODES:
            raise ValueError(f"csi must be one of {CSI_MODES}; got {csi!r}.")
        if int(num_pilots) < 1:
            raise ValueError(f"num_pilots must be >= 1; got {num_pilots}.")
        self.equalizer = equalizer
        self.csi = csi
        self.num_pilots = int(num_pilots)

    def build_channel(self, num_symbols: int) -> None:
        self._fading = RayleighBlockFading(1, 1, 1, 1, precision="single")
        self._awgn = AWGN(precision="single")

    def draw_gains(self, batch_size: int | tf.Tensor) -> tf.Tensor:
        """One CN(0, 1) gain per example, ``[batch_size, 1]`` complex64."""
        if not self.built:
            self.build_channel(0)
        # a: [batch, 1, 1, 1, 1, 1 path, 1 time step]
        a, _ = self._fading(batch_size, 1)
        return tf.reshape(a, [batch_size, 1])

    def transmit(self, s: tf.Tensor, no: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch_size = tf.shape(s)[0]
        h = self.draw_gains(batch_size)
        no_col = no[:, None]
        y = self._awgn(h * s, no_col)
        if self.csi == "perfect":
            h_hat = h
            err_var = tf.zeros_like(no_col)
        else:
            pilots = tf.ones([batch_size, self.num_pilots], dtype=s.dtype)
            y_pilots = self._awgn(h * pilots, no_col)
            h_hat = tf.reduce_mean(y_pilots, axis=1, keepdims=True)
            err_var = no_col / self.num_pilots
        gain = tf.math.real(h_hat * tf.math.conj(h_hat))
        noise = no_col + err_var
        # MMSE and ZF differ only in the denominator.
        if self.equalizer == "mmse":
            denom = gain + noise
        else:
            denom = tf.maximum(gain, _GAIN_FLOOR)
        x_hat = tf.math.conj(h_hat) * y / tf.complex(denom, 0.0)
        no_eff = noise / denom
        return x_hat, tf.broadcast_to(no_eff, tf.shape(s, out_type=tf.int32))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(equalizer=self.equalizer, csi=self.csi, num_pilots=self.num_pilots)
        return config
