"""The channel layers' backend-specific tensor code: one module per Keras backend.

Everything else in :mod:`tosc_sionna.channels` is written once against
:data:`ops`, which is :mod:`.tensorflow_ops` (Sionna 1.2, TensorFlow) or
:mod:`.torch_ops` (Sionna 2.x, PyTorch), chosen by Keras' backend (which
:mod:`tosc_sionna.line` matched to the installed Sionna). Both modules offer
the same functions with the same semantics; complex tensors appear only here
and inside the channel layers' ``call``.
"""

from __future__ import annotations

import keras

if keras.backend.backend() == "torch":
    from . import torch_ops as ops
else:
    from . import tensorflow_ops as ops

__all__ = ["ops"]
