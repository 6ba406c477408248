"""Channel layers: the only part of ``tosc_sionna`` that touches Sionna."""

from .awgn import AWGNChannel
from .base import (
    SNR_DB_MAX,
    SNR_DB_MIN,
    ChannelLayer,
    check_snr_db,
    set_seed,
    snr_db_to_noise_variance,
)
from .ofdm import CHANNEL_MODELS, OFDMChannel
from .rayleigh import RayleighBlockFadingChannel

__all__ = [
    "AWGNChannel",
    "CHANNEL_MODELS",
    "ChannelLayer",
    "OFDMChannel",
    "RayleighBlockFadingChannel",
    "SNR_DB_MAX",
    "SNR_DB_MIN",
    "check_snr_db",
    "set_seed",
    "snr_db_to_noise_variance",
]
