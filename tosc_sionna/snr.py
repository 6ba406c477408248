"""SNR conventions shared by every layer (NumPy only, no backend tensors).

SNR is Es/N0 per complex channel use, in dB, with Es = 1 after power
normalization: ``no = 10 ** (-snr_db / 10)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: SNR range accepted everywhere, in dB.
SNR_DB_MIN = -30.0
#: SNR range accepted everywhere, in dB.
SNR_DB_MAX = 60.0


def check_snr_db(value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite SNR in dB within range.

    ``value`` is a concrete number or array (scalar or ``[batch]``); symbolic
    tensors are checked by the layers that receive them.
    """
    value = np.asarray(value, dtype=np.float64)
    if value.ndim > 1:
        raise ValueError(
            f"snr_db must be a scalar or have shape [batch]; got shape {value.shape}."
        )
    if not np.all(np.isfinite(value)):
        raise ValueError(
            "snr_db contains NaN or inf; pass finite SNRs in dB "
            f"(allowed range [{SNR_DB_MIN}, {SNR_DB_MAX}])."
        )
    if value.size and (value.min() < SNR_DB_MIN or value.max() > SNR_DB_MAX):
        raise ValueError(
            f"snr_db must lie in [{SNR_DB_MIN}, {SNR_DB_MAX}] dB; got values from "
            f"{value.min():g} to {value.max():g} dB. Is it a linear SNR or a noise "
            "variance rather than dB?"
        )


def check_snr_range(low: float, high: float) -> tuple[float, float]:
    """Validate a training SNR range ``[low, high]`` in dB and return it as floats."""
    check_snr_db([low, high])
    if low > high:
        raise ValueError(f"The SNR range must have low <= high; got [{low}, {high}] dB.")
    return float(low), float(high)
