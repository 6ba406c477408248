"""Every piece of backend-specific tensor code of the package, in one place.

* :data:`ops`: the channel layers' complex tensor operations.
  Everything in :mod:`tosc_sionna.channels` is written once against it; it is
  :mod:`.tensorflow_ops` (Sionna 1.2, TensorFlow) or :mod:`.torch_ops` (Sionna
  2.x, PyTorch), chosen by Keras' backend (which :mod:`tosc_sionna.line`
  matched to the installed Sionna). Both modules offer the same functions with
  the same semantics; complex tensors appear only there and inside the channel
  layers' ``call``.
* :mod:`.torch_malloc` (applied on the torch line only; TensorFlow has an
  allocator of its own): glibc's allocator tuned so that
  eager torch reuses the memory of the last step instead of faulting in fresh
  pages (applied on import; ``TOSC_SIONNA_TUNE_MALLOC=0`` keeps the defaults).
* :mod:`.torch_conv` (torch line only): the student encoder's convolution
  stack in torch's own kernels, the same arithmetic as the Keras layers; the
  encoder is most of a training step (26 of 32 ms on 2 cores,
  ``benchmarks/results/backends.json``).
* :mod:`.torch_adam` (torch line only): Keras' Adam update in torch's fused
  CPU kernel, for :class:`tosc_sionna.training.Adam`.

The serving path's ``tf.function`` / ``torch.no_grad`` choice is the other
backend switch (:mod:`tosc_sionna.serving`).
"""

from __future__ import annotations

import keras

from . import torch_malloc  # no torch import: ctypes only, and applied on the torch line only

if keras.backend.backend() == "torch":
    from . import torch_adam, torch_conv
    from . import torch_ops as ops

    torch_malloc.tune()
else:
    from . import tensorflow_ops as ops

    torch_conv = None  # the encoder runs its Keras layers
    torch_adam = None  # Keras' own Adam update (compiled with the step)

__all__ = ["ops", "torch_adam", "torch_conv", "torch_malloc"]
