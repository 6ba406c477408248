"""Additive white Gaussian noise channel (Sionna's ``AWGN``)."""

from __future__ import annotations

import keras
import tensorflow as tf
from sionna.phy.channel import AWGN

from .base import ChannelLayer


@keras.saving.register_keras_serializable(package="tosc_sionna")
class AWGNChannel(ChannelLayer):
    r"""Complex AWGN channel: ``y = x + w``, ``w ~ CN(0, no)``, ``no = 10^(-snr_db/10)``.

    Parameters
    ----------
    return_noise : bool, (default False)
        Also return the noise variance of every symbol.

    Input
    -----
    x : [batch, 2n], float
        Channel input, (Re, Im) interleaved.
    snr_db : scalar or [batch], float
        Es/N0 per complex symbol in dB, within [-30, 60].

    Output
    ------
    y : [batch, 2n], float32
        Received symbols.
    no : [batch, n], float32
        Only with ``return_noise=True``: the noise variance of each symbol.
    """

    def build_channel(self, num_symbols: int) -> None:
        self._awgn = AWGN()  # precision: sionna.phy.config

    def transmit(self, s: tf.Tensor, no: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        y = self._awgn(s, no[:, None])
        return y, tf.broadcast_to(no[:, None], tf.shape(s, out_type=tf.int32))
