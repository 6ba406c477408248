"""Student layers: shapes, behaviour and configs."""

import keras
import numpy as np
import pytest
from backend import numpy
from conftest import to_complex

import tosc_sionna as ts


def test_power_normalization_unit_power_per_example():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(5, 32)) * np.arange(1, 6)[:, None]).astype(np.float32)
    y = numpy(ts.PowerNormalization()(x))
    power = np.mean(np.abs(to_complex(y)) ** 2, axis=1)
    np.testing.assert_allclose(power, 1.0, rtol=1e-5)
    # direction is kept
    np.testing.assert_allclose(y / np.linalg.norm(y, axis=1, keepdims=True),
                               x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-5)


def mean(encoder, x, **kwargs):
    """The encoder's mean (its output is always the pair (mu, log_var))."""
    return numpy(encoder(x, **kwargs)[0])


def test_encoder_shapes_and_grey_images():
    encoder = ts.SemanticEncoder(num_symbols=10, width=4)
    mu, log_var = encoder(np.zeros((3, 28, 28, 1), np.float32))
    assert mu.shape == (3, 20) and log_var is None
    assert mean(ts.SemanticEncoder(10, width=4), np.zeros((3, 28, 28), np.float32)).shape == (3, 20)
    mu, log_var = ts.SemanticEncoder(10, width=4, stochastic=True)(np.zeros((3, 28, 28)))
    assert mu.shape == log_var.shape == (3, 20)
    # the same structure symbolically (a functional model can wrap the encoder)
    spec = ts.SemanticEncoder(10, width=4, stochastic=True).compute_output_spec(
        keras.KerasTensor((None, 28, 28, 1)))
    assert [tuple(s.shape) for s in spec] == [(None, 20), (None, 20)]
    assert ts.SemanticEncoder(10, width=4).compute_output_spec(
        keras.KerasTensor((None, 28, 28, 1)))[1] is None


def test_encoder_rgb_and_large_images_with_downsampling():
    rgb = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    assert mean(ts.SemanticEncoder(8, width=4), rgb).shape == (2, 16)
    large = np.random.default_rng(1).uniform(size=(2, 96, 96, 3)).astype(np.float32)
    pooled = ts.SemanticEncoder(8, width=4, downsample=4)
    assert mean(pooled, large).shape == (2, 16)
    # downsampling is a 4x4 block mean: an image constant on those blocks gives the same
    # output as the small image itself through the same weights
    small = ts.SemanticEncoder(8, width=4)
    small(rgb[:, :24, :24])
    small.set_weights(pooled.get_weights())
    blocks = np.repeat(np.repeat(rgb[:, :24, :24], 4, axis=1), 4, axis=2)
    np.testing.assert_allclose(mean(pooled, blocks), mean(small, rgb[:, :24, :24]),
                               rtol=1e-5, atol=1e-6)
    clone = ts.SemanticEncoder.from_config(pooled.get_config())
    assert clone.downsample == 4 and clone.get_config() == pooled.get_config()
    with pytest.raises(ValueError, match="downsample must be an integer >= 1"):
        ts.SemanticEncoder(8, downsample=0)


def test_separable_encoder_is_smaller_and_runs():
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    plain, separable = ts.SemanticEncoder(16, width=32), ts.SemanticEncoder(16, width=32,
                                                                          separable=True)
    assert mean(plain, x).shape == mean(separable, x).shape == (4, 32)
    assert [type(c).__name__ for c in separable.convs] == ["Conv2D"] + ["SeparableConv2D"] * 4
    # weights of the last four convolutions: 9 c_in c_out plain, 9 c_in + c_in c_out separable
    stages = [(32, 32), (32, 64), (64, 64), (64, 128)]
    conv = sum(int(np.prod(w.shape)) for c in separable.convs[1:] for w in c.weights)
    assert conv == sum(9 * a + a * b for a, b in stages)
    assert plain.count_params() - separable.count_params() == sum(
        9 * a * b - (9 * a + a * b) for a, b in stages)


@pytest.mark.torch
@pytest.mark.parametrize("separable", [True, False])
@pytest.mark.parametrize("shape", [(16, 28, 28, 1), (4, 32, 32, 3), (3, 9, 7, 2)])
def test_encoder_torch_kernels_match_the_keras_layers(separable, shape):
    # on torch the encoder runs its convolutions and batch norms in torch's own kernels
    # (tosc_sionna.backends.torch_conv): outputs, gradients and moving statistics are the
    # Keras layers' to float32 rounding, in training and in inference
    import torch

    from tosc_sionna.backends import torch_conv

    ts.set_seed(0)
    encoder = ts.SemanticEncoder(16, width=8, stochastic=True, separable=separable)
    x = torch.rand(shape)
    encoder(x[:1])
    start = [v.numpy().copy() for v in encoder.weights]
    assert torch_conv.supported(x, encoder.convs, encoder.norms, True)
    runs = {}
    try:
        for fast in (False, True):
            torch_conv.ENABLED = fast
            for v, w in zip(encoder.weights, start, strict=True):
                v.assign(w)
            mu, log_var = encoder(x, training=True)
            for v in encoder.trainable_weights:
                v.value.grad = None
            ((mu ** 2).sum() + (0.3 * log_var).sum()).backward()
            runs[fast] = ([numpy(mu)] + [numpy(v.value.grad) for v in encoder.trainable_weights]
                          + [numpy(v) for v in encoder.non_trainable_weights]
                          + [mean(encoder, x, training=False)])
    finally:
        torch_conv.ENABLED = True
    for keras_value, torch_value in zip(runs[False], runs[True], strict=True):
        np.testing.assert_allclose(torch_value, keras_value, rtol=0,
                                   atol=1e-4 * np.abs(keras_value).max())


