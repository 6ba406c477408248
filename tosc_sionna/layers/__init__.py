"""Student layers (``keras.ops`` only; no Sionna, no backend tensors)."""

from .adaptive import ChannelAdaptiveModule
from .decoder import SemanticDecoder
from .encoder import SemanticEncoder
from .power_normalization import PowerNormalization

__all__ = [
    "ChannelAdaptiveModule",
    "PowerNormalization",
    "SemanticDecoder",
    "SemanticEncoder",
]
