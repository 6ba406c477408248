"""The finite-blocklength limit: closed forms, limits and a simulation of the dispersion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tosc_sionna import finite_blocklength as fbl

TEN_CLASSES = math.log2(10)


def test_capacity_and_dispersion_closed_forms():
    assert fbl.awgn_capacity(0.0) == pytest.approx(1.0)  # log2(1 + 1)
    assert fbl.awgn_capacity(10 * math.log10(3)) == pytest.approx(2.0)
    # V = (1 - 1/4) log2^2 e at 0 dB; it tends to log2^2 e at high SNR and to 0 at low SNR
    assert fbl.awgn_dispersion(0.0) == pytest.approx(0.75 * math.log2(math.e) ** 2)
    assert fbl.awgn_dispersion(60.0) == pytest.approx(math.log2(math.e) ** 2, rel=1e-5)
    assert fbl.awgn_dispersion(-60.0) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("snr_db", [-7.5, 0.0, 10.0])
def test_dispersion_is_the_variance_of_the_information_density(snr_db):
    # on the power shell (|x|^2 = rho per use) the information density of one use,
    # i = log2(1 + rho) + log2 e (|y|^2 / (1 + rho) - |z|^2), has variance V (PPV 2010)
    rng = np.random.default_rng(0)
    rho = 10 ** (snr_db / 10)
    m = 400_000
    x = math.sqrt(rho) * np.exp(2j * np.pi * rng.random(m))
    z = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / math.sqrt(2)
    y = x + z
    density = math.log2(1 + rho) + math.log2(math.e) * (np.abs(y) ** 2 / (1 + rho)
                                                       - np.abs(z) ** 2)
    assert np.mean(density) == pytest.approx(fbl.awgn_capacity(snr_db), rel=0.01, abs=0.005)
    assert np.var(density) == pytest.approx(fbl.awgn_dispersion(snr_db), rel=0.02)


def test_the_values_the_baseline_issue_quotes():
    # a 10-class decision (error-free 0.904) over complex AWGN: the second-order
    # approximation and the one with the 1/2 log2 n term bracket the limit
    def accuracy(n, snr_db, log_term):
        eps = fbl.awgn_block_error(n, TEN_CLASSES, snr_db, log_term)
        return float(fbl.classify_then_send_accuracy(0.904, 10, eps))

    assert accuracy(16, -5.0, False) == pytest.approx(0.735, abs=0.002)
    assert accuracy(16, -5.0, True) == pytest.approx(0.831, abs=0.002)
    assert accuracy(64, -7.5, False) == pytest.approx(0.883, abs=0.002)
    assert accuracy(64, -7.5, True) == pytest.approx(0.898, abs=0.002)


def test_limits_high_snr_and_long_blocks():
    snrs = np.arange(-10.0, 30.1, 2.5)
    eps = fbl.awgn_block_error(16, TEN_CLASSES, snrs)
    assert eps.shape == snrs.shape
    assert np.all(np.diff(eps) < 0)  # more SNR, fewer errors
    assert eps[-1] < 1e-12
    # as n grows at a fixed rate R, the error vanishes below capacity and tends to 1 above
    capacity = float(fbl.awgn_capacity(0.0))  # 1 bit per use
    below = [float(fbl.awgn_block_error(n, 0.9 * capacity * n, 0.0)) for n in (100, 1000, 10000)]
    above = [float(fbl.awgn_block_error(n, 1.1 * capacity * n, 0.0)) for n in (100, 1000, 10000)]
    assert below[0] > below[1] > below[2] and below[2] < 1e-9
    assert above[0] < above[1] < above[2] and above[2] > 1 - 1e-9
    # the third-order term always helps
    assert np.all(fbl.awgn_block_error(16, TEN_CLASSES, snrs, log_term=False) >= eps)


def test_rayleigh_average_matches_monte_carlo_and_lies_above_awgn():
    rng = np.random.default_rng(1)
    gains_db = 10 * np.log10(rng.exponential(size=400_000))
    for snr_db in (-5.0, 0.0, 10.0, 20.0):
        simulated = np.mean(fbl.awgn_block_error(16, TEN_CLASSES, snr_db + gains_db))
        quadrature = float(fbl.rayleigh_block_error(16, TEN_CLASSES, snr_db))
        assert quadrature == pytest.approx(simulated, rel=0.02)
        assert quadrature > float(fbl.awgn_block_error(16, TEN_CLASSES, snr_db))
    # diversity 1: at high SNR the error falls by 10x per 10 dB, like the outage
    e20, e30 = fbl.rayleigh_block_error(16, TEN_CLASSES, [20.0, 30.0])
    assert e20 / e30 == pytest.approx(10.0, rel=0.1)


def test_accuracy_of_a_random_decision_and_bad_input():
    assert fbl.classify_then_send_accuracy(0.9, 10, 1.0) == pytest.approx(0.1)
    assert fbl.classify_then_send_accuracy(0.9, 10, 0.0) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="n .complex channel uses"):
        fbl.awgn_block_error(0, 3.0, 0.0)
    with pytest.raises(ValueError, match="bits"):
        fbl.awgn_block_error(16, 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        fbl.awgn_block_error(16, 3.0, float("nan"))
    with pytest.raises(ValueError, match="clean_accuracy"):
        fbl.classify_then_send_accuracy(1.5, 10, 0.1)