def test_link_samples_a_stochastic_encoder_in_training_only():
    link = ts.make_link(ts.AWGNChannel(), num_symbols=2000, width=2, hidden_units=(4,), seed=3)
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype(np.float32)
    z, mu, log_var = (numpy(t) for t in link.encode(x, training=True))
    z_eval, mu_eval, _ = (numpy(t) for t in link.encode(x, training=False))
    np.testing.assert_array_equal(z_eval, mu_eval)
    # asked to, it samples at inference too
    z_sampled, mu_sampled, _ = (numpy(t) for t in link.encode(x, training=False,
                                                                  sample=True))
    assert np.mean(np.abs(z_sampled - mu_sampled)) > 0.01
    # training: the same mean (batch statistics of the same batch), a new sample
    z2, mu2, _ = (numpy(t) for t in link.encode(x, training=True))
    np.testing.assert_allclose(mu2, mu, rtol=1e-5, atol=1e-6)
    assert np.mean(np.abs(z2 - z)) > 0.1 * np.mean(np.abs(z - mu))
    # the sampling stream is the link's own: not the SNR stream of a link seeded 4
    fresh, other = (ts.make_link(ts.AWGNChannel(), num_symbols=4, width=2, hidden_units=(4,),
                                 seed=s) for s in (3, 4))
    snr_next = numpy(keras.random.normal((4000,), seed=other.snr_seed_generator))
    eps = numpy(keras.random.normal((4000,), seed=fresh.sample_seed_generator))
    assert np.abs(np.corrcoef(snr_next, eps)[0, 1]) < 5 / np.sqrt(4000)
    # z = mu + sigma * eps with eps standard normal: 8000 draws, 5 standard errors
    eps = (z - mu) / np.exp(0.5 * log_var)
    se = 1 / np.sqrt(eps.size)
    assert abs(eps.mean()) < 5 * se and abs(eps.std() - 1) < 5 * se / np.sqrt(2)


def test_channel_adaptive_module_depends_on_snr_and_noise():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(4, 16)).astype(np.float32)
    cam = ts.ChannelAdaptiveModule(hidden_units=8)
    low, high = numpy(cam(feats, -10.0)), numpy(cam(feats, 20.0))
    assert low.shape == feats.shape
    assert np.max(np.abs(low - high)) > 1e-4
    # scales lie in (0, 1): |output| <= |input|
    assert np.all(np.abs(high) <= np.abs(feats) + 1e-6)
    rx = ts.ChannelAdaptiveModule(hidden_units=8, use_noise=True)
    a = numpy(rx(feats, 10.0, np.full((4, 8), 0.1, np.float32)))
    b = numpy(rx(feats, 10.0, np.full((4, 8), 10.0, np.float32)))
    assert np.max(np.abs(a - b)) > 1e-4


def test_channel_adaptive_module_on_feature_maps():
    feats = np.ones((2, 7, 7, 6), np.float32)
    out = numpy(ts.ChannelAdaptiveModule(hidden_units=4)(feats, np.array([0.0, 5.0])))
    assert out.shape == feats.shape
    # one scale per channel, shared over the spatial positions
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1, :], out.shape))


def test_channel_adaptive_module_noise_argument_checked():
    with pytest.raises(ValueError, match="use_noise=True"):
        ts.ChannelAdaptiveModule(use_noise=True)(np.ones((2, 4), np.float32), 0.0)
    with pytest.raises(ValueError, match="use_noise=True"):
        ts.ChannelAdaptiveModule()(np.ones((2, 4), np.float32), 0.0, np.ones((2, 2)))


def test_decoder_logits_shape():
    assert ts.SemanticDecoder(7, hidden_units=(8, 8))(np.ones((3, 12), np.float32)).shape == (3, 7)


LAYERS = [
    lambda: ts.PowerNormalization(epsilon=1e-9),
    lambda: ts.SemanticEncoder(6, width=3, stochastic=True),
    lambda: ts.SemanticEncoder(6, width=3, separable=True),
    lambda: ts.ChannelAdaptiveModule(hidden_units=5, use_noise=True),
    lambda: ts.SemanticDecoder(4, hidden_units=(7,)),
    lambda: ts.AWGNChannel(return_noise=True),
    lambda: ts.RayleighBlockFadingChannel("zf", "ls", 3),
    lambda: ts.OFDMChannel("cdl-d", 50e-9, 2.6e9, 10.0, 15e3, 7, 20, (1,), "ls", "nn", "zf"),
]


@pytest.mark.parametrize("make", LAYERS)
def test_get_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


def test_ofdm_with_user_objects_refuses_to_serialize():
    from sionna.phy.channel.tr38901 import TDL

    # perfect CSI: the LS + LMMSE estimator's set-up (seconds) is not what this tests
    channel = ts.OFDMChannel(TDL("B", 100e-9, 3.5e9), csi="perfect")
    y = channel(np.ones((2, 8), np.float32), snr_db=10.0)
    assert y.shape == (2, 8)
    with pytest.raises(NotImplementedError, match="cannot be serialized"):
        channel.get_config()


def test_ofdm_with_user_resource_grid():
    from sionna.phy.ofdm import ResourceGrid

    rg = ResourceGrid(
        num_ofdm_symbols=4, fft_size=16, subcarrier_spacing=15e3,
        pilot_pattern="kronecker", pilot_ofdm_symbol_indices=[0],
    )
    channel = ts.OFDMChannel("tdl-c", resource_grid=rg, csi="perfect")
    y = channel(np.ones((3, 96), np.float32), snr_db=40.0)  # 48 symbols = all data REs
    assert channel.grid is rg
    assert np.mean((numpy(y) - 1) ** 2) < 1e-2
