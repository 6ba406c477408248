"""Named students: one name for one configuration, parameter counts from their closed form."""

import numpy as np
import pytest

import tosc_sionna as ts

#: (filters as a multiple of width, stride) of the encoder's five 3x3 convolutions
STAGES = (1, 1, 2, 2, 4)


def closed_form_params(width, separable, hidden, n=16, classes=10, cam=64):
    """Trainable parameters of make_link(AWGN) for one preset, counted by hand."""
    filters = [m * width for m in STAGES]
    convs = 9 * 1 * filters[0]  # the first convolution is plain, grey input, no bias
    for c_in, c_out in zip(filters, filters[1:], strict=False):
        convs += (9 * c_in + c_in * c_out) if separable else 9 * c_in * c_out
    norms = 4 * sum(filters)  # gamma, beta, moving mean and variance
    heads = 2 * (filters[-1] * 2 * n + 2 * n)  # mean and log-variance (stochastic)
    # a channel-adaptive module: [2n + 1] -> cam -> 2n sigmoid scales
    module = (2 * n + 1) * cam + cam + cam * 2 * n + 2 * n
    decoder, width_in = 0, 2 * n
    for units in (*hidden, classes):
        decoder += width_in * units + units
        width_in = units
    return convs + norms + heads + 2 * module + decoder


@pytest.mark.parametrize("name", list(ts.STUDENT_PRESETS))
def test_each_preset_builds_its_closed_form_size(name):
    preset = ts.student_preset(name)
    link = ts.make_link(ts.AWGNChannel(), student=name)
    link(np.zeros((1, 28, 28, 1), np.float32), snr_db=10.0)
    params = sum(int(np.prod(w.shape)) for w in link.weights if "snr_eval_db" not in w.path)
    assert params == closed_form_params(preset.width, preset.separable, preset.hidden_units)
    assert link.encoder.width == preset.width and link.encoder.separable == preset.separable
    assert link.decoder.hidden_units == preset.hidden_units


def test_default_student_is_the_documented_one():
    assert ts.DEFAULT_STUDENT == "sep-w48-h128"
    preset = ts.student_preset(ts.DEFAULT_STUDENT)
    assert closed_form_params(preset.width, preset.separable, preset.hidden_units) == 65_882
    link = ts.make_link(ts.AWGNChannel())
    assert link.stochastic and link.snr_train_db == (-10.0, 20.0)
    assert link.encoder.num_symbols == 16


def test_overrides_and_unknown_names():
    link = ts.make_link(ts.AWGNChannel(), student="sep-w48-h128", width=8, hidden_units=(4,))
    assert link.encoder.width == 8 and link.decoder.hidden_units == (4,)
    assert link.encoder.separable
    with pytest.raises(ValueError, match="unknown student preset 'tiny'.*sep-w48-h128"):
        ts.make_link(ts.AWGNChannel(), student="tiny")
