"""tosc-sionna: lightweight task-oriented semantic communication for Sionna.

Keras layers for a student link (semantic encoder, channel-adaptive module,
power normalization, semantic decoder) that sends analog complex symbols
through Sionna channels, composed by :class:`TaskOrientedLink` (outputs only) and trained from a
teacher cache by :class:`DistillationTrainer` (every loss term).
"""

# one version for the distribution (setup.cfg reads tosc_cache.__version__)
from tosc_cache import __version__ as __version__

# before anything imports keras: the Sionna line decides Keras' backend
from .line import select_backend as _select_backend

_select_backend()

# ruff: noqa: E402

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
from .losses import IBDistillationLoss, SoftLabelDistillation
from .presets import DEFAULT_STUDENT, STUDENT_PRESETS, student_preset
from .snr import SNR_DB_MAX, SNR_DB_MIN, check_snr_db
from .training import DistillationTrainer, make_trainer

__all__ = [
    "AWGNChannel",
    "CHANNEL_MODELS",
    "ChannelAdaptiveModule",
    "ChannelLayer",
    "DEFAULT_STUDENT",
    "DistillationTrainer",
    "DigitalChannel",
    "IBDistillationLoss",
    "OFDMChannel",
    "PowerNormalization",
    "RayleighBlockFadingChannel",
    "SNR_DB_MAX",
    "SNR_DB_MIN",
    "STUDENT_PRESETS",
    "SemanticDecoder",
    "SemanticEncoder",
    "SoftLabelDistillation",
    "TaskOrientedLink",
    "check_snr_db",
    "make_link",
    "make_trainer",
    "set_seed",
    "snr_db_to_noise_variance",
    "student_preset",
]
