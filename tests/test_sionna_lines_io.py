"""A ``.keras`` link saved on one Sionna line loads on the other with the same outputs.

The fixtures are written by ``tests/data/make_cross_line_links.py`` once per line (Keras on
TensorFlow with Sionna 1.2.2, Keras on torch with Sionna 2.2.0); whichever line runs this
test loads both, so CI's two environments check both directions.
"""

from pathlib import Path

import keras
import numpy as np
import pytest
from backend import numpy

import tosc_sionna as ts

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("saved_on", ["tensorflow", "torch"])
def test_link_saved_on_either_line_loads_here(saved_on):
    io = np.load(DATA / f"link_{saved_on}_io.npz")
    assert np.all(np.isfinite(io["logits"])) and np.ptp(io["logits"]) > 0
    link = keras.models.load_model(DATA / f"link_{saved_on}.keras")
    assert isinstance(link, ts.TaskOrientedLink)
    assert isinstance(link.channel, ts.RayleighBlockFadingChannel)
    assert link.channel.csi == "ls" and link.rx_cam.use_noise
    symbols = numpy(link.transmit(io["images"], io["snr"], training=False))
    np.testing.assert_allclose(symbols, io["symbols"], atol=2e-5)
    logits = numpy(link.receive(io["symbols"], io["snr"], io["noise"], training=False))
    np.testing.assert_allclose(logits, io["logits"], atol=1e-4)
    # the loaded link runs end to end through this line's Sionna
    out = numpy(link(io["images"], snr_db=10.0))
    assert out.shape == io["logits"].shape and np.all(np.isfinite(out))
