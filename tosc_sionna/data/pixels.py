"""Dataset pixels -> student inputs: the one conversion the reader, the sweeps and the
scripts share."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np


def student_inputs(pixels: Any) -> np.ndarray:
    """What the student takes, from what a dataset stores.

    Parameters
    ----------
    pixels : [N, H, W] or [N, H, W, C], uint8 in 0..255 or float in [0, 1]
        Any array-like that NumPy reads (an array, a memory map, an h5py slice).
        Float input is taken as already scaled.

    Output
    ------
    : [N, H, W, C], float32 in [0, 1]
        Grey images (``[N, H, W]``) gain a channel axis of one.
    """
    x = np.asarray(pixels)
    if x.dtype == np.uint8:
        x = x.astype(np.float32)
        x /= 255.0  # in place: one float copy of a whole split, not two
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
    else:
        raise TypeError(f"Images must be uint8 pixels (0..255) or floats in [0, 1]; got "
                        f"{x.dtype}.")
    return x[..., None] if x.ndim == 3 else x


def decoded_pixels(images: Any, block: int = 1024) -> np.ndarray:
    """Images decoded on every read (a Hugging Face dataset's) decoded once, into a
    uint8 array on disk; NumPy arrays and memory maps are returned as they are.

    An evaluation sweep reads its split once per SNR and channel draw (about 40
    times in the main job): decoding and resizing each time would cost more than
    the student. The array is a memory map of an unlinked temporary file (in
    ``TMPDIR``), so it takes page cache rather than memory and leaves no file behind.

    Parameters
    ----------
    images : [N, H, W] or [N, H, W, C], uint8
        Any object with ``len`` and slices (``images[a:b]``) that NumPy reads.
    block : int, (default 1024)
        Images decoded at a time.

    Output
    ------
    : [N, H, W(, C)], uint8
    """
    if isinstance(images, np.ndarray):
        return images
    first = np.asarray(images[:1])
    out = np.memmap(tempfile.TemporaryFile(), dtype=first.dtype, mode="w+",
                    shape=(len(images), *first.shape[1:]))
    for start in range(0, len(images), block):
        out[start:start + block] = np.asarray(images[start:start + block])
    return out
