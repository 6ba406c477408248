"""Physics of the channel layers, checked against closed forms."""

import numpy as np
import pytest
from backend import numpy, tensor
from conftest import to_complex, unit_symbols
from monte_carlo import assert_mean, assert_mean_known_se, rayleigh_lmmse_error

import tosc_sionna as ts


@pytest.mark.parametrize("snr_db", [0.0, 20.0])
def test_awgn_noise_variance_matches_nominal(snr_db):
    x = unit_symbols(64, 512)  # 32,768 complex symbols, independent noise on each
    channel = ts.AWGNChannel(return_noise=True)
    y, no = channel(x, snr_db=snr_db)
    noise = (to_complex(y) - to_complex(x)).ravel().astype(np.complex128)
    nominal = 10 ** (-snr_db / 10)
    n = noise.size
    # |w|^2 ~ Exp(no): SE of its mean no / sqrt(n)
    assert_mean_known_se(np.mean(np.abs(noise) ** 2), nominal, nominal / np.sqrt(n), what="E|w|^2")
    # circular: Re, Im ~ N(0, no/2), SE of a sample variance (no/2) sqrt(2/(n-1)), uncorrelated
    # (E[Re Im] = 0, SE (no/2) / sqrt(n))
    for part in (noise.real, noise.imag):
        assert_mean_known_se(np.var(part), nominal / 2, nominal / 2 * np.sqrt(2 / (n - 1)))
    assert_mean_known_se(np.mean(noise.real * noise.imag), 0.0, nominal / 2 / np.sqrt(n),
                         scale=nominal / 2, what="E[Re Im]")
    np.testing.assert_allclose(numpy(no), nominal, rtol=1e-5)


