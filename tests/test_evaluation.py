"""Accuracy-vs-SNR sweep and plot, on a real (quickly trained) link."""

import keras
import pytest

import tosc_sionna as ts
from tosc_sionna.data import load_fashion_mnist
from tosc_sionna.evaluation import accuracy_vs_snr, format_table, plot_accuracy_vs_snr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ts.set_seed(0)
    x, y = load_fashion_mnist("train")
    link = ts.make_link(ts.RayleighBlockFadingChannel(return_noise=True), num_symbols=8,
                        width=8, hidden_units=(64,), seed=0)
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
    # a saved student reloads and evaluates to the same numbers for the same seed
    loaded = keras.models.load_model(path)
    ts.set_seed(1)
    assert accuracy_vs_snr(loaded, x, y, [-20.0, 0.0, 20.0], draws=2) == sweep
    table = format_table(sweep, reference=0.95)
    assert "20.0" in table and "0.9500" in table
    plot_accuracy_vs_snr({"rayleigh": sweep}, tmp_path / "acc.png", reference=0.95)
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
