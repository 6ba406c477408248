"""Student layers (``keras.ops``; no Sionna, no backend tensors, except
:mod:`.torch_conv`, the encoder's convolution stack in torch's own kernels on the torch
line)."""

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
