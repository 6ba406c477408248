"""The finite-blocklength limit of "classify at the transmitter, send the decision".

The best any code can do when ``log2 M`` bits travel over ``n`` complex
channel uses, in the normal approximation of Polyanskiy, Poor and Verdú
(IEEE Trans. IT 56(5), 2010), for complex AWGN at SNR ``ρ`` (Es/N0 per
complex use, unit-energy symbols as everywhere in this package):

``log2 M ≈ n C − sqrt(n V) Q⁻¹(ε) + ½ log2 n``

with capacity ``C = log2(1 + ρ)`` and dispersion
``V = (1 − (1 + ρ)⁻²) log2² e`` bits² per complex use. Solved for the block
error probability:

``ε ≈ Q((n C − log2 M + ½ log2 n) / sqrt(n V))``.

The ``½ log2 n`` term is the third-order term of the approximation; without
it the expression is the more conservative second-order one, so the two
bracket the limit the way the literature quotes it (``log_term``).

Over flat Rayleigh block fading (one gain ``h`` per block, known at the
receiver, ``|h|²`` exponential with mean 1), the quasi-static limit averages
the AWGN expression over the fade, ``ε ≈ E_h[ε_AWGN(n, M, ρ |h|²)]`` (Yang,
Durisi, Koch and Polyanskiy, IEEE Trans. IT 60(7), 2014: the outage
probability ``P[C(ρ |h|²) < log2 M / n]`` up to terms that vanish as ``n``
grows). Pilots are not part of the bound: pass the data channel uses.

A decoding error gives the receiver a random class, so the task accuracy of
a transmitter-side classifier of error-free accuracy ``a`` over ``C``
classes is ``a (1 − ε) + ε / C`` (:func:`classify_then_send_accuracy`).

NumPy only; every function broadcasts over ``snr_db``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "awgn_capacity",
    "awgn_dispersion",
    "awgn_block_error",
    "classify_then_send_accuracy",
    "rayleigh_block_error",
]

LOG2E = math.log2(math.e)


def _snr(snr_db: Any) -> np.ndarray:
    snr_db = np.asarray(snr_db, dtype=np.float64)
    if not np.all(np.isfinite(snr_db)):
        raise ValueError("snr_db must be finite (dB).")
    return 10.0 ** (snr_db / 10.0)


def _check_sizes(n: int, bits: float) -> None:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n (complex channel uses) must be an integer >= 1; got {n!r}.")
    if not (math.isfinite(bits) and bits > 0):
        raise ValueError(f"bits (log2 of the number of messages) must be > 0; got {bits!r}.")


def awgn_capacity(snr_db: Any) -> np.ndarray:
    """``C = log2(1 + ρ)``, bits per complex channel use."""
    return np.log2(1.0 + _snr(snr_db))


def awgn_dispersion(snr_db: Any) -> np.ndarray:
    """``V = (1 − (1 + ρ)⁻²) log2² e``, bits² per complex channel use."""
    rho = _snr(snr_db)
    return (1.0 - (1.0 + rho) ** -2) * LOG2E**2


def _q(x: np.ndarray) -> np.ndarray:
    """Gaussian tail ``Q(x) = ½ erfc(x / sqrt 2)``."""
    return 0.5 * np.vectorize(math.erfc, otypes=[np.float64])(np.asarray(x) / math.sqrt(2.0))


def awgn_block_error(n: int, bits: float, snr_db: Any, log_term: bool = True) -> np.ndarray:
    """Normal-approximation block error probability of ``bits`` over ``n`` complex AWGN uses.

    Parameters
    ----------
    n : int
        Complex channel uses (blocklength).
    bits : float
        ``log2 M``: information per block (``log2 10`` for a 10-class decision).
    snr_db : float or array
        Es/N0 per complex use, dB.
    log_term : bool, (default True)
        Include the ``½ log2 n`` third-order term.

    Returns
    -------
    ε : ndarray, same shape as ``snr_db``, in [0, 1].
    """
    _check_sizes(n, bits)
    numerator = n * awgn_capacity(snr_db) - bits + (0.5 * math.log2(n) if log_term else 0.0)
    with np.errstate(divide="ignore"):  # V -> 0 in a deep fade: the error tends to 1
        return _q(numerator / np.sqrt(n * awgn_dispersion(snr_db)))


def rayleigh_block_error(n: int, bits: float, snr_db: Any, log_term: bool = True,
                         num_points: int = 4001) -> np.ndarray:
    """Quasi-static Rayleigh: ``E_h[ε_AWGN(n, bits, ρ |h|²)]`` with ``|h|² ~ Exp(1)``.

    The expectation is taken over ``u = ln |h|²`` (density ``exp(u − e^u)``)
    by the trapezoidal rule on ``num_points`` points of ``u ∈ [−35, 4]``
    (the mass outside is below 1e-15 at the bottom and 1e-23 at the top);
    in ``u`` the error's steep transition is resolved at every SNR and
    blocklength (tested against a Monte Carlo average). Same parameters and
    output as :func:`awgn_block_error`.
    """
    _check_sizes(n, bits)
    u = np.linspace(-35.0, 4.0, int(num_points))
    density = np.exp(u - np.exp(u))
    snr_db = np.asarray(snr_db, dtype=np.float64)
    faded = snr_db[..., None] + 10.0 * np.log10(np.e) * u  # ρ |h|² at each point, dB
    return np.trapezoid(density * awgn_block_error(n, bits, faded, log_term), u, axis=-1)


def classify_then_send_accuracy(clean_accuracy: float, num_classes: int,
                                block_error: Any) -> np.ndarray:
    """Task accuracy when the decision arrives with probability ``1 − ε``, else a random class.

    ``a (1 − ε) + ε / C`` for a transmitter-side classifier of error-free
    accuracy ``a`` over ``C`` classes.
    """
    if not 0.0 <= clean_accuracy <= 1.0:
        raise ValueError(f"clean_accuracy must lie in [0, 1]; got {clean_accuracy}.")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}.")
    eps = np.asarray(block_error, dtype=np.float64)
    return clean_accuracy * (1.0 - eps) + eps / int(num_classes)
