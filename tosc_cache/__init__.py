"""The teacher cache core of tosc-sionna (NumPy + h5py; Hugging Face ``datasets`` lazily).

The one definition of the cache format, shared by the teacher side
(``cache_tools``: torch + transformers, writes caches) and the Keras side
(``tosc_sionna``: reads them). It imports neither of them, nor keras,
TensorFlow or torch.

Modules: :mod:`.spec` (the cache spec, format version), :mod:`.errors`,
:mod:`.codecs` (one codec per compression kind), :mod:`.features`,
:mod:`.probability`, :mod:`.writer`, :mod:`.reader` (:class:`TeacherCache`),
:mod:`.integrity` (digests, row hashes), :mod:`.pairing` (a cache with its
data), :mod:`.augment` (augmentation, view seeds), :mod:`.datasets` and
:mod:`.hf_images` (dataset readers).
"""

__version__ = "0.5.0"

from .errors import (  # noqa: E402
    CacheCorruptError,
    CacheError,
    CacheFormatError,
    CacheIncompleteError,
    CacheMismatchError,
    MissingDependencyError,
    ResumedEnvironmentWarning,
    UsageError,
)
from .pairing import Checks, DataSource, PairedCache, pair  # noqa: E402
from .reader import TeacherCache  # noqa: E402
from .spec import FORMAT_VERSION, CacheSpec  # noqa: E402
from .writer import CacheWriter  # noqa: E402

__all__ = [
    "FORMAT_VERSION", "CacheCorruptError", "CacheError", "CacheFormatError",
    "CacheIncompleteError", "CacheMismatchError", "CacheSpec", "CacheWriter", "Checks",
    "DataSource", "MissingDependencyError", "PairedCache", "ResumedEnvironmentWarning",
    "TeacherCache", "UsageError", "pair",
]
