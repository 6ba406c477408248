"""The effective noise a channel layer reports is the error it makes (issue 11, item 1),
and the default OFDM grid is frequency selective (item 2)."""

import json

import keras
import numpy as np
import pytest
from backend import (
    BACKEND,
    complex_tensor,
    dtype_name,
    gradient,
    imag,
    numpy,
    real,
    sionna_normal,
    tensor,
)
from conftest import to_complex, unit_symbols
from monte_carlo import (
    assert_mean,
    assert_mean_known_se,
    check_power,
    mean_and_se,
    rayleigh_lmmse_error,
)
from sionna.phy import config as sionna_config
from sionna.phy.ofdm import ResourceGrid, tdl_freq_cov_mat

import tosc_sionna as ts
from tosc_sionna.channels.ofdm import LOS_ANGLE_OF_ARRIVAL
from tosc_sionna.channels.ofdm_grid import tdl_covariances

SNRS = (-10.0, 0.0, 10.0, 20.0)


def errors(channel, x, snr_db, calls=1):
    """Squared errors and reported effective noise, ``calls`` batches of ``x``."""
    err, no_eff = [], []
    for _ in range(calls):
        y, ne = channel(x, snr_db=snr_db)
        err.append(np.abs(to_complex(y) - to_complex(x)) ** 2)
        no_eff.append(numpy(ne))
    return np.concatenate(err), np.concatenate(no_eff)


def assert_reports_its_error(err, no_eff, what=""):
    """The reported effective noise is the mean squared error: E[err - no_eff] = 0 within
    5 SE (taken over examples), a 10% miscalibration being visible (monte_carlo.py)."""
    assert_mean(err - no_eff, 0.0, scale=no_eff.mean(), what=what)


@pytest.mark.parametrize("csi, pilots", [("perfect", None), ("ls", 1), ("ls", 4), ("ls", 16)])
def test_rayleigh_lmmse_reports_its_error(csi, pilots):
    x = unit_symbols(50000, 4)  # 50,000 fades per SNR: 8 SE <= 10% of the error at 20 dB
    channel = ts.RayleighBlockFadingChannel(
        equalizer="lmmse", csi=csi, num_pilots=pilots or 1, return_noise=True
    )
    for snr in SNRS:
        err, no_eff = errors(channel, x, snr)
        assert_reports_its_error(err, no_eff, what=f"{snr} dB")
        # never worse than sending nothing (the old LS equalizer was, at -10 dB): the error
        # is its closed form, which is below 1
        closed_form = rayleigh_lmmse_error(10 ** (-snr / 10), pilots)
        assert_mean(err, closed_form, what=f"{snr} dB")
        assert closed_form < 1.0


def test_rayleigh_ls_was_miscalibrated_and_lmmse_is_better():
    # The raw LS average treats h_ls = h + w as the channel: at -10 dB with 4
    # pilots its MMSE-equalized error is 1.01 against a claimed 0.81. The LMMSE
    # estimate's error (0.975) is below 1 and equals what the layer reports.
    x = unit_symbols(4000, 4)
    err, no_eff = errors(
        ts.RayleighBlockFadingChannel(csi="ls", num_pilots=4, return_noise=True), x, -10.0
    )
    closed_form = rayleigh_lmmse_error(10.0, 4)
    assert closed_form == pytest.approx(0.975, abs=1e-3)
    mean, se = mean_and_se(err)  # SE 0.002 over 4,000 fades: 1.01 would be 18 SE away
    assert abs(mean - closed_form) <= 5 * se and mean + 5 * se < 0.99
    assert_reports_its_error(err, no_eff)


