"""Additive white Gaussian noise channel (Sionna's ``AWGN``)."""

from __future__ import annotations

from typing import Any

import keras
from sionna.phy.channel import AWGN

from ..backends import ops
from .base import ChannelLayer, untracked


@keras.saving.register_keras_serializable(package="tosc_sionna")
class AWGNChannel(ChannelLayer):
    r"""Complex AWGN channel: ``y = x + w``, ``w ~ CN(0, no)``, ``no = 10^(-snr_db/10)``.

    Parameters
    ----------
    return_noise : bool, (default False)
        Also return the noise variance of every symbol.

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
        Received symbols.
    no : [batch, n], float32
        Only with ``return_noise=True``: the noise variance of each symbol.
    """

    def build_channel(self, num_symbols: int) -> None:
        untracked(self, _awgn=AWGN())  # precision: sionna.phy.config

    def transmit(self, s: Any, no: Any) -> tuple[Any, Any]:
        y = self._awgn(s, no[:, None])
        return y, ops.broadcast_to(no[:, None], ops.shape(s))
