"""Bad input raises ValueError naming the problem."""

import numpy as np
import pytest
from backend import numpy, tensor

import tosc_sionna as ts

ALL_CHANNELS = [
    lambda: ts.AWGNChannel(),
    lambda: ts.RayleighBlockFadingChannel(),
    lambda: ts.OFDMChannel(),
]


@pytest.mark.parametrize("make", ALL_CHANNELS)
def test_odd_last_dimension(make):
    with pytest.raises(ValueError, match="must be even"):
        make()(np.ones((4, 7), np.float32), snr_db=10.0)


@pytest.mark.parametrize("make", ALL_CHANNELS)
@pytest.mark.parametrize("shape", [(8,), (2, 4, 6)])
def test_wrong_rank(make, shape):
    with pytest.raises(ValueError, match="rank 2"):
        make()(np.ones(shape, np.float32), snr_db=10.0)


@pytest.mark.parametrize("make", ALL_CHANNELS)
@pytest.mark.parametrize("snr", [np.nan, np.inf, -np.inf, [1.0, np.nan]])
def test_nan_or_inf_snr(make, snr):
    x = np.ones((2, 8), np.float32)
    with pytest.raises(ValueError, match="NaN or inf"):
        make()(x, snr_db=np.asarray(snr, np.float32))


@pytest.mark.parametrize("make", ALL_CHANNELS)
@pytest.mark.parametrize("snr", [-30.5, 61.0, 1000.0, [10.0, 70.0]])
def test_snr_out_of_range(make, snr):
    with pytest.raises(ValueError, match=r"\[-30.0, 60.0\] dB"):
        make()(np.ones((2, 8), np.float32), snr_db=np.asarray(snr, np.float32))


def test_snr_wrong_rank():
    with pytest.raises(ValueError, match="scalar or have shape \\[batch\\]"):
        ts.AWGNChannel()(np.ones((2, 8), np.float32), snr_db=np.zeros((2, 1), np.float32))


@pytest.mark.parametrize("make", ALL_CHANNELS)
def test_snr_checked_for_eager_tensors_too(make):
    # a backend tensor (eager TensorFlow or torch), not only Python/NumPy values
    with pytest.raises(ValueError, match="NaN or inf"):
        make()(np.ones((2, 8), np.float32), snr_db=tensor([1.0, float("nan")], "float32"))
    with pytest.raises(ValueError, match=r"\[-30.0, 60.0\] dB"):
        make()(np.ones((2, 8), np.float32), snr_db=tensor([1.0, 99.0], "float32"))


@pytest.mark.tensorflow
def test_snr_checked_in_graph_mode():
    import tensorflow as tf

    channel = ts.AWGNChannel()
    f = tf.function(lambda x, s: channel(x, snr_db=s))
    with pytest.raises(tf.errors.InvalidArgumentError, match="snr_db must be finite"):
        f(np.ones((2, 8), np.float32), tf.constant([1.0, 99.0]))


@pytest.mark.parametrize("name", ["tdl-f", "awgn", "TDL", "cdl"])
def test_unknown_channel_model(name):
    with pytest.raises(ValueError, match="Unknown channel model"):
        ts.OFDMChannel(name)


def test_more_symbols_than_data_resource_elements():
    channel = ts.OFDMChannel(fft_size=4, num_ofdm_symbols=14)  # 4 * 12 = 48 data REs
    with pytest.raises(ValueError, match="do not fit the resource grid's 48 data"):
        channel(np.ones((2, 2 * 49), np.float32), snr_db=10.0)
    assert channel(np.ones((2, 2 * 48), np.float32), snr_db=10.0).shape == (2, 96)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"csi": "blind"}, "csi must be one of"),
        ({"equalizer": "ml"}, "equalizer must be one of"),
        ({"interpolation": "cubic"}, "interpolation must be one of"),
        ({"mapping": "random"}, "mapping must be one of"),
        ({"num_resource_blocks": 0}, "num_resource_blocks"),
        ({"pilot_ofdm_symbol_indices": (14,)}, "must be distinct indices"),
        ({"channel_model": 3}, "ChannelModel"),
    ],
)
def test_bad_ofdm_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ts.OFDMChannel(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"equalizer": "ml"}, "equalizer"), ({"csi": "x"}, "csi"), ({"num_pilots": 0}, "pilots")],
)
def test_bad_rayleigh_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ts.RayleighBlockFadingChannel(**kwargs)


