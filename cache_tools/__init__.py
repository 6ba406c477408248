"""The teacher side of tosc-sionna (torch + transformers: the ``cache`` extra).

Preprocessing (:mod:`.preprocessing`), teacher adapters (:mod:`.teachers`),
extraction (:mod:`.extract`), the online teacher (:mod:`.online`),
fine-tuning and the ``tosc-cache`` command (:mod:`.cli`). It builds on the
cache core :mod:`tosc_cache` (the format, codecs, augmentation, dataset
readers); modules that need torch and transformers import them lazily, so
importing this package never imports torch, and it never imports TensorFlow.
"""

from tosc_cache import __version__

__all__ = ["__version__"]
