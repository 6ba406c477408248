"""Gradients, XLA, serialization and reproducibility of the whole link."""

import keras
import numpy as np
import pytest
from backend import dtype_name, numpy, tensor, variable_gradients

import tosc_sionna as ts

CHANNELS = {
    "awgn": lambda: ts.AWGNChannel(),
    "rayleigh-mmse-perfect": lambda: ts.RayleighBlockFadingChannel(return_noise=True),
    "rayleigh-zf-ls": lambda: ts.RayleighBlockFadingChannel(
        equalizer="zf", csi="ls", num_pilots=2, return_noise=True
    ),
    "ofdm-tdl-a-ls-lmmse": lambda: ts.OFDMChannel("tdl-a", return_noise=True),
    "ofdm-cdl-b-perfect-zf": lambda: ts.OFDMChannel(
        "cdl-b", csi="perfect", equalizer="zf", speed=3.0
    ),
    "ofdm-rayleigh-nn": lambda: ts.OFDMChannel("rayleigh", interpolation="nn"),
}


def images(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, batch)


def make(name, seed=0):
    return ts.make_link(CHANNELS[name](), num_symbols=12, width=4, hidden_units=(32,), seed=seed)


@pytest.mark.parametrize("name", list(CHANNELS))
def test_gradients_reach_the_encoder(name):
    link = make(name)
    x, y = images()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    grads = variable_gradients(lambda: loss_fn(y, link(x, training=True)),
                               lambda: link.encoder.trainable_variables)
    assert len(grads) == len(link.encoder.trainable_variables) > 0
    for g in grads:
        assert g is not None
        assert np.all(np.isfinite(g))
        assert np.max(np.abs(g)) > 0


@pytest.mark.slow
@pytest.mark.tensorflow
@pytest.mark.parametrize("name", list(CHANNELS))
def test_jit_compile_fit_and_evaluate(name):
    check_compiled_fit_and_evaluate(name)  # XLA


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("name", list(CHANNELS))
def test_torch_compile_fit_and_evaluate(name):
    check_compiled_fit_and_evaluate(name)  # Keras' jit_compile is torch.compile on torch


def check_compiled_fit_and_evaluate(name):
    link = make(name)
    x, y = images(64)
    link.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    history = link.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.isfinite(link.evaluate(x, y, verbose=0))


@pytest.mark.parametrize("name", list(CHANNELS))
def test_channel_layer_on_backend_tensors(name):
    # tensors of the backend in (a [batch] SNR tensor included), finite symbols out
    channel = CHANNELS[name]()
    rng = np.random.default_rng(0)
    out = channel(tensor(rng.normal(size=(16, 24)), "float32"),
                  snr_db=tensor(np.full(16, 5.0), "float32"))
    y_ch = out[0] if isinstance(out, tuple) else out
    assert y_ch.shape == (16, 24) and np.all(np.isfinite(numpy(y_ch)))


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", list(CHANNELS))
def test_channel_layer_under_xla(name):
    import tensorflow as tf

    channel = CHANNELS[name]()
    out = tf.function(lambda s, snr: channel(s, snr_db=snr), jit_compile=True)(
        tf.random.normal([16, 24]), tf.fill([16], 5.0)
    )
    y_ch = out[0] if isinstance(out, tuple) else out
    assert y_ch.shape == (16, 24) and np.all(np.isfinite(y_ch))


#: torch.compile costs seconds (Rayleigh) to a minute (OFDM) per layer on a CPU: the default
#: tier compiles the AWGN and Rayleigh layers, the slow tier the OFDM ones
TORCH_COMPILE = [name if not name.startswith("ofdm") else
                 pytest.param(name, marks=pytest.mark.slow) for name in CHANNELS]


@pytest.mark.torch
@pytest.mark.parametrize("name", TORCH_COMPILE)
def test_channel_layer_under_torch_compile(name):
    # the torch line's counterpart of XLA: the layer runs inside torch.compile
    import torch

    channel = CHANNELS[name]()
    out = torch.compile(lambda s, snr: channel(s, snr_db=snr))(
        tensor(np.random.default_rng(0).normal(size=(16, 24)), "float32"),
        tensor(np.full(16, 5.0), "float32"),
    )
    y_ch = out[0] if isinstance(out, tuple) else out
    assert y_ch.shape == (16, 24) and np.all(np.isfinite(numpy(y_ch)))


