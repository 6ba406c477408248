"""ONNX export of both ends of a link, on either Sionna line, run with ONNX Runtime."""

import numpy as np
import onnxruntime as ort
import pytest
from backend import numpy

import tosc_sionna as ts
from tosc_sionna import serving


@pytest.mark.parametrize("use_noise", [False, True])
def test_onnx_ends_equal_the_keras_ends(tmp_path, use_noise):
    # a channel that reports its noise gives the receiver a noise input
    link = ts.make_link(ts.RayleighBlockFadingChannel(return_noise=use_noise))
    assert link.rx_cam.use_noise == use_noise
    rng = np.random.default_rng(0)
    images = rng.random((5, 28, 28, 1)).astype(np.float32)
    snr = np.linspace(-5, 15, 5).astype(np.float32)
    link(images, snr_db=snr)
    paths = serving.export_onnx(link, tmp_path, (28, 28, 1))
    assert sorted(p.name for p in paths.values()) == ["receiver.onnx", "transmitter.onnx"]

    tx = ort.InferenceSession(str(paths["transmitter"]))
    assert [i.name for i in tx.get_inputs()] == ["images", "snr_db"]
    symbols = tx.run(None, {"images": images, "snr_db": snr})[0]
    expected = numpy(serving.transmitter(link)(images, snr))
    assert symbols.shape == (5, 2 * link.encoder.num_symbols)
    np.testing.assert_allclose(symbols, expected, atol=1e-5)
    # unit average power per complex symbol survives the export
    np.testing.assert_allclose(np.mean(symbols**2, axis=1) * 2, 1.0, rtol=1e-4)

    rx = ort.InferenceSession(str(paths["receiver"]))
    received = symbols + 0.1 * rng.normal(size=symbols.shape).astype(np.float32)
    feeds = {"y": received, "snr_db": snr}
    args = [received, snr]
    if use_noise:
        noise = np.full((5, symbols.shape[1] // 2), 0.2, np.float32)
        feeds["noise"] = noise
        args.append(noise)
    assert [i.name for i in rx.get_inputs()] == list(feeds)
    logits = rx.run(None, feeds)[0]
    np.testing.assert_allclose(logits, numpy(serving.receiver(link)(*args)), atol=1e-4)
    # a different batch size than the export's: the batch axis is dynamic
    assert tx.run(None, {"images": images[:2], "snr_db": snr[:2]})[0].shape[0] == 2


def test_traced_ends_equal_the_eager_ones():
    link = ts.make_link(ts.AWGNChannel())
    images = np.random.default_rng(1).random((3, 28, 28, 1)).astype(np.float32)
    snr = np.full((3,), 4.0, np.float32)
    link(images, snr_db=snr)
    tx, rx = serving.traced(link, (28, 28, 1))
    symbols = numpy(tx(images, snr))
    np.testing.assert_allclose(symbols, numpy(serving.transmitter(link)(images, snr)), atol=1e-6)
    np.testing.assert_allclose(numpy(rx(symbols, snr)),
                               numpy(serving.receiver(link)(symbols, snr)), atol=1e-5)
