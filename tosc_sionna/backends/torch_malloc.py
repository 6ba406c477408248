"""glibc's allocator, tuned for eager torch on the CPU (torch line only).

Eager torch has no caching allocator for the CPU: every activation and
gradient of a training step is a fresh ``malloc`` and is freed by the end of
the step. glibc serves a block above its mmap threshold with new pages and
gives the free memory at the top of its heap back to the system above its
trim threshold. Its dynamic thresholds settle at the largest freed block and
twice that (about 5 and 10 MB for the default student at batch 128), below
what one step frees at once, so every step faulted 1,400-2,600 zero-filled
pages back in. With a 32 MiB mmap threshold (the ceiling glibc itself allows
its dynamic threshold on 64-bit systems) and a 256 MiB trim threshold, a step
reuses the memory the last one freed: 4-130 page faults a step, and the
default student's step 2-5 ms faster (about 6-10 %, median of interleaved
runs on 2 cores; ``benchmarks/results/backends.json`` times the epoch).

The cost: the process keeps up to :data:`TRIM_THRESHOLD` of freed memory at
the top of its heap instead of returning it, and blocks below
:data:`MMAP_THRESHOLD` come from the heap. ``import tosc_sionna`` applies
the settings on the torch line on Linux with glibc; set
``TOSC_SIONNA_TUNE_MALLOC=0`` before importing it to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: Blocks from this size on are mapped afresh and unmapped when freed.
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap beyond this size goes back to the system.
TRIM_THRESHOLD = 256 << 20
#: ``"0"``: leave glibc's allocator as it is; ``"1"`` or unset: tune it.
ENV = "TOSC_SIONNA_TUNE_MALLOC"

# glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Whether :func:`tune` set glibc's thresholds in this process.
TUNED = False


def _glibc_mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (absent from musl and other C libraries)
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def tune() -> bool:
    """Set glibc's mmap and trim thresholds (:data:`MMAP_THRESHOLD`,
    :data:`TRIM_THRESHOLD`) unless ``TOSC_SIONNA_TUNE_MALLOC=0``.

    Returns whether they are set: False where the C library is not glibc or
    the environment variable says ``0``. Raises ``ValueError`` for any other
    value than ``0`` or ``1``.
    """
    global TUNED
    wanted = os.environ.get(ENV, "1")
    if wanted not in ("0", "1"):
        raise ValueError(f"{ENV} must be 0 (keep glibc's allocator as it is) or 1 (tune it); "
                         f"got {wanted!r}.")
    if wanted == "0":
        return TUNED
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    TUNED = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return TUNED
