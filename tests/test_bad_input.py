"""Bad input raises ValueError naming the problem."""

import numpy as np
import pytest
from backend import tensor

import tosc_sionna as ts

ALL_CHANNELS = [
    lambda: ts.AWGNChannel(),
    lambda: ts.RayleighBlockFadingChannel(),
    lambda: ts.OFDMChannel(),
]


@pytest.mark.parametrize("make", ALL_CHANNELS)
def test_odd_last_dimension(make):
    with pytest.raises(ValueError, match="must be even"):
        make()(np.ones((4, 7), np.float32), 10.0)


@pytest.mark.parametrize("make", ALL_CHANNELS)
@pytest.mark.parametrize("shape", [(8,), (2, 4, 6)])
def test_wrong_rank(make, shape):
    with pytest.raises(ValueError, match="rank 2"):
        make()(np.ones(shape, np.float32), 10.0)


@pytest.mark.parametrize("make", ALL_CHANNELS)
@pytest.mark.parametrize("snr", [np.nan, np.inf, -np.inf, [1.0, np.nan]])
def test_nan_or_inf_snr(make, snr):
    x = np.ones((2, 8), np.float32)
    with pytest.raises(ValueError, match="NaN or inf"):
        make()(x, np.asarray(snr, np.float32))


@pytest.mark.parametrize("make", ALL_CHANNELS)
@pytest.mark.parametrize("snr", [-30.5, 61.0, 1000.0, [10.0, 70.0]])
def test_snr_out_of_range(make, snr):
    with pytest.raises(ValueError, match=r"\[-30.0, 60.0\] dB"):
        make()(np.ones((2, 8), np.float32), np.asarray(snr, np.float32))


def test_snr_wrong_rank():
    with pytest.raises(ValueError, match="scalar or have shape \\[batch\\]"):
        ts.AWGNChannel()(np.ones((2, 8), np.float32), np.zeros((2, 1), np.float32))


@pytest.mark.parametrize("make", ALL_CHANNELS)
def test_snr_checked_for_eager_tensors_too(make):
    # a backend tensor (eager TensorFlow or torch), not only Python/NumPy values
    with pytest.raises(ValueError, match="NaN or inf"):
        make()(np.ones((2, 8), np.float32), tensor([1.0, float("nan")], "float32"))
    with pytest.raises(ValueError, match=r"\[-30.0, 60.0\] dB"):
        make()(np.ones((2, 8), np.float32), tensor([1.0, 99.0], "float32"))


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
        channel(np.ones((2, 2 * 49), np.float32), 10.0)
    assert channel(np.ones((2, 2 * 48), np.float32), 10.0).shape == (2, 96)


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