def test_awgn_per_example_snr():
    x = unit_symbols(2, 20000)
    y = ts.AWGNChannel()(x, snr_db=np.array([0.0, 20.0], np.float32))
    power = np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2, axis=1)
    for measured, nominal in zip(power, [1.0, 0.01], strict=True):  # SE no / sqrt(20,000)
        assert_mean_known_se(measured, nominal, nominal / np.sqrt(x.shape[1] // 2))


def test_rayleigh_gains_unit_power_and_independent_per_example():
    channel = ts.RayleighBlockFadingChannel()
    n = 20000
    h = numpy(channel.draw_gains(n))[:, 0].astype(np.complex128)
    # h ~ CN(0, 1): |h|^2 ~ Exp(1), SE of its mean 1 / sqrt(n)
    assert_mean_known_se(np.mean(np.abs(h) ** 2), 1.0, 1 / np.sqrt(n), what="E|h|^2")
    # zero mean; independent across examples (E[h_k h_{k-1}^*] = 0); circular (E[h^2] = 0):
    # complex means of terms with E|.|^2 = 1, 1 and 2, so SE 1, 1, sqrt(2) over sqrt(n)
    for value, second_moment in ((np.mean(h), 1), (np.mean(h[1:] * np.conj(h[:-1])), 1),
                                 (np.mean(h**2), 2)):
        assert_mean_known_se(abs(value), 0.0, np.sqrt(second_moment / n), scale=1.0)
    assert len(np.unique(np.round(h, 6))) == len(h)


def test_rayleigh_gain_constant_within_example_and_differs_across():
    channel = ts.RayleighBlockFadingChannel(equalizer="zf", return_noise=True)
    _, no_eff = channel(unit_symbols(1000, 8), snr_db=30.0)
    no_eff = numpy(no_eff)
    # ZF with perfect CSI: no_eff = no / |h|^2, one value per example
    np.testing.assert_allclose(no_eff, no_eff[:, :1] * np.ones_like(no_eff), rtol=1e-6)
    assert np.std(np.log(no_eff[:, 0])) > 0.5


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_rayleigh_mmse_error_matches_closed_form(snr_db):
    # x_hat = conj(h) y / (|h|^2 + no): E|x_hat - x|^2 = E_h[no / (|h|^2 + no)]
    # = no * exp(no) * E1(no) for |h|^2 ~ Exp(1) and unit-modulus symbols.
    # Tolerance: 5 SE of the mean over 50,000 independent fades (see monte_carlo.py).
    no = 10 ** (-snr_db / 10)
    closed_form = rayleigh_lmmse_error(no)
    x = unit_symbols(50000, 4)  # 50,000 fades: the SE is taken over examples
    channel = ts.RayleighBlockFadingChannel(equalizer="lmmse", csi="perfect", return_noise=True)
    y, no_eff = channel(x, snr_db=snr_db)
    assert_mean(np.abs(to_complex(y) - to_complex(x)) ** 2, closed_form, what="error")
    # the reported effective noise is the same error variance
    assert_mean(numpy(no_eff), closed_form, what="no_eff")


def test_rayleigh_ls_estimate_error_variance():
    # The estimate from P unit pilots has error variance no / (P + no): worse than perfect CSI,
    # and approaching it as P grows (same channel and noise draws via the seed). Each error
    # matches its closed form within 5 SE over 20,000 fades.
    x = unit_symbols(20000, 4)
    no = 0.1  # 10 dB
    mses = []
    for csi, pilots in (("perfect", None), ("ls", 1), ("ls", 16)):
        ts.set_seed(7)
        channel = ts.RayleighBlockFadingChannel(csi=csi, num_pilots=pilots or 1)
        err = np.abs(to_complex(channel(x, snr_db=10.0)) - to_complex(x)) ** 2
        assert_mean(err, rayleigh_lmmse_error(no, pilots), what=f"{csi} {pilots}")
        mses.append(err.mean())
    perfect, ls1, ls16 = mses
    assert ls1 > ls16 > perfect
    assert rayleigh_lmmse_error(no, 16) / rayleigh_lmmse_error(no) < 1.15


def test_rayleigh_outputs_finite_in_deep_fades():
    x = unit_symbols(100000, 4)
    for equalizer in ("lmmse", "zf"):
        y, no_eff = ts.RayleighBlockFadingChannel(equalizer=equalizer, return_noise=True)(
            x, snr_db=-30.0
        )
        assert np.all(np.isfinite(numpy(y))) and np.all(np.isfinite(numpy(no_eff)))
    # MMSE output is bounded: |x_hat| <= |y| |h| / (|h|^2 + no) <= |y| / (2 sqrt(no))
    y, _ = ts.RayleighBlockFadingChannel(equalizer="lmmse", return_noise=True)(x, snr_db=20.0)
    assert np.max(np.abs(to_complex(y))) < 50


def test_ofdm_perfect_csi_high_snr_recovers_symbols():
    # each example its own slot spread over the band: its ~3 independent fades keep the
    # error far below a flat fade's (about 1e-3 at 40 dB)
    x = unit_symbols(1000, 64)
    channel = ts.OFDMChannel("tdl-a", csi="perfect", equalizer="lmmse", slot="per_example",
                             mapping="spread")
    y = channel(x, snr_db=40.0)
    mse = np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2)
    assert mse < 1e-3


@pytest.mark.parametrize(
    "model, resource_blocks, batch",
    # CDL draws cost per example: a wide band, whose frequency diversity lowers each
    # example's variance, needs fewer of them (the SE is taken over examples)
    [("rayleigh", 4, 8000), ("tdl-a", 4, 8000), ("tdl-d", 4, 8000), ("cdl-a", 38, 3500)],
)
def test_ofdm_channel_models_have_unit_average_gain(model, resource_blocks, batch):
    # Perfect-CSI ZF reports no / |H|^2 per resource element: recover |H|^2 (its mean does
    # not depend on the grid).
    # one slot, one channel draw per example: the examples are independent draws
    channel = ts.OFDMChannel(model, csi="perfect", equalizer="zf", return_noise=True,
                             num_resource_blocks=resource_blocks, slot="per_example",
                             mapping="spread")
    _, no_eff = channel(unit_symbols(batch, 16), snr_db=40.0)
    assert_mean(1e-4 / numpy(no_eff), 1.0, what=model)  # |H|^2 per symbol


def test_ofdm_ls_estimation_close_to_perfect_at_high_snr():
    x = unit_symbols(500, 64)
    mse = {}
    for csi in ("perfect", "ls"):
        ts.set_seed(3)
        y = ts.OFDMChannel("tdl-a", delay_spread=30e-9, csi=csi)(x, snr_db=30.0)
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
        _, no_eff = channel(unit_symbols(200, 12), snr_db=40.0)
        gain = np.log(1e-4 / numpy(no_eff))
        return np.mean(np.std(gain, axis=1))

    assert spread(0.0) < 1e-3
    assert spread(300.0) > 0.05


def test_equalizer_names_agree_across_layers():
    # "lmmse" everywhere; "mmse", the Rayleigh layer's old name, still loads
    assert ts.RayleighBlockFadingChannel().equalizer == "lmmse"
    assert ts.RayleighBlockFadingChannel(equalizer="mmse").equalizer == "lmmse"
    assert ts.OFDMChannel().equalizer == "lmmse"


def test_snr_tensor_per_example():
    # an SNR tensor of the backend (not only Python/NumPy values) sets each example's noise
    channel = ts.AWGNChannel(return_noise=True)
    _, no = channel(unit_symbols(4, 8), snr_db=tensor([0.0, 10.0, 20.0, 30.0], "float32"))
    np.testing.assert_allclose(numpy(no)[:, 0], [1, 0.1, 0.01, 0.001], rtol=1e-5)


@pytest.mark.tensorflow
def test_snr_tensor_inside_tf_function():
    import tensorflow as tf

    channel = ts.AWGNChannel(return_noise=True)
    f = tf.function(lambda x, s: channel(x, snr_db=s))
    _, no = f(unit_symbols(4, 8), tf.constant([0.0, 10.0, 20.0, 30.0]))
    np.testing.assert_allclose(no.numpy()[:, 0], [1, 0.1, 0.01, 0.001], rtol=1e-5)
