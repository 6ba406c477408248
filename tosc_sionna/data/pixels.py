"""Dataset pixels -> student inputs: the one conversion the reader, the sweeps and the
scripts share."""

from __future__ import annotations

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
        x = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
    else:
        raise TypeError(f"Images must be uint8 pixels (0..255) or floats in [0, 1]; got "
                        f"{x.dtype}.")
    return x[..., None] if x.ndim == 3 else x
