"""The serving path: traced and exported transmitter/receiver equal the Keras ones."""

import numpy as np
import pytest
from backend import numpy

import tosc_sionna as ts
from tosc_sionna import serving


def served_link(noise):
    """A small stochastic link (and its inputs) whose ends are served; ``noise``: the receiver
    takes the equalizer's effective noise too."""
    ts.set_seed(0)
    channel = (ts.RayleighBlockFadingChannel(csi="ls", return_noise=True) if noise
               else ts.AWGNChannel())
    link = ts.make_link(channel, num_symbols=4, num_classes=3, width=4, hidden_units=(8,),
                        stochastic=True, seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(5, 12, 12, 3)).astype(np.float32)
    snr = np.array([-5.0, 0.0, 5.0, 10.0, 20.0], np.float32)
    link(x, snr_db=snr)
    extra = (rng.uniform(0.01, 1.0, (5, 4)).astype(np.float32),) if noise else ()
    return link, x, snr, extra


@pytest.mark.parametrize("noise", [False, True])
def test_transmitter_and_receiver_equal_the_link(noise):
    link, x, snr, extra = served_link(noise)
    symbols = numpy(serving.transmitter(link)(x, snr))
    np.testing.assert_allclose(np.mean(symbols**2, axis=1) * 2, 1.0, rtol=1e-4)
    # the stochastic encoder sends its mean: the same symbols every call
    np.testing.assert_array_equal(symbols, numpy(serving.transmitter(link)(x, snr)))
    logits = numpy(serving.receiver(link)(symbols, snr, *extra))
    assert logits.shape == (5, 3)
    np.testing.assert_allclose(logits, numpy(link.receive(symbols, snr, *extra)), rtol=1e-6)


@pytest.mark.tensorflow
@pytest.mark.parametrize("noise", [False, True])
def test_traced_and_exported_ends_equal_the_link(tmp_path, noise):
    import tensorflow as tf

    link, x, snr, extra = served_link(noise)
    symbols = serving.transmitter(link)(x, snr)
    logits = serving.receiver(link)(symbols, snr, *extra)
    transmit, receive = serving.traced(link, (12, 12, 3))
    np.testing.assert_allclose(transmit(x, snr), symbols, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(receive(symbols, snr, *extra), logits, rtol=1e-5, atol=1e-6)
    exported = tf.saved_model.load(str(serving.export_link(link, tmp_path / "m", (12, 12, 3))))
    np.testing.assert_allclose(exported.transmit(x, snr), symbols, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exported.receive(symbols, snr, *extra), logits, rtol=1e-5,
                               atol=1e-6)
    one = exported.transmit(x[:1], snr[:1])  # any batch size, batch 1 included
    np.testing.assert_allclose(one, symbols[:1], rtol=1e-5, atol=1e-6)
    with pytest.raises((ValueError, TypeError)):
        exported.transmit(x[:, :10], snr)  # the signature is fixed: other image sizes refused


@pytest.mark.parametrize("separable", [False, True])
def test_multiply_accumulates_match_the_closed_form(separable):
    link = ts.make_link(ts.AWGNChannel(), num_symbols=16, width=32, stochastic=True,
                        separable=separable)
    link(np.zeros((1, 28, 28, 1), "float32"), snr_db=10.0)
    macs = serving.multiply_accumulates(link, (28, 28, 1))
    # (pixels out, c_in, c_out) of the five 3x3 convolutions at 28 x 28 (strides 2, 1, 2, 1, 1)
    stages = [(196, 1, 32), (196, 32, 32), (49, 32, 64), (49, 64, 64), (49, 64, 128)]
    conv = [p * 9 * a * b for p, a, b in stages[:1]] + [
        p * (9 * a + a * b) if separable else p * 9 * a * b for p, a, b in stages[1:]]
    dense_tx = sum(int(np.prod(w.shape)) for w in link.encoder.weights + link.tx_cam.weights
                   if len(w.shape) == 2)
    dense_rx = sum(int(np.prod(w.shape)) for w in link.rx_cam.weights + link.decoder.weights
                   if len(w.shape) == 2)
    assert macs["transmitter"] == sum(conv) + dense_tx
    assert macs["receiver"] == dense_rx
    assert macs["link"] == macs["transmitter"] + macs["receiver"]
