"""Student layers (``keras.ops`` only; no Sionna, no backend tensors: the encoder's
convolution stack in torch's own kernels is :mod:`tosc_sionna.backends.torch_conv`)."""

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
