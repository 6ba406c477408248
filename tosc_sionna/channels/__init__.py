"""Channel layers: the only part of ``tosc_sionna`` that touches Sionna.

:data:`ops` holds the backend tensor helpers (complex packing, gathers, casts) the
layers are written with, the same functions on both Sionna lines: use them in a
:class:`ChannelLayer` of your own (docs/channels.md, "Your own channel").
"""

from ..backends import ops
from .awgn import AWGNChannel
from .base import ChannelLayer, set_seed, snr_db_to_noise_variance
from .digital import DIGITAL_CHANNELS, DigitalChannel
from .ofdm import CHANNEL_MODELS, OFDMChannel
from .rayleigh import RayleighBlockFadingChannel

__all__ = [
    "AWGNChannel",
    "CHANNEL_MODELS",
    "ChannelLayer",
    "DIGITAL_CHANNELS",
    "DigitalChannel",
    "OFDMChannel",
    "RayleighBlockFadingChannel",
    "ops",
    "set_seed",
    "snr_db_to_noise_variance",
]
