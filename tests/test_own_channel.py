"""docs/channels.md's "Your own channel" example runs as written: calibrated and trainable."""

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from backend import numpy
from conftest import to_complex, unit_symbols
from monte_carlo import assert_mean

import tosc_sionna as ts
from tosc_sionna.data import load_fashion_mnist

DOC = Path(__file__).resolve().parents[1] / "docs" / "channels.md"


def doc_example() -> dict:
    """Run the section's code block; its namespace (the class and the link)."""
    section = DOC.read_text().split("## Your own channel", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def test_the_documented_channel_reports_the_error_it_makes():
    channel_class = doc_example()["PhaseNoiseChannel"]
    channel = channel_class(phase_std=0.3, seed=1, return_noise=True)
    x = unit_symbols(20000, 4)
    for snr in (0.0, 20.0):
        y, no_eff = channel(x, snr_db=snr)
        err = np.abs(to_complex(y) - to_complex(x)) ** 2
        expected = 10 ** (-snr / 10) + 2 * (1 - np.exp(-0.3**2 / 2))
        np.testing.assert_allclose(numpy(no_eff), expected, rtol=1e-5)
        assert_mean(err, expected, what=f"{snr} dB")
    # phase noise, not more AWGN: at 60 dB the error is the phase's alone
    y, _ = channel(x, snr_db=60.0)
    z = to_complex(y) / to_complex(x)
    assert np.std(np.angle(z[:, 0])) == pytest.approx(0.3, rel=0.05)
    np.testing.assert_allclose(np.angle(z[:, 1]), np.angle(z[:, 0]), atol=1e-2)  # common
    with pytest.raises(ValueError, match="phase_std"):
        channel_class(phase_std=-1.0)


def test_the_documented_channel_trains_in_a_link_and_saves():
    ts.set_seed(0)
    namespace = doc_example()
    link = namespace["link"]
    x, y = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    link.compile(optimizer=keras.optimizers.Adam(2e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
    link.fit(x[:4096], y[:4096], batch_size=64, epochs=2, verbose=0)
    link.set_eval_snr(10.0)
    accuracy = link.evaluate(x_test[:1000], y_test[:1000], verbose=0, return_dict=True)
    assert accuracy["accuracy"] > 0.5  # chance is 0.1; measured 0.7 here
