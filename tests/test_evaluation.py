"""Accuracy-vs-SNR sweep and plot, on a real (quickly trained) link."""

import h5py
import keras
import numpy as np
import pytest
from backend import numpy
from conftest import SliceRecorder

import tosc_sionna as ts
from tosc_sionna.data import load_dataset, load_fashion_mnist
from tosc_sionna.evaluation import (
    accuracy_vs_snr,
    format_table,
    plot_accuracy_vs_snr,
    wilson_interval,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ts.set_seed(0)
    x, y = load_fashion_mnist("train")
    link = ts.make_link(ts.RayleighBlockFadingChannel(return_noise=True), num_symbols=8,
                        width=8, hidden_units=(64,), seed=0, separable=False, stochastic=False)
    link.compile(optimizer=keras.optimizers.Adam(2e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # 96 steps: enough for batch norm's moving statistics (momentum 0.9) to settle
    link.fit(x[:4096], y[:4096], batch_size=128, epochs=3, verbose=0)
    path = tmp_path_factory.mktemp("link") / "link.keras"
    link.save(path)
    return link, path


def test_sweep_improves_with_snr_and_reloads(trained, tmp_path):
    link, path = trained
    x, y = load_fashion_mnist("test")
    x, y = x[:1000], y[:1000]
    ts.set_seed(1)
    sweep = accuracy_vs_snr(link, x, y, [-20.0, 0.0, 20.0], draws=2)
    assert sweep["snr_db"] == [-20.0, 0.0, 20.0] and len(sweep["accuracy"]) == 3
    assert len(sweep["accuracy_draws"][0]) == 2 and sweep["num_examples"] == 1000
    assert sweep["accuracy"][2] > 0.5  # chance is 0.1
    assert sweep["accuracy"][0] < sweep["accuracy"][2]
    assert all(s > 0 for s in sweep["accuracy_std"][:2])  # draws differ in the channel
    for draws, acc, std in zip(sweep["accuracy_draws"], sweep["accuracy"],
                               sweep["accuracy_std"], strict=True):
        assert std == pytest.approx(abs(draws[0] - draws[1]) / np.sqrt(2))  # ddof = 1
        assert acc == pytest.approx(np.mean(draws))
    for acc, se, (low, high) in zip(sweep["accuracy"], sweep["accuracy_se"],
                                    sweep["accuracy_ci95"], strict=True):
        assert se == pytest.approx(np.sqrt(acc * (1 - acc) / 1000))
        assert low < acc < high and high - low == pytest.approx(2 * 1.96 * se, rel=0.05)
    assert sweep["sample_encoder"] is False and "accuracy_ci95" in sweep["error_bars"]
    # a saved student reloads and evaluates to the same numbers for the same seed
    loaded = keras.models.load_model(path)
    ts.set_seed(1)
    assert accuracy_vs_snr(loaded, x, y, [-20.0, 0.0, 20.0], draws=2) == sweep
    table = format_table(sweep, reference=0.95)
    assert "20.0" in table and "0.9500" in table and "95% CI" in table
    low, high = sweep["accuracy_ci95"][2]
    assert f"[{low:.4f}, {high:.4f}]" in table
    import matplotlib

    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # stands for a notebook's inline backend, which must stay
    try:
        plot_accuracy_vs_snr({"rayleigh": sweep}, tmp_path / "acc.png", reference=0.95)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_rejects_bad_input(trained):
    link, _ = trained
    x, y = load_fashion_mnist("test")
    with pytest.raises(ValueError, match="NaN or inf"):
        accuracy_vs_snr(link, x[:10], y[:10], [float("nan")])
    with pytest.raises(ValueError, match="draws"):
        accuracy_vs_snr(link, x[:10], y[:10], [0.0], draws=0)
    with pytest.raises(ValueError, match="labels"):
        accuracy_vs_snr(link, x[:10], y[:9], [0.0])
    with pytest.raises(ValueError, match="batch_size"):
        accuracy_vs_snr(link, x[:10], y[:10], [0.0], batch_size=0)
    with pytest.raises(TypeError, match="uint8 pixels"):
        accuracy_vs_snr(link, (x[:10] * 255).astype(np.int32), y[:10], [0.0])


def test_sweep_of_uint8_pixels_reads_one_batch_at_a_time(trained, tmp_path):
    # an ImageNet-size split must not be converted to float32 whole: the sweep reads and
    # converts a batch at a time, and gives the numbers the float images give
    link, _ = trained
    raw, labels, _ = load_dataset("fashion-mnist", "test")
    pixels = SliceRecorder(np.asarray(raw[:1100]))
    y = np.asarray(labels[:1100])
    ts.set_seed(4)
    from_pixels = accuracy_vs_snr(link, pixels, y, [0.0, 10.0], draws=2, batch_size=256)
    # every image once per SNR and draw (Keras reads the first two batches twice to type them)
    assert max(pixels.reads) == 256
    assert 2 * 2 * 1100 <= sum(pixels.reads) <= 2 * 2 * (1100 + 2 * 256)
    ts.set_seed(4)
    x = load_fashion_mnist("test")[0][:1100]
    assert accuracy_vs_snr(link, x, y, [0.0, 10.0], draws=2, batch_size=256) == from_pixels
    # ... and the numbers of a sweep by hand over the whole float array (the sweep before
    # it read batches): the results files stay reproducible
    ts.set_seed(4)
    by_hand = []
    for snr in (0.0, 10.0):
        link.set_eval_snr(snr)
        by_hand.append([float(np.mean(np.argmax(link.predict(x, batch_size=256, verbose=0),
                                                -1) == y)) for _ in range(2)])
    assert by_hand == from_pixels["accuracy_draws"]
    # a memory map and an h5py dataset of the same pixels give the same numbers
    memmap = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8,
                                       shape=pixels.pixels.shape)
    memmap[:] = pixels.pixels
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["x"] = pixels.pixels
    with h5py.File(tmp_path / "x.h5", "r") as f:
        for stored in (memmap, f["x"]):
            ts.set_seed(4)
            assert accuracy_vs_snr(link, stored, y, [0.0, 10.0], draws=2,
                                   batch_size=256) == from_pixels


def test_wilson_interval_against_the_formula():
    z = 1.959964
    for p, n in [(0.93, 10_000), (0.5, 100), (0.1, 37), (0.999, 2000)]:
        center = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert wilson_interval(p, n) == pytest.approx((center - half, center + half), rel=1e-9)
    # 93% on 10,000 images: standard error 0.26 points, 95% interval about +-0.50 points
    low, high = wilson_interval(0.93, 10_000)
    assert (high - low) / 2 == pytest.approx(1.96 * np.sqrt(0.93 * 0.07 / 1e4), rel=0.01)
    assert 0.0049 < (high - low) / 2 < 0.0051
    # edge cases stay in [0, 1] and are not degenerate
    assert wilson_interval(1.0, 50)[1] == pytest.approx(1.0) and wilson_interval(1.0, 50)[0] < 0.95
    assert wilson_interval(0.0, 50)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(0.0, 50)[1] > 0.05
    with pytest.raises(ValueError):
        wilson_interval(0.5, 0)
    with pytest.raises(ValueError):
        wilson_interval(1.5, 10)


def test_one_draw_has_no_channel_spread(trained):
    link, _ = trained
    x, y = load_fashion_mnist("test")
    sweep = accuracy_vs_snr(link, x[:200], y[:200], [10.0], draws=1)
    assert sweep["accuracy_std"] == [None] and len(sweep["accuracy_ci95"]) == 1
    assert "n/a" in format_table(sweep)


def stochastic_link(log_var_bias):
    """An untrained stochastic link whose encoder std is exp(log_var_bias / 2) everywhere."""
    ts.set_seed(0)
    link = ts.make_link(ts.AWGNChannel(), num_symbols=8, width=4, hidden_units=(32,),
                        stochastic=True, seed=0)
    x, _ = load_fashion_mnist("test")
    x = x[:300]
    link(x[:2])
    link.encoder.log_var.kernel.assign(np.zeros(link.encoder.log_var.kernel.shape))
    link.encoder.log_var.bias.assign(np.full(link.encoder.log_var.bias.shape, log_var_bias))
    link.compile(loss=keras.losses.SparseCategoricalCrossentropy(True))
    link.set_eval_snr(60.0)
    labels = np.argmax(link.predict(x, verbose=0), -1)  # deterministic predictions
    return link, x, labels


def test_sampling_encoder_at_evaluation():
    # large sigma: sampling changes the outputs, so the accuracy against the
    # deterministic link's own predictions falls far below 1
    link, x, labels = stochastic_link(10.0)
    ts.set_seed(1)
    det = accuracy_vs_snr(link, x, labels, [60.0], draws=2)
    assert det["accuracy"][0] > 0.99 and det["sample_encoder"] is False
    ts.set_seed(1)
    sampled = accuracy_vs_snr(link, x, labels, [60.0], draws=2, sample_encoder=True)
    assert sampled["accuracy"][0] < 0.8 and sampled["sample_encoder"] is True
    # the link itself is untouched: deterministic afterwards
    np.testing.assert_array_equal(np.argmax(link.predict(x, verbose=0), -1), labels)
    # seeded: reproducible (explicit seed, or set_seed before the sweep)
    ts.set_seed(1)
    again = accuracy_vs_snr(link, x, labels, [60.0], draws=2, sample_encoder=True)
    assert again == sampled
    # (the channel's noise, even at 60 dB, can flip a near tie: seed it alike too)
    ts.set_seed(2)
    a = accuracy_vs_snr(link, x, labels, [60.0], draws=2, sample_encoder=True, seed=7)
    ts.set_seed(2)
    b = accuracy_vs_snr(link, x, labels, [60.0], draws=2, sample_encoder=True, seed=7)
    assert a["accuracy_draws"] == b["accuracy_draws"]
    assert a["accuracy_draws"] != sampled["accuracy_draws"]
    # link level: samples differ between calls and reseeding replays them
    link.reseed(3)
    z1 = numpy(link.encode(x[:16], sample=True)[0])
    z2 = numpy(link.encode(x[:16], sample=True)[0])
    link.reseed(3)
    np.testing.assert_array_equal(numpy(link.encode(x[:16], sample=True)[0]), z1)
    assert np.max(np.abs(z1 - z2)) > 1.0


def test_sampling_with_tiny_sigma_is_the_deterministic_encoder():
    link, x, labels = stochastic_link(-60.0)  # sigma = 1e-13
    ts.set_seed(1)
    det = accuracy_vs_snr(link, x, labels, [0.0, 60.0], draws=2)
    ts.set_seed(1)
    sampled = accuracy_vs_snr(link, x, labels, [0.0, 60.0], draws=2, sample_encoder=True)
    assert sampled["accuracy_draws"] == det["accuracy_draws"]
    z, mu, _ = (numpy(t) for t in link.encode(x[:16], sample=True))
    np.testing.assert_allclose(z, mu, rtol=1e-5, atol=1e-6)
    # the option needs a stochastic encoder
    plain = ts.make_link(ts.AWGNChannel(), num_symbols=4, width=4, stochastic=False)
    with pytest.raises(ValueError, match="stochastic"):
        accuracy_vs_snr(plain, x[:10], labels[:10], [0.0], sample_encoder=True)
    # a 0.4 encoder config (it sampled by itself) loads; the link samples now
    config = {**ts.SemanticEncoder(4, stochastic=True).get_config(), "seed": 3,
              "sample_at_inference": True}
    with pytest.warns(UserWarning, match=r"0\.4 with sample_at_inference=True.*sample=True"):
        assert ts.SemanticEncoder.from_config(config).stochastic
