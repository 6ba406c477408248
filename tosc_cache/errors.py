"""The errors of the cache core; each message says why and what to do."""

from __future__ import annotations


class UsageError(ValueError):
    """An argument or input given by the user cannot be used (``tosc-cache`` exits 2)."""


class CacheError(ValueError):
    """A teacher cache cannot be used; the message says why and what to do."""


class CacheFormatError(CacheError):
    """Not a teacher cache, an unreadable file, or an unsupported format version."""


class CacheIncompleteError(CacheError):
    """The cache was not finalized (an interrupted extraction)."""


class CacheCorruptError(CacheError):
    """A stored array does not match the digest recorded when the cache was finalized."""


class CacheMismatchError(CacheError):
    """The cache does not describe the data it is paired with."""


class ResumedEnvironmentWarning(UserWarning):
    """An extraction was resumed with other library versions, device or thread count."""



class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says what to install."""
