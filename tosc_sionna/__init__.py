"""tosc-sionna: lightweight task-oriented semantic communication for Sionna.

Keras layers for a student link (semantic encoder, channel-adaptive module,
power normalization, semantic decoder) that sends analog complex symbols
through Sionna channels, composed by :class:`TaskOrientedLink`.
"""

from .channels import (
    CHANNEL_MODELS,
    AWGNChannel,
    ChannelLayer,
    DigitalChannel,
    OFDMChannel,
    RayleighBlockFadingChannel,
    set_seed,
    snr_db_to_noise_variance,
)
from .layers import ChannelAdaptiveModule, PowerNormalization, SemanticDecoder, SemanticEncoder
from .link import TaskOrientedLink, make_link
from .losses import IBDistillationLoss
from .snr import SNR_DB_MAX, SNR_DB_MIN, check_snr_db

__version__ = "0.4.0"

__all__ = [
    "AWGNChannel",
    "CHANNEL_MODELS",
    "ChannelAdaptiveModule",
    "ChannelLayer",
    "DigitalChannel",
    "IBDistillationLoss",
    "OFDMChannel",
    "PowerNormalization",
    "RayleighBlockFadingChannel",
    "SNR_DB_MAX",
    "SNR_DB_MIN",
    "SemanticDecoder",
    "SemanticEncoder",
    "TaskOrientedLink",
    "check_snr_db",
    "make_link",
    "set_seed",
    "snr_db_to_noise_variance",
]
