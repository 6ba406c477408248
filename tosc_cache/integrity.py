"""Integrity: digests of stored arrays and content hashes of the data's rows (NumPy only).

A cache records a sha256 digest of every array (checked by the reader) and,
from format version 3, a 64-bit content hash per row of the data it was made
from, so pairing a cache with data is exact and cheap (:func:`differing_rows`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

#: Rows whose content hash the reader compares with the data by default.
SAMPLE_ROWS = 1024
#: What a reader hashes on opening (see :class:`tosc_cache.reader.TeacherCache`).
INTEGRITY_CHECKS = ("none", "quick", "full")


def array_digest(array: np.ndarray) -> str:
    """sha256 over dtype, shape and the C-ordered bytes of an array."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.reshape(-1).view(np.uint8))  # the bytes, without a copy
    return h.hexdigest()



class RunningDigest:
    """:func:`array_digest` computed incrementally over consecutive row blocks."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.hash = hashlib.sha256(f"{self.dtype.str}{tuple(shape)}".encode())

    def update(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block.astype(self.dtype, copy=False))
        self.hash.update(block.reshape(-1).view(np.uint8))

    def hexdigest(self) -> str:
        return self.hash.hexdigest()



def differing_rows(
    images: Any, labels: np.ndarray, index: np.ndarray, stored: np.ndarray, sample_size: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose samples (``images[index[row]]``, ``labels[...]``) no longer have the
    stored content hash: ``sample_size`` rows drawn from ``seed``, or all when that is at
    least their number. Returns (differing rows, rows checked, their hashes), sorted."""
    if sample_size < len(index):
        picked = np.sort(np.random.default_rng(seed).choice(len(index), sample_size,
                                                            replace=False))
    else:
        picked = np.arange(len(index))
    got = row_hashes(images, labels, index[picked])
    return picked[got != stored[picked]], picked, got

def dataset_digest(images: Any, labels: np.ndarray, indices: np.ndarray) -> str:
    """sha256 of the exact samples (images and labels) at ``indices``, in that order.

    The whole-split digest of format version 1 and 2 caches (streamed in
    blocks); version 3 uses :func:`row_hash_digest`.
    """
    indices = np.asarray(indices, dtype=np.int64)
    h = hashlib.sha256(f"{images.dtype.str}{tuple(images.shape[1:])}|{len(indices)}|".encode())
    for start in range(0, len(indices), 4096):
        h.update(np.ascontiguousarray(images[indices[start : start + 4096]]).tobytes())
    h.update(np.ascontiguousarray(np.asarray(labels)[indices].astype(np.int64)).tobytes())
    return h.hexdigest()


def row_hashes(images: Any, labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """A 64-bit content hash per sample (uint64 ``[len(indices)]``): BLAKE2b of the
    image's dtype, shape and bytes and its label, so a single altered, moved or
    relabelled sample is found without hashing the whole split again."""
    indices = np.asarray(indices, dtype=np.int64)
    out = np.empty(len(indices), dtype=np.uint64)
    for start in range(0, len(indices), 1024):  # decode in blocks (lazy image arrays)
        block = indices[start : start + 1024]
        decoded = np.asarray(images[block]) if len(block) else None
        for i, index in enumerate(block):
            image = np.ascontiguousarray(decoded[i])
            h = hashlib.blake2b(
                f"{image.dtype.str}{image.shape}|{int(labels[index])}|".encode(), digest_size=8)
            h.update(image.tobytes())
            out[start + i] = int.from_bytes(h.digest(), "little")
    return out


def row_hash_digest(hashes: np.ndarray) -> str:
    """The whole-split digest of a version-3 cache: sha256 over its row hashes, in order."""
    hashes = np.ascontiguousarray(hashes, dtype="<u8")
    return hashlib.sha256(f"row_hash|{len(hashes)}|".encode() + hashes.tobytes()).hexdigest()


