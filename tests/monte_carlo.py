"""Monte-Carlo checks with tolerances derived from the estimator's standard error.

A calibration test compares a sample mean with a closed form. Its tolerance is
``K`` standard errors of that mean (a correct layer fails with probability
~6e-7 at K = 5), and the sample must be large enough that an error of
``POWER`` (10%) in the checked quantity lands at least 3 standard errors
beyond the tolerance (such a layer passes with probability ~1e-3):
``(K + 3) * se <= POWER * scale``. Both are asserted, so shrinking a sample
below what the check needs fails loudly instead of weakening it silently.
"""

from __future__ import annotations

import numpy as np

K = 5.0  # tolerance in standard errors
POWER = 0.10  # the relative error a test must be able to see


def mean_and_se(samples) -> tuple[float, float]:
    """Mean and standard error of ``samples`` ``[draws, ...]``.

    Rows are independent draws (examples: one channel realization each);
    values within a row are correlated (they share the row's channel), so the
    row means are the independent samples the standard error is taken over.
    """
    rows = np.asarray(samples, np.float64).reshape(len(samples), -1).mean(axis=1)
    return float(rows.mean()), float(rows.std(ddof=1) / np.sqrt(len(rows)))


def check_power(se: float, scale: float, what: str = "") -> None:
    """The sample resolves an error of POWER * scale (see the module docstring)."""
    assert (K + 3) * se <= POWER * abs(scale), (
        f"{what}: sample too small to see a {POWER:.0%} error: se {se:.3g}, scale {scale:.3g}"
    )


def assert_mean(samples, expected: float, scale: float | None = None, what: str = "") -> None:
    """Mean of ``samples`` (see :func:`mean_and_se`) equals ``expected`` within K SE.

    ``scale`` is the size of the quantity a 10% error is relative to (default
    ``expected``; give it when ``expected`` is 0, e.g. for a difference).
    """
    mean, se = mean_and_se(samples)
    check_power(se, abs(expected) if scale is None else scale, what)
    assert abs(mean - expected) <= K * se, (
        f"{what}: mean {mean:.5g}, expected {expected:.5g}, {abs(mean - expected) / se:.1f} SE"
    )


def assert_mean_known_se(
    mean: float, expected: float, se: float, scale: float | None = None, what: str = ""
) -> None:
    """As :func:`assert_mean`, with the standard error from the estimator's closed form."""
    check_power(se, abs(expected) if scale is None else scale, what)
    assert abs(mean - expected) <= K * se, (
        f"{what}: mean {mean:.5g}, expected {expected:.5g}, {abs(mean - expected) / se:.1f} SE"
    )


def rayleigh_lmmse_error(no: float, pilots: int | None = None) -> float:
    """E|x_hat - x|^2 of the Rayleigh layer's LMMSE equalizer, unit-modulus symbols.

    The CSI g has error variance e = no / (P + no) from P pilots (0 with perfect
    CSI, ``pilots=None``) and |g|^2 ~ Exp(1 - e); the error given g is
    s / (|g|^2 + s), s = no + e, whose mean over g is a exp(a) E1(a), a = s / (1 - e).
    """
    from scipy.special import exp1

    e = 0.0 if pilots is None else no / (pilots + no)
    a = (no + e) / (1 - e)
    return float(a * np.exp(a) * exp1(a))
