"""Channel layers: the only part of ``tosc_sionna`` that touches Sionna."""

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
    "set_seed",
    "snr_db_to_noise_variance",
]
