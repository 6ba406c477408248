"""Physics of the channel layers, checked against closed forms."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import to_complex, unit_symbols
from scipy.special import exp1

import tosc_sionna as ts


@pytest.mark.parametrize("snr_db", [0.0, 20.0])
def test_awgn_noise_variance_matches_nominal(snr_db):
    batch, n = 2000, 512  # 1,024,000 complex symbols
    x = unit_symbols(batch, n)
    channel = ts.AWGNChannel(return_noise=True)
    y, no = channel(x, snr_db)
    noise = to_complex(y) - to_complex(x)
    nominal = 10 ** (-snr_db / 10)
    assert noise.size >= 10**6
    assert abs(np.mean(np.abs(noise) ** 2) / nominal - 1) < 0.01
    # circular: half the variance in each real dimension, uncorrelated
    assert abs(np.var(noise.real) / (nominal / 2) - 1) < 0.01
    assert abs(np.var(noise.imag) / (nominal / 2) - 1) < 0.01
    np.testing.assert_allclose(no, nominal, rtol=1e-5)


def test_awgn_per_example_snr():
    x = unit_symbols(2, 100000)
    y = ts.AWGNChannel()(x, np.array([0.0, 20.0], np.float32))
    power = np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2, axis=1)
    np.testing.assert_allclose(power, [1.0, 0.01], rtol=0.02)


def test_rayleigh_gains_unit_power_and_independent_per_example():
    channel = ts.RayleighBlockFadingChannel()
    h = channel.draw_gains(200000).numpy()[:, 0]
    assert abs(np.mean(np.abs(h) ** 2) - 1) < 0.02
    assert abs(np.mean(h)) < 0.01  # zero mean
    # independence across examples: neighbouring gains uncorrelated
    assert abs(np.mean(h[1:] * np.conj(h[:-1]))) < 0.01
    # circular symmetry: E[h^2] = 0
    assert abs(np.mean(h**2)) < 0.01
    assert len(np.unique(np.round(h, 6))) == len(h)


def test_rayleigh_gain_constant_within_example_and_differs_across():
    channel = ts.RayleighBlockFadingChannel(equalizer="zf", return_noise=True)
    _, no_eff = channel(unit_symbols(1000, 8), 30.0)
    no_eff = no_eff.numpy()
    # ZF with perfect CSI: no_eff = no / |h|^2, one value per example
    np.testing.assert_allclose(no_eff, no_eff[:, :1] * np.ones_like(no_eff), rtol=1e-6)
    assert np.std(np.log(no_eff[:, 0])) > 0.5


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_rayleigh_mmse_error_matches_closed_form(snr_db):
    # x_hat = conj(h) y / (|h|^2 + no): E|x_hat - x|^2 = E_h[no / (|h|^2 + no)]
    # = no * exp(no) * E1(no) for |h|^2 ~ Exp(1) and unit-modulus symbols.
    no = 10 ** (-snr_db / 10)
    closed_form = no * np.exp(no) * exp1(no)
    x = unit_symbols(200000, 4)
    channel = ts.RayleighBlockFadingChannel(equalizer="lmmse", csi="perfect", return_noise=True)
    y, no_eff = channel(x, snr_db)
    mse = np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2)
    assert abs(mse / closed_form - 1) < 0.05
    # the reported effective noise is the same error variance
    assert abs(np.mean(no_eff) / closed_form - 1) < 0.05


def test_rayleigh_ls_estimate_error_variance():
    # The estimate from P unit pilots has error variance no / (P + no): worse than perfect CSI,
    # and approaching it as P grows (same channel and noise draws via the seed).
    x = unit_symbols(50000, 4)
    mses = []
    for csi, pilots in (("perfect", 1), ("ls", 1), ("ls", 16)):
        ts.set_seed(7)
        y = ts.RayleighBlockFadingChannel(csi=csi, num_pilots=pilots)(x, 10.0)
        mses.append(np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2))
    perfect, ls1, ls16 = mses
    assert ls1 > ls16 > perfect
    assert ls16 / perfect < 1.15


def test_rayleigh_outputs_finite_in_deep_fades():
    x = unit_symbols(100000, 4)
    for equalizer in ("lmmse", "zf"):
        y, no_eff = ts.RayleighBlockFadingChannel(equalizer=equalizer, return_noise=True)(
            x, -30.0
        )
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(no_eff))
    # MMSE output is bounded: |x_hat| <= |y| |h| / (|h|^2 + no) <= |y| / (2 sqrt(no))
    y, _ = ts.RayleighBlockFadingChannel(equalizer="lmmse", return_noise=True)(x, 20.0)
    assert np.max(np.abs(to_complex(y))) < 50


def test_ofdm_perfect_csi_high_snr_recovers_symbols():
    x = unit_symbols(1000, 64)
    channel = ts.OFDMChannel("tdl-a", csi="perfect", equalizer="lmmse")
    y = channel(x, 40.0)
    mse = np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2)
    assert mse < 1e-3


@pytest.mark.parametrize("model", ["rayleigh", "tdl-a", "tdl-d", "cdl-a"])
def test_ofdm_channel_models_have_unit_average_gain(model):
    # Perfect-CSI ZF reports no / |H|^2 per resource element: recover |H|^2.
    x = unit_symbols(2000, 32)
    channel = ts.OFDMChannel(model, csi="perfect", equalizer="zf", return_noise=True)
    _, no_eff = channel(x, 40.0)
    gain = 1e-4 / no_eff.numpy()  # |H|^2 per symbol
    assert abs(np.mean(gain) - 1) < 0.1


def test_ofdm_ls_estimation_close_to_perfect_at_high_snr():
    x = unit_symbols(500, 64)
    mse = {}
    for csi in ("perfect", "ls"):
        ts.set_seed(3)
        y = ts.OFDMChannel("tdl-a", delay_spread=30e-9, csi=csi)(x, 30.0)
        mse[csi] = np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2)
    assert mse["perfect"] < mse["ls"] < 20 * mse["perfect"]
    assert mse["ls"] < 0.05


def test_ofdm_mobility_makes_channel_vary_over_time():
    # At 0 m/s TDL is constant over the OFDM symbols; at high speed it is not.
    def spread(speed):
        channel = ts.OFDMChannel(
            "tdl-a", speed=speed, csi="perfect", equalizer="zf",
            fft_size=1, num_ofdm_symbols=14, return_noise=True,
        )
        _, no_eff = channel(unit_symbols(200, 12), 40.0)
        gain = np.log(1e-4 / no_eff.numpy())
        return np.mean(np.std(gain, axis=1))

    assert spread(0.0) < 1e-3
    assert spread(300.0) > 0.05


def test_equalizer_names_agree_across_layers():
    # "lmmse" everywhere; "mmse", the Rayleigh layer's old name, still loads
    assert ts.RayleighBlockFadingChannel().equalizer == "lmmse"
    assert ts.RayleighBlockFadingChannel(equalizer="mmse").equalizer == "lmmse"
    assert ts.OFDMChannel().equalizer == "lmmse"


def test_snr_tensor_inside_tf_function():
    channel = ts.AWGNChannel(return_noise=True)
    f = tf.function(lambda x, s: channel(x, s))
    _, no = f(unit_symbols(4, 8), tf.constant([0.0, 10.0, 20.0, 30.0]))
    np.testing.assert_allclose(no.numpy()[:, 0], [1, 0.1, 0.01, 0.001], rtol=1e-5)
