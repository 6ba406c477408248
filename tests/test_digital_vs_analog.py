"""The pieces of benchmarks/digital_vs_analog.py that its numbers rest on."""


import numpy as np
import pytest
from backend import gradient, numpy
from script_modules import load_benchmark

import tosc_sionna as ts


@pytest.fixture(scope="module")
def bench():
    # loaded by the tests, not at import: a benchmark that fails to import on a line fails
    # these tests there instead of interrupting the collection of the whole suite
    return load_benchmark("digital_vs_analog")


def test_every_operating_point_spends_exactly_n_channel_uses(bench):
    assert len(bench.OPERATING_POINTS) >= 1
    for n in sorted(bench.OPERATING_POINTS):
        check_operating_point(bench, n)


def check_operating_point(bench, n):
    assert len(bench.OPERATING_POINTS[n]) >= 3, n
    for b, r, m, k in bench.OPERATING_POINTS[n]:
        assert k % 2 == 0  # the encoder emits pairs of reals
        awgn = bench.digital_channel(b, r, m, "awgn").code_parameters(k)
        rayleigh = bench.digital_channel(b, r, m, "rayleigh").code_parameters(k)
        assert awgn["channel_uses"] == n
        assert rayleigh["channel_uses"] == n + bench.NUM_PILOTS  # as the analog LS link
        assert awgn["effective_code_rate"] == pytest.approx(r, abs=1e-9)


def test_quantizer_in_the_loop_forward_quantizes_and_gradient_is_identity(bench):
    layer = bench.QuantizerInTheLoop(num_bits=2, clip=1.4)
    x = np.random.default_rng(0).normal(0, 0.7, (64, 8)).astype(np.float32)
    y = numpy(layer(x, snr_db=10.0))
    np.testing.assert_array_equal(y, numpy(layer.quantize_values(x)))
    assert len(np.unique(y)) == 4  # 2 bits
    np.testing.assert_allclose(gradient(lambda v: 3.0 * layer(v, 10.0), x), 3.0)


def test_class_index_reference_is_exact_at_high_snr_and_chance_like_at_very_low(bench):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 400)
    predictions = np.where(rng.random(400) < 0.8, labels, (labels + 1) % 10)
    ts.set_seed(0)
    curve = bench.index_sweep(predictions, labels, 16, "awgn", [-15.0, 30.0], batch=200)
    assert curve["channel_uses"] == 16
    assert curve["effective_code_rate"] == pytest.approx(12 / 32)
    assert curve["clean_accuracy"] == pytest.approx(np.mean(predictions == labels))
    assert curve["accuracy"][1] == curve["clean_accuracy"]  # decoded bit-exactly
    assert curve["accuracy"][0] < 0.3  # at -15 dB the code fails


def test_cliff_is_where_the_curve_reaches_its_plateau(bench):
    snrs = [-10.0, -5.0, 0.0, 5.0, 10.0]
    assert bench.cliff_db(snrs, [0.1, 0.1, 0.5, 0.90, 0.90]) == pytest.approx(
        0.0 + (0.89 - 0.5) / 0.4 * 5.0)
    assert bench.cliff_db(snrs, [0.9] * 5) == -10.0  # flat: the whole range
    # a late dip below the plateau band resets the search above it
    assert bench.cliff_db(snrs, [0.9, 0.9, 0.7, 0.9, 0.9]) == pytest.approx(0.0 + 0.95 * 5.0)
    # against an error-free reference: a curve still climbing at the top has no cliff in range
    assert bench.cliff_db(snrs, [0.1, 0.3, 0.5, 0.7, 0.85], reference=0.9) is None
    assert bench.cliff_db(snrs, [0.1, 0.3, 0.5, 0.7, 0.89], reference=0.9) == pytest.approx(10.0)


def test_summary_takes_each_links_error_free_accuracy_from_awgn(bench):
    snrs = [0.0, 10.0, 20.0]

    def curve(kind, channel, acc, **extra):
        return {"kind": kind, "n": 16, "channel": channel, "label": kind, "snr_db": snrs,
                "accuracy": acc, **extra}

    point = {"num_bits": 2, "code_rate": 0.5, "modulation_order": 4}
    results = bench.summarize({"curves": [
        curve("analog", "awgn", [0.85, 0.90, 0.90]),
        curve("analog", "rayleigh", [0.60, 0.80, 0.89]),
        curve("digital", "awgn", [0.20, 0.91, 0.91], **point),
        curve("digital", "rayleigh", [0.10, 0.50, 0.80], **point),
    ]})
    rayleigh = [c for c in results["curves"] if c["channel"] == "rayleigh"]
    # analog students are trained per channel (own top SNR); a digital one serves both
    assert [c["error_free_accuracy"] for c in rayleigh] == [0.89, 0.91]
    assert rayleigh[0]["cliff_db"] == pytest.approx(10.0 + 0.08 / 0.09 * 10.0)
    assert rayleigh[1]["cliff_db"] is None
    margin = results["analog_vs_digital"]["n=16 awgn"]
    np.testing.assert_allclose(margin["analog_minus_best_digital"], [0.65, -0.01, -0.01])
    assert margin["analog_ahead_at_db"] == [0.0]
    assert results["analog_vs_digital"]["n=16 rayleigh"]["analog_ahead_at_db"] == snrs
