"""glibc's allocator, tuned for eager torch on the CPU (torch line only).

Eager torch has no caching allocator for the CPU: every activation and
gradient of a training step is a fresh ``malloc`` and is freed by the end of
the step. glibc serves a block above its mmap threshold with new pages and
gives the free memory at the top of a heap back to the system above its trim
threshold. Its dynamic thresholds settle at the largest freed block and
twice that (about 5 and 10 MB for the default student at batch 128), below
what one step frees at once, so every step faulted 1,400-2,600 zero-filled
pages back in. With a 32 MiB mmap threshold (the largest glibc accepts on
64-bit systems, and the ceiling of its own dynamic threshold) and a 256 MiB
trim threshold, a step reuses the memory the last one freed: 4-130 page
faults a step. In one-process runs, interleaved, on 2 cores the default
student's median step was 2-5 ms shorter (a one-off measurement; the
benchmark with the defaults, ``benchmarks/results/backends_malloc_default.json``
beside ``backends.json``, differs from the tuned run by about as much as two
runs of this machine differ).

The cost: blocks below :data:`MMAP_THRESHOLD` come from the heaps, whose free
memory in the middle is never returned, and each heap (one per arena: the
main thread's and those of other allocating threads) keeps up to
:data:`TRIM_THRESHOLD` free at its top instead of returning it.
``import tosc_sionna`` applies the settings on the torch line on Linux with
glibc; set ``TOSC_SIONNA_TUNE_MALLOC=0`` before importing it to keep glibc's
defaults. (Under a preloaded allocator such as jemalloc or tcmalloc, glibc's
``mallopt`` is not the one that serves the process: use that allocator's own
settings.)
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

#: Blocks from this size on are mapped afresh and unmapped when freed (glibc refuses more
#: than 32 MiB on 64-bit systems: ``mallopt`` would return 0).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of a heap beyond this size goes back to the system.
TRIM_THRESHOLD = 256 << 20
#: ``"0"``: leave glibc's allocator as it is; ``"1"``, empty or unset: tune it.
ENV = "TOSC_SIONNA_TUNE_MALLOC"

# glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Whether a call of :func:`tune` set glibc's thresholds in this process.
TUNED = False


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (absent from musl and other C libraries)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def tune() -> bool:
    """Set glibc's mmap and trim thresholds (:data:`MMAP_THRESHOLD`,
    :data:`TRIM_THRESHOLD`) unless ``TOSC_SIONNA_TUNE_MALLOC=0``.

    Returns whether this call set them: False where the environment variable
    says ``0`` or the C library is not glibc (an earlier call's settings stay;
    :data:`TUNED` says whether any call set them). Raises ``ValueError`` for
    any other value than ``0``, ``1`` or empty.
    """
    global TUNED
    wanted = os.environ.get(ENV, "") or "1"
    if wanted not in ("0", "1"):
        raise ValueError(f"{ENV} must be 0 (keep glibc's allocator as it is) or 1 (tune it); "
                         f"got {wanted!r}.")
    mallopt = _glibc_mallopt() if wanted == "1" else None
    if mallopt is None:
        return False
    # glibc accepts both values (were the second refused, the first would stay set)
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    TUNED = TUNED or done
    return done