def test_power_normalization_bad_shapes():
    with pytest.raises(ValueError, match="must be even"):
        ts.PowerNormalization()(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="rank 2"):
        ts.PowerNormalization()(np.ones((2, 3, 2), np.float32))


def test_encoder_wrong_rank():
    with pytest.raises(ValueError, match="expects images"):
        ts.SemanticEncoder(4)(np.ones((2, 784), np.float32))


def test_link_bad_snr_settings():
    link = ts.make_link(ts.AWGNChannel(), num_symbols=4)
    with pytest.raises(ValueError, match="NaN or inf"):
        link.set_eval_snr(float("nan"))
    with pytest.raises(ValueError, match=r"\[-30.0, 60.0\]"):
        link(np.zeros((2, 28, 28, 1), np.float32), snr_db=80.0)
    with pytest.raises(ValueError, match="low <= high"):
        ts.make_link(ts.AWGNChannel(), snr_train_db=(10.0, 0.0))
    with pytest.raises(ValueError, match=r"\[-30.0, 60.0\]"):
        ts.make_link(ts.AWGNChannel(), snr_train_db=(-40.0, 0.0))


def test_link_rx_noise_needs_channel_noise():
    with pytest.raises(ValueError, match="return_noise=True"):
        ts.TaskOrientedLink(
            ts.SemanticEncoder(4), ts.AWGNChannel(), ts.SemanticDecoder(10),
            rx_cam=ts.ChannelAdaptiveModule(use_noise=True),
        )


# --- Sionna's calling conventions cannot be misread (issue 25) ---------------------------

@pytest.mark.parametrize("make", [*ALL_CHANNELS, lambda: ts.DigitalChannel()])
def test_a_positional_noise_argument_is_refused_in_one_line(make):
    # Sionna's AWGN()(x, no) reads 0.1 as a noise variance, ours once read it as 0.1 dB
    with pytest.raises(TypeError, match=r"keyword-only; write snr_db=0.1 .* or no=0.1") as err:
        make()(np.ones((2, 8), np.float32), 0.1)
    assert "\n" not in str(err.value)


def test_the_keywords_do_what_they_say():
    x = np.zeros((20000, 8), np.float32)
    for y in (ts.AWGNChannel()(x, no=0.1), ts.AWGNChannel()(x, snr_db=10.0)):
        assert 2 * np.mean(numpy(y) ** 2) == pytest.approx(0.1, rel=0.05)