@pytest.mark.parametrize("csi", ["perfect", "ls"])
def test_rayleigh_zf_is_calibrated_given_the_estimate(csi):
    # ZF's mean error over fades is infinite (E 1/|h|^2 diverges), so the
    # aggregate ratio cannot be held; what ZF promises is the error variance
    # of each symbol given the channel estimate: E[|x_hat - x|^2 / no_eff] = 1
    # (within 5 SE over 10,000 fades).
    x = unit_symbols(10000, 4)
    channel = ts.RayleighBlockFadingChannel(
        equalizer="zf", csi=csi, num_pilots=4, return_noise=True
    )
    for snr in SNRS:
        err, no_eff = errors(channel, x, snr)
        assert_mean(err / no_eff, 1.0, what=f"{snr} dB")
        assert np.all(np.isfinite(no_eff))


def by_slot(values, channel):
    """``[batch, n]`` per-example values -> ``[slots, E n]``: the examples of one slot share
    its channel, so the slots are the independent draws (batch a multiple of E)."""
    per_slot = channel.examples_per_slot
    assert len(values) % per_slot == 0
    return np.asarray(values).reshape(len(values) // per_slot, -1)


@pytest.mark.parametrize("csi", ["perfect", "ls"])
def test_ofdm_lmmse_reports_its_error_per_example_slots(csi):
    # 800 examples (2 calls) per SNR: at 20 dB the error varies most across examples, and
    # 8 SE there is 7% of the error (monte_carlo.py asks for at most 10%)
    x = unit_symbols(400, 64)
    channel = ts.OFDMChannel("tdl-a", csi=csi, equalizer="lmmse", return_noise=True,
                             slot="per_example", mapping="spread")
    for snr in SNRS:
        err, no_eff = errors(channel, x, snr, calls=2)
        assert_reports_its_error(err, no_eff, what=f"{snr} dB")


@pytest.mark.parametrize("csi, interpolation", [("perfect", "lmmse"), ("ls", "lmmse")])
def test_shared_slot_reports_its_error_within_3_percent(csi, interpolation):
    # the default layout: 85 examples of n = 64 per slot, one channel per slot. 300 slots
    # per SNR (5 calls of 60): the slots are the independent draws
    channel = ts.OFDMChannel("tdl-a", csi=csi, interpolation=interpolation,
                             return_noise=True)
    channel.build((None, 128))
    assert channel.examples_per_slot == 85
    x = unit_symbols(85 * 60, 64)
    for snr in SNRS:
        err, no_eff = errors(channel, x, snr, calls=5)
        err, no_eff = by_slot(err, channel), by_slot(no_eff, channel)
        assert_reports_its_error(err, no_eff, what=f"{snr} dB")
        ratio = err.mean() / no_eff.mean()
        assert abs(ratio - 1.0) <= 0.03, (snr, ratio)


def test_ofdm_zf_is_calibrated_given_the_estimate():
    x = unit_symbols(400, 64)
    channel = ts.OFDMChannel("tdl-c", equalizer="zf", return_noise=True, slot="per_example")
    for snr in (0.0, 20.0):
        err, no_eff = errors(channel, x, snr)
        assert_mean(err / no_eff, 1.0, what=f"{snr} dB")  # within 5 SE over 400 examples


def test_ofdm_lmmse_estimate_beats_linear_interpolation_at_low_snr():
    # Sionna's LS + linear interpolation is kept as an option; its reported
    # noise is not calibrated, and the LMMSE estimate makes a smaller error
    # (paired: the same draws for both; 5 SE below 0.9 times the linear one's).
    x = unit_symbols(400, 64)
    err = {}
    for interpolation in ("lmmse", "lin"):
        ts.set_seed(5)
        channel = ts.OFDMChannel("tdl-a", interpolation=interpolation, return_noise=True,
                                 slot="per_example")
        err[interpolation] = errors(channel, x, 0.0)[0]
    mean, se = mean_and_se(err["lmmse"] - 0.9 * err["lin"])
    assert mean + 5 * se < 0


def perfect_csi_twin(channel):
    """The same layer with perfect CSI: same grid and mapping, but building it skips the
    pilot LMMSE estimator (an eigendecomposition of the pilots' covariance, seconds)."""
    return ts.OFDMChannel.from_config({**channel.get_config(), "csi": "perfect"})


def layer_frequency_covariance(channel):
    """The frequency covariance ``[fft, fft]`` the layer's LMMSE estimator uses (a TDL model's,
    from the layer's own Sionna model object)."""
    return tdl_covariances(channel.channel_model[-1].upper(), channel._model, channel.grid,
                           channel.carrier_frequency, channel.speed, LOS_ANGLE_OF_ARRIVAL)[1]


def first_example_channel(channel, slots):
    """The channel at the symbols of each slot's first example, ``[slots, n]``: one
    independent draw per slot (a slot's examples share its channel)."""
    h = numpy(channel._generate(slots)).reshape(slots, -1)
    return h[:, channel.symbol_positions @ [channel.grid.fft_size, 1]]


def check_first_last_correlation(channel, draws=4000):
    """Correlation of the channel at an example's first and last symbols: the sample one
    matches the model's closed form (Sionna's TDL frequency covariance) within 5 SE, SE =
    (1 - rho^2) / sqrt(2 draws) for jointly complex Gaussian gains; returns the closed form."""
    channel.build((None, 32))
    h = np.concatenate([first_example_channel(channel, 1000) for _ in range(draws // 1000)])
    first, last = h[:, 0], h[:, -1]
    sample = abs(np.mean(first * last.conj())) / np.sqrt(
        np.mean(np.abs(first) ** 2) * np.mean(np.abs(last) ** 2)
    )
    r_f = layer_frequency_covariance(channel)
    i, j = channel.symbol_positions[0, 1], channel.symbol_positions[-1, 1]
    rho = abs(r_f[i, j]) / np.sqrt(r_f[i, i].real * r_f[j, j].real)
    # scale 1: a correlation coefficient off by 0.1 is seen
    assert_mean_known_se(sample, rho, (1 - rho**2) / np.sqrt(2 * len(h)), scale=1.0)
    return rho


@pytest.mark.parametrize("model", ["tdl-a", "tdl-c"])
def test_each_layout_sees_the_frequency_selectivity_it_claims(model):
    default = ts.OFDMChannel(model)
    assert default.subcarrier_spacing == 30e3 and default.num_ofdm_symbols == 14
    assert (default.slot, default.mapping) == ("shared", "contiguous")
    # the default: a narrowband allocation, 16 adjacent subcarriers (480 kHz), nearly flat
    channel = perfect_csi_twin(default)
    channel.build((None, 32))
    assert channel.grid.fft_size >= 4 * 12  # at least 4 resource blocks
    positions = channel.symbol_positions
    assert np.ptp(positions[:, 1]) == 15 and np.ptp(positions[:, 0]) == 0
    assert check_first_last_correlation(channel) > 0.7
    # a comb over the shared slot, or a slot of its own spread over the band: the
    # example's first and last symbols far apart in frequency
    for kwargs in ({"mapping": "spread"}, {"slot": "per_example", "mapping": "spread"}):
        spread = ts.OFDMChannel(model, csi="perfect", **kwargs)
        spread.build((None, 32))
        positions = spread.symbol_positions
        assert np.ptp(positions[:, 1]) > 0.8 * spread.grid.fft_size, kwargs
        assert check_first_last_correlation(spread) < 0.5, kwargs
    assert len(np.unique(positions[:, 0])) == 12  # per example: every data OFDM symbol


def frequency_covariance_from_table(params, subcarrier_spacing, fft_size, delay_spread):
    """``R_f[u, v] = sum_l P_l exp(-2j pi tau_l df (u - v))`` of a TR 38.901 TDL table (Sionna's
    JSON: normalized delays, powers in dB; a LoS table's first two entries are one path)."""
    delays = np.asarray(params["delays"], np.float64) * delay_spread
    powers = 10.0 ** (np.asarray(params["powers"], np.float64) / 10.0)
    if params["los"]:
        powers = np.concatenate([[powers[0] + powers[1]], powers[2:]])
        delays = delays[1:]
    powers = powers / powers.sum()
    lag = np.arange(fft_size)[:, None] - np.arange(fft_size)[None, :]
    return np.sum(powers * np.exp(-2j * np.pi * subcarrier_spacing * lag[..., None] * delays),
                  axis=-1)


@pytest.mark.parametrize("letter", ["A", "B", "C", "D", "E"])
def test_tdl_frequency_covariance_is_sionnas(letter):
    # the LMMSE estimator's frequency covariance (from the layer's model object) is Sionna's
    # closed form for the same TDL profile; a 300 ns delay spread turns the phases
    channel = ts.OFDMChannel(f"tdl-{letter.lower()}", delay_spread=300e-9, csi="perfect",
                             num_resource_blocks=4)
    channel.build((None, 32))
    rg = channel.grid
    r_f = layer_frequency_covariance(channel)
    assert r_f.shape == (rg.fft_size, rg.fft_size)
    if letter == "A" and BACKEND == "torch":
        # Sionna 2.2's tdl_freq_cov_mat reads the TR 38.901 V19.2 tables whatever the
        # model's spec_version; the layer's models are pinned to V16.1 (Sionna 1.2's
        # tables): compare TDL-A with the V16.1 table itself
        from sionna.phy.channel.tr38901 import models

        params = json.loads(models.parameter_file("TDL-A.json", "16.1").read_text())
        expected = frequency_covariance_from_table(params, rg.subcarrier_spacing, rg.fft_size,
                                                   300e-9)
    else:
        expected = numpy(tdl_freq_cov_mat(letter, rg.subcarrier_spacing, rg.fft_size, 300e-9,
                                          precision="double"))
    # the model holds its delays in float32 (single precision): phases to ~1e-6
    np.testing.assert_allclose(r_f, expected, rtol=0, atol=1e-5)
    # not a constant matrix: the check would see a wrong delay or power
    assert np.ptp(np.abs(r_f[0])) > 0.05


@pytest.mark.parametrize("mapping", ["contiguous", "spread"])
@pytest.mark.parametrize("slot", ["shared", "per_example"])
def test_positions_are_distinct_data_elements(slot, mapping):
    channel = ts.OFDMChannel(num_resource_blocks=4, slot=slot, mapping=mapping)
    channel.build((None, 2 * 200))  # more symbols than subcarriers
    pos = channel.slot_positions.reshape(-1, 2)
    assert channel.slot_positions.shape == (channel.examples_per_slot, 200, 2)
    assert channel.examples_per_slot == (1 if slot == "per_example" else 12 * 48 // 200)
    assert len({tuple(p) for p in pos}) == len(pos)  # no element used twice
    assert not set(pos[:, 0]) & {2, 11}  # no pilot OFDM symbols


def test_diversity_is_the_number_of_independent_fades_it_measures():
    # (tr R)^2 / tr(R^2) is E[g]^2 / Var[g] of an example's mean channel gain g:
    # checked against draws, and ordered as the layouts' spans say
    looks = {}
    for name, kwargs in {"contiguous": {}, "spread": {"mapping": "spread"},
                         "per_example": {"slot": "per_example", "mapping": "spread"}}.items():
        channel = ts.OFDMChannel("tdl-a", csi="perfect", **kwargs)
        channel.build((None, 128))
        looks[name] = channel.diversity()
        h = np.concatenate([first_example_channel(channel, 2000) for _ in range(2)])
        gain = np.mean(np.abs(h) ** 2, axis=1)
        measured = gain.mean() ** 2 / gain.var()
        # the ratio estimate from 4,000 draws: within 10%
        assert measured == pytest.approx(diversity_of_first(channel), rel=0.1), name
    assert looks["contiguous"]["mean"] < 2.0 < looks["spread"]["mean"]
    assert looks["spread"]["mean"] == pytest.approx(looks["per_example"]["mean"], rel=0.05)
    flat = ts.OFDMChannel("rayleigh", csi="perfect")
    flat.build((None, 128))
    assert flat.diversity()["max"] == pytest.approx(1.0)


def diversity_of_first(channel):
    from tosc_sionna.channels.ofdm_grid import effective_diversity

    r_t, r_f = channel._covariances()
    return effective_diversity(r_t, r_f, channel.slot_positions[0])


def test_bandwidth_ratio_with_and_without_overhead():
    channel = perfect_csi_twin(ts.OFDMChannel(slot="per_example"))  # the default grid
    channel.build((None, 32))
    ratio = channel.bandwidth_ratio(784)
    assert ratio["data"] == pytest.approx(16 / 784)
    pilots = 2 * channel.grid.fft_size  # two Kronecker pilot OFDM symbols
    assert ratio["with_pilots"] == pytest.approx((16 + pilots) / 784)
    assert ratio["grid"] == pytest.approx(14 * channel.grid.fft_size / 784)
    # the shared slot: 5,472 data elements hold 85 examples of n = 64; a batch of 256
    # fills 4 slots (the last with 1 example), 4 x 912 pilots
    shared = ts.OFDMChannel()
    shared.build((None, 128))
    assert shared.examples_per_slot == 85
    ratio = shared.bandwidth_ratio(784, batch_size=256)
    assert ratio["data"] == pytest.approx(64 / 784)
    assert ratio["with_pilots"] == pytest.approx((64 + 4 * 912 / 256) / 784)
    assert ratio["with_pilots"] / ratio["data"] <= 1.25  # the acceptance
    assert ratio["grid"] == pytest.approx(4 * 14 * 456 / 256 / 784)
    full = shared.bandwidth_ratio(784)
    assert full["with_pilots"] == pytest.approx((64 + 912 / 85) / 784)
    with pytest.raises(ValueError, match="batch_size"):
        shared.bandwidth_ratio(784, batch_size=0)
    rayleigh = ts.RayleighBlockFadingChannel(csi="ls", num_pilots=4)
    rayleigh.build((None, 32))
    assert rayleigh.channel_uses == 20


@pytest.mark.parametrize("interpolation", ["lmmse", "lin"])
def test_user_supplied_grid_with_guards(interpolation):
    rg = ResourceGrid(
        num_ofdm_symbols=14, fft_size=76, subcarrier_spacing=30e3,
        num_guard_carriers=(2, 1), dc_null=True, pilot_pattern="kronecker",
        pilot_ofdm_symbol_indices=[3, 10],
    )
    channel = ts.OFDMChannel("tdl-c", resource_grid=rg, interpolation=interpolation,
                             return_noise=True)
    x = unit_symbols(200, 40)
    err, no_eff = errors(channel, x, 40.0)
    assert err.shape == (200, 40) and np.all(np.isfinite(no_eff))
    assert err.mean() < 0.02
    occupied = channel.symbol_positions[:, 1]
    assert occupied.min() >= 2 and occupied.max() <= 74 and 38 not in occupied  # guards, DC


def test_cdl_lmmse_uses_sampled_covariances_without_moving_the_global_generator():
    ts.set_seed(9)
    reference = sionna_normal([3])
    ts.set_seed(9)
    channel = ts.OFDMChannel("cdl-b", num_resource_blocks=4, return_noise=True)
    channel.build((None, 32))
    np.testing.assert_array_equal(sionna_normal([3]), reference)
    err, no_eff = errors(channel, unit_symbols(500, 16), 10.0, calls=2)
    # CDL is not exactly time x frequency separable: close, not exact. Allowed: a 5% model
    # error (measured: 0.2%) plus 5 SE over 1,000 examples (SE 0.9%)
    mean, se = mean_and_se(err - no_eff)
    check_power(se, no_eff.mean())
    assert abs(mean) <= 0.05 * no_eff.mean() + 5 * se, (mean, se, no_eff.mean())


def test_noise_variance_instead_of_snr():
    x = unit_symbols(64, 8)
    for channel in (ts.AWGNChannel(return_noise=True),
                    ts.RayleighBlockFadingChannel(csi="ls", return_noise=True)):
        ts.set_seed(2)
        y_snr, no_snr = channel(x, snr_db=10.0)
        ts.set_seed(2)
        y_no, no_no = channel(x, no=0.1)
        np.testing.assert_allclose(numpy(y_no), numpy(y_snr), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(numpy(no_no), numpy(no_snr), rtol=1e-5)
    channel = ts.AWGNChannel(return_noise=True)
    _, no = channel(x, no=np.full(64, 0.01, np.float32))
    np.testing.assert_allclose(numpy(no), 0.01, rtol=1e-5)
    for bad in (0.0, -1.0, float("nan"), 1e-9):
        with pytest.raises(ValueError, match="no|snr_db"):
            channel(x, no=bad)
    with pytest.raises(ValueError, match="exactly one"):
        channel(x, snr_db=10.0, no=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        channel(x)


def test_sionna_precision_follows_config():
    x = unit_symbols(16, 8)
    old = sionna_config.precision
    try:
        sionna_config.precision = "double"
        channel = ts.RayleighBlockFadingChannel(csi="ls", return_noise=True)
        y, no_eff = channel(x, snr_db=40.0)
        assert dtype_name(channel._fading.cdtype) == "complex128"
        assert dtype_name(y) == "float32" and dtype_name(no_eff) == "float32"
        assert np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2) < 1e-3
        ofdm = ts.OFDMChannel(num_resource_blocks=4)
        assert dtype_name(ofdm(x, snr_db=40.0)) == "float32"
        assert dtype_name(ofdm._apply.cdtype) == "complex128"
    finally:
        sionna_config.precision = old


def test_configs_saved_before_0_2_keep_their_grid():
    old = ts.OFDMChannel(fft_size=None).get_config()
    for key in ("mapping", "num_resource_blocks"):
        del old[key]
    old["interpolation"] = "lin"
    revived = ts.OFDMChannel.from_config(old)
    revived.build((None, 32))
    assert revived.mapping == "contiguous"
    assert revived.grid.fft_size == 2  # ceil(16 / 12 data OFDM symbols)
    assert revived.get_config()["num_resource_blocks"] is None


def test_lmmse_error_variance_without_cancellation_at_high_snr():
    # err = prior - sum |m|^2 / (lam + no) cancels in float32 at 60 dB; the
    # layer evaluates it in a stable form: compare with float64.
    channel = ts.OFDMChannel("tdl-c", num_resource_blocks=4, return_noise=True)
    _, no_eff = channel(unit_symbols(64, 16), snr_db=60.0)
    estimator = channel._lmmse
    assert dtype_name(estimator._project) == "complex64"
    y_p = tensor(np.zeros([1, estimator._project.shape[0]]), "complex64")
    _, err32 = estimator(y_p, tensor([1e-6], "float32"))
    old = sionna_config.precision
    try:
        sionna_config.precision = "double"
        ref = ts.OFDMChannel("tdl-c", num_resource_blocks=4, return_noise=True)
        ref.build((None, 32))
        y_p = tensor(np.zeros([1, ref._lmmse._project.shape[0]]), "complex128")
        _, err64 = ref._lmmse(y_p, tensor([1e-6], "float64"))
    finally:
        sionna_config.precision = old
    np.testing.assert_allclose(numpy(err32), numpy(err64), rtol=1e-3)
    assert np.all(np.isfinite(numpy(no_eff)))


def _estimator_outputs(estimator, seed=0):
    rng = np.random.default_rng(seed)
    k = estimator._project.shape[0]
    y_p = rng.normal(size=(3, k)) + 1j * rng.normal(size=(3, k))
    h_hat, err = estimator(tensor(y_p, "complex64"), tensor([0.01, 0.3, 3.0], "float32"))
    return numpy(h_hat), numpy(err)


@pytest.mark.parametrize("model", ["tdl-a", "cdl-b"])
def test_lmmse_kronecker_decomposition_equals_the_full_one(model):
    # the default pilots are 2 OFDM symbols x every subcarrier: the estimator factors R_pp
    # (in any pilot order); a pattern with one pilot missing is not a product and goes
    # through the whole covariance's eigh
    from tosc_sionna.channels import ofdm_grid

    channel = ts.OFDMChannel(model, num_resource_blocks=4)
    channel.build((None, 32))
    _, pilots, values = ofdm_grid.grid_positions(channel.grid)
    assert ofdm_grid._kronecker_factors(pilots) is not None
    assert ofdm_grid._kronecker_factors(pilots[1:]) is None
    r_t, r_f = channel._covariances()
    targets = channel.slot_positions.reshape(-1, 2)
    fast = ofdm_grid.PilotLMMSEEstimator(r_t, r_f, pilots, values, targets)
    lam, u, m = ofdm_grid._full_decomposition(r_t, r_f, pilots, targets)
    lam_k, u_k, m_k = ofdm_grid._kronecker_decomposition(
        r_t, r_f, *ofdm_grid._kronecker_factors(pilots), targets)
    assert lam.size == lam_k.size == fast.rank
    np.testing.assert_allclose(np.sort(lam_k), lam, rtol=1e-6, atol=1e-9 * lam.max())
    # the projector onto the signal space and R_dp U U^H are basis-free
    np.testing.assert_allclose(u_k @ u_k.conj().T, u @ u.conj().T, atol=1e-8)
    np.testing.assert_allclose(m_k @ u_k.conj().T, m @ u.conj().T, atol=1e-8)

    full = ofdm_grid.PilotLMMSEEstimator(r_t, r_f, pilots, values, targets, factor=False)
    for a, b in zip(_estimator_outputs(fast), _estimator_outputs(full), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # pilots (and their values) listed in another order: the same estimator, up to the order
    # of its pilot inputs
    order = np.random.default_rng(1).permutation(len(pilots))
    shuffled = ofdm_grid.PilotLMMSEEstimator(r_t, r_f, pilots[order], values[order], targets)
    k = len(pilots)
    y_p = np.random.default_rng(2).normal(size=(2, k)) + 1j * np.random.default_rng(3).normal(
        size=(2, k))
    no = tensor([1e-7, 0.5], "float32")  # 1e-7: the error floor (the high-SNR form)
    for a, b in zip(fast(tensor(y_p, "complex64"), no),
                    shuffled(tensor(y_p[:, order], "complex64"), no), strict=True):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # about 8 s: the 3,276-subcarrier covariance's eigenpairs
def test_lmmse_estimator_builds_for_a_100_mhz_carrier():
    # 273 resource blocks (3,276 subcarriers) with 4 pilot symbols: 13,104 pilots, whose
    # 13,104^2 covariance and its eigendecomposition did not fit in a test (2.7 GB, hours)
    channel = ts.OFDMChannel("tdl-a", num_resource_blocks=273,
                             pilot_ofdm_symbol_indices=(2, 5, 8, 11), return_noise=True)
    x = unit_symbols(64, 16)
    y, no_eff = channel(x, snr_db=10.0)
    assert channel._lmmse._project.shape[0] == 4 * 3276
    assert channel._lmmse.rank <= 4 * 23  # pilot symbols x TDL-A's paths
    err = np.mean(np.abs(to_complex(y) - to_complex(x)) ** 2)
    assert 0.85 < err / np.mean(numpy(no_eff)) < 1.15  # one slot: about 3% spread


@pytest.mark.parametrize("equalizer", ["lmmse", "zf"])
def test_equalizer_gradient_is_exact_and_quiet(equalizer, caplog, recwarn):
    # the gradient through the estimate (the pilots' part of the grid is connected to the
    # encoder's symbols) once logged "discard the imaginary part" at every training trace
    # (TensorFlow logs it; torch warns "discards the imaginary part")
    from tosc_sionna.channels.base import equalize

    rng = np.random.default_rng(0)
    parts = rng.normal(size=(2, 5))  # Re, Im of h_hat, float64
    y = tensor(rng.normal(size=5) + 1j * rng.normal(size=5))
    err_var, no = tensor(0.1, "float64"), tensor(0.2, "float64")

    def loss(p):
        x_hat, no_eff = equalize(y, complex_tensor(p[0], p[1]), err_var, no, equalizer)
        return keras.ops.sum(real(x_hat) + 2 * imag(x_hat)) + keras.ops.sum(no_eff)

    with caplog.at_level("WARNING", logger="tensorflow"):
        grad = gradient(loss, parts)
    assert not [r for r in caplog.records if "imaginary part" in r.getMessage()]
    assert not [w for w in recwarn if "imaginary part" in str(w.message)]
    numeric = np.zeros_like(grad)
    for i in np.ndindex(grad.shape):  # central differences in float64
        step = np.zeros(grad.shape)
        step[i] = 1e-6
        numeric[i] = (numpy(loss(tensor(parts + step))) - numpy(loss(tensor(parts - step)))) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("letter", ["A", "B", "C", "D", "E"])
def test_static_tdl_response_is_sionnas(letter):
    # a static TDL layer computes its response from the path gains and one matrix of
    # delay phases made at build; the same draw through Sionna's cir_to_ofdm_channel
    # (exponentials recomputed per draw) gives the same response
    from sionna.phy.channel import cir_to_ofdm_channel

    from tosc_sionna.backends import ops

    channel = ts.OFDMChannel(f"tdl-{letter.lower()}", csi="perfect", num_resource_blocks=4)
    channel.build((None, 32))
    assert channel._delay_phases is not None  # the precomputed path, not Sionna's fallback
    rg = channel.grid
    ops.seed_sionna(7)
    h = numpy(channel._generate(3))
    ops.seed_sionna(7)
    a, tau = channel._model(3, 1, 1.0 / rg.ofdm_symbol_duration)
    expected = numpy(cir_to_ofdm_channel(channel._frequencies, a, tau, normalize=False))
    assert h.shape == (3, 1, 1, 1, 1, rg.num_ofdm_symbols, rg.fft_size)
    # constant over the slot's OFDM symbols (speed 0), and Sionna's response on each;
    # Sionna's float32 phases (2 pi f tau up to ~100 rad) differ from the float64
    # matrix by ~1e-5 rad
    np.testing.assert_allclose(h, np.broadcast_to(expected, h.shape), rtol=0, atol=2e-5)
    assert np.ptp(np.abs(h[0, 0, 0, 0, 0, 0])) > 0.1  # frequency selective, not flat


@pytest.mark.parametrize("slot, mapping", [("shared", "contiguous"), ("per_example", "spread")])
def test_slot_grid_is_sionnas_resource_grid_mapper(slot, mapping):
    # the layer maps a slot's symbols and pilots with one gather and one addition; Sionna's
    # ResourceGridMapper, given the same symbols at the same data elements, makes the same grid
    from sionna.phy.ofdm import ResourceGridMapper

    from tosc_sionna.channels.ofdm_grid import grid_positions

    channel = ts.OFDMChannel("tdl-a", num_resource_blocks=4, slot=slot, mapping=mapping)
    channel.build((None, 2 * 24))
    rg = channel.grid
    data, _, _ = grid_positions(rg)
    rng = np.random.default_rng(0)
    used = channel.slot_positions.reshape(-1, 2)  # the slot's symbols, example-major
    s = (rng.normal(size=(2, len(used))) + 1j * rng.normal(size=(2, len(used))))
    s = s.astype(np.complex64)
    element = {tuple(p): i for i, p in enumerate(data)}
    d = np.zeros((2, len(data)), np.complex64)  # the mapper's data vector: zeros elsewhere
    d[:, [element[tuple(p)] for p in used]] = s
    expected = numpy(ResourceGridMapper(rg)(tensor(d[:, None, None, :])))
    got = numpy(channel._map_to_grid(tensor(s)))
    assert got.shape == expected.shape == (2, 1, 1, rg.num_ofdm_symbols, rg.fft_size)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    assert np.count_nonzero(expected[0, 0, 0]) > len(used)  # the pilots are there too