#: the default tier keeps AWGN and the default OFDM; the others reload in the slow tier
ROUND_TRIP = [name if name in ("awgn", "ofdm-tdl-a-ls-lmmse") else
              pytest.param(name, marks=pytest.mark.slow) for name in CHANNELS]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_save_load_round_trip_gives_identical_outputs(name, tmp_path):
    link = make(name, seed=5)
    x, y = images(16)
    link.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    link.fit(x, y, batch_size=8, epochs=1, verbose=0)  # weights away from init
    link.set_eval_snr(3.0)
    path = tmp_path / "link.keras"
    link.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ts.TaskOrientedLink)
    assert float(loaded.snr_eval_db) == 3.0
    assert type(loaded.channel) is type(link.channel)
    assert loaded.channel.get_config() == link.channel.get_config()
    for snr in (None, 12.0):
        ts.set_seed(99)
        a = link(x) if snr is None else link(x, snr_db=snr)
        ts.set_seed(99)
        b = loaded(x) if snr is None else loaded(x, snr_db=snr)
        np.testing.assert_array_equal(numpy(a), numpy(b))


@pytest.mark.slow
def test_same_seed_same_training():
    results = []
    for _ in range(2):
        ts.set_seed(42)
        link = make("rayleigh-mmse-perfect", seed=42)
        x, y = images(64)
        link.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
        loss = link.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"]
        results.append((loss, link.encoder.get_weights()[0]))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_training_snr_drawn_per_example_in_range():
    link = ts.make_link(ts.AWGNChannel(), num_symbols=4, snr_train_db=(-2.0, 7.0), seed=1)
    x = np.zeros((4096, 28, 28, 1), np.float32)
    snr = numpy(link._snr(x, None, training=True))
    assert snr.shape == (4096,)
    assert snr.min() >= -2.0 and snr.max() <= 7.0
    assert abs(snr.mean() - 2.5) < 0.2 and snr.std() > 2.0
    np.testing.assert_array_equal(numpy(link._snr(x, None, training=False)), 10.0)


def test_eval_snr_changes_compiled_evaluate():
    ts.set_seed(0)
    link = make("awgn")
    x, y = images(256)
    # built first: Keras' torch backend cannot create layers inside torch.compile
    # (keras.Sequential([Flatten(), Dense(4)]) fails the same way when predict builds it)
    link(x[:1])
    link.compile(loss=keras.losses.SparseCategoricalCrossentropy(True), jit_compile=True)
    link.set_eval_snr(-30.0)
    low = link.predict(x, verbose=0)
    link.set_eval_snr(60.0)
    high = link.predict(x, verbose=0)
    ts.set_seed(1)
    high2 = link.predict(x, verbose=0)
    # at 60 dB the noise barely matters; at -30 dB it dominates
    assert np.max(np.abs(high - high2)) < 1e-2 * np.max(np.abs(high))
    assert np.max(np.abs(low - high)) > 10 * np.max(np.abs(high - high2))


def test_mixed_precision_channel_stays_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        link = ts.make_link(ts.AWGNChannel(), num_symbols=8, width=4, hidden_units=(16,))
        logits = link(images(4)[0], snr_db=10.0)
        assert link.channel.compute_dtype == "float32"
        assert link.encoder.compute_dtype == "float16"
        assert np.all(np.isfinite(numpy(logits).astype(np.float32)))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_numerics_with_extreme_input_power():
    # float16 cannot hold 1e-12 (the epsilon) nor squares above 65504: the
    # power normalization and the channel state are computed in float32.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        norm = ts.PowerNormalization()
        x = np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32)
        for scale in (300.0, 1e-4):
            y = numpy(norm(keras.ops.cast(x * scale, "float16"))).astype(np.float32)
            assert np.all(np.isfinite(y))
            np.testing.assert_allclose(2 * np.mean(y**2, axis=-1), 1.0, rtol=2e-3)
        assert np.all(numpy(norm(np.zeros((2, 8), np.float16))) == 0)
        cam = ts.ChannelAdaptiveModule(use_noise=True)
        tiny_noise = np.full((4, 8), 1e-12, np.float32)
        out = cam(keras.ops.cast(x, "float16"), 20.0, tiny_noise)
        assert dtype_name(out) == "float16"
        assert np.all(np.isfinite(numpy(out).astype(np.float32)))
        link = ts.make_link(ts.RayleighBlockFadingChannel(return_noise=True), num_symbols=8,
                            width=4, hidden_units=(16,))
        for scale in (1e3, 1e-3):
            # propagate: past the link's [0, 1] image check, to test the numerics alone
            logits = link.propagate(images(4)[0] * scale, snr_db=60.0)["logits"]
            assert np.all(np.isfinite(numpy(logits).astype(np.float32)))
            sent = numpy(link.transmit(images(4)[0] * scale, 60.0)).astype(np.float32)
            np.testing.assert_allclose(2 * np.mean(sent**2, axis=-1), 1.0, rtol=2e-3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