def test_the_link_refuses_a_positional_snr_and_takes_no():
    link = ts.make_link(ts.AWGNChannel(), num_symbols=4, width=4, hidden_units=(8,))
    images = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype(np.float32)
    with pytest.raises(TypeError, match=r"keyword-only; write snr_db=0.1"):
        link(images, 0.1)
    link(images, snr_db=10.0)  # built: its build draws noise of its own
    ts.set_seed(1)
    a = numpy(link(images, no=0.1))
    ts.set_seed(1)
    np.testing.assert_allclose(a, numpy(link(images, snr_db=10.0)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at most one"):
        link(images, snr_db=10.0, no=0.1)


@pytest.mark.parametrize("make", ALL_CHANNELS)
def test_complex_symbols_come_back_complex_with_their_imaginary_parts(make):
    rng = np.random.default_rng(0)
    z = ((rng.normal(size=(4, 16)) + 1j * rng.normal(size=(4, 16))) / np.sqrt(2)).astype(
        np.complex64)
    channel = make()
    if isinstance(channel, ts.OFDMChannel):
        channel = ts.OFDMChannel(csi="perfect")
    y = numpy(channel(z, snr_db=60.0))
    assert y.shape == (4, 16) and np.iscomplexobj(y)
    np.testing.assert_allclose(y, z, atol=0.05)  # 60 dB: noise std 1e-3
    assert np.abs(y.imag).mean() > 0.3  # the imaginary parts arrived
    # a backend complex tensor too; the noise output stays real [batch, n]
    y, no = ts.AWGNChannel(return_noise=True)(tensor(z, "complex64"), snr_db=60.0)
    assert numpy(y).shape == (4, 16) and np.iscomplexobj(numpy(y))
    assert numpy(no).shape == (4, 16) and not np.iscomplexobj(numpy(no))


def test_complex_values_are_refused_by_the_digital_channel():
    with pytest.raises(ValueError, match="sends real values"):
        ts.DigitalChannel()(np.ones((2, 8), np.complex64), snr_db=10.0)


# --- images in the wrong range or type -----------------------------------------------------

def test_pixels_uint8_are_converted_and_floats_outside_0_1_refused():
    link = ts.make_link(ts.AWGNChannel(), num_symbols=4, width=4, hidden_units=(8,))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
    link(pixels, snr_db=60.0)  # built: its build draws noise of its own
    ts.set_seed(2)
    a = numpy(link(pixels, snr_db=60.0))
    ts.set_seed(2)
    np.testing.assert_allclose(a, numpy(link(pixels / np.float32(255), snr_db=60.0)),
                               rtol=1e-4, atol=1e-5)
    for bad in (pixels.astype(np.float32), pixels / 255.0 - 0.5):
        with pytest.raises(ValueError, match=r"floats in \[0, 1\]"):
            link(bad, snr_db=10.0)
        with pytest.raises(ValueError, match="Divide 0..255 pixels by 255"):
            link.predict(bad, verbose=0)
    with pytest.raises(ValueError, match="uint8 pixels"):
        link(pixels.astype(np.int32), snr_db=10.0)


# --- every constructor argument checked ---------------------------------------------------

@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ts.OFDMChannel(speed=-5), "speed must be"),
        (lambda: ts.OFDMChannel(delay_spread=-1e-7), "delay_spread must be"),
        (lambda: ts.OFDMChannel(carrier_frequency=0), "carrier_frequency must be"),
        (lambda: ts.OFDMChannel(subcarrier_spacing=float("nan")), "subcarrier_spacing"),
        (lambda: ts.OFDMChannel(num_ofdm_symbols=14.5), "num_ofdm_symbols must be an integer"),
        (lambda: ts.OFDMChannel(num_resource_blocks=2.5), "num_resource_blocks"),
        (lambda: ts.OFDMChannel(slot="mine"), "slot must be one of"),
        (lambda: ts.RayleighBlockFadingChannel(num_pilots=2.5), "num_pilots must be an integer"),
        (lambda: ts.AWGNChannel(return_noise="no"), "return_noise must be True or False"),
        (lambda: ts.DigitalChannel(straight_through=1), "straight_through must be True"),
        (lambda: ts.DigitalChannel(num_pilots=0), "num_pilots"),
        (lambda: ts.SemanticEncoder(16, width=0), "width must be"),
        (lambda: ts.SemanticEncoder(16, stochastic="yes"), "stochastic must be True"),
        (lambda: ts.SemanticDecoder(1), "num_classes must be"),
        (lambda: ts.SemanticDecoder(10, hidden_units=128), "sequence of layer sizes"),
        (lambda: ts.ChannelAdaptiveModule(hidden_units=2.5), "hidden_units"),
        (lambda: ts.ChannelAdaptiveModule(use_noise="no"), "use_noise must be True"),
        (lambda: ts.PowerNormalization(epsilon=0.0), "epsilon must be"),
        (lambda: ts.make_link(ts.AWGNChannel(), snr_train_db=(0,)), r"\(low, high\) pair"),
    ],
)
def test_bad_constructor_argument_is_one_line(make, match):
    with pytest.raises(ValueError, match=match) as err:
        make()
    assert "\n" not in str(err.value)


def test_link_refuses_what_is_not_a_channel_layer_and_a_string_snr():
    import keras

    with pytest.raises(TypeError, match="must be a tosc_sionna.ChannelLayer.*Your own channel"):
        ts.make_link(keras.layers.Identity())
    link = ts.make_link(ts.AWGNChannel(), num_symbols=4, width=4, hidden_units=(8,))
    with pytest.raises(TypeError, match="number of dB"):
        link.set_eval_snr("10")
    with pytest.raises(ValueError, match="Build the layer first"):
        ts.OFDMChannel().bandwidth_ratio(784)
