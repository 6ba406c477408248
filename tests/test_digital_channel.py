"""DigitalChannel: quantizer + 5G LDPC + QAM over Sionna channels (issue 13)."""

import math

import keras
import numpy as np
import pytest
from backend import dtype_name, gradient, numpy, tensor

import tosc_sionna as ts


def values(batch: int, k: int, clip: float = 3.0, seed: int = 0) -> np.ndarray:
    """Uniform reals over the quantizer range: every bit pattern equally likely."""
    return np.random.default_rng(seed).uniform(-clip, clip, (batch, k)).astype(np.float32)


def q_function(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def qam_ber(m: int, snr_db: float) -> float:
    """Exact uncoded BER of Gray QPSK / 16-QAM at Es/N0 = snr_db (unit-energy symbols)."""
    es_no = 10.0 ** (snr_db / 10.0)
    if m == 4:  # each bit a BPSK of amplitude 1/sqrt(2), sigma^2 = N0/2
        return q_function(math.sqrt(es_no))
    if m == 16:  # per dimension Gray 4-PAM, half-distance a = sqrt(Es / (5 N0)) in sigmas
        a = math.sqrt(es_no / 5.0)
        return (3 * q_function(a) + 2 * q_function(3 * a) - q_function(5 * a)) / 4
    raise ValueError(m)


@pytest.mark.parametrize(
    "kwargs, k",
    [
        (dict(num_bits=4, code_rate=0.5, modulation_order=4), 32),
        (dict(num_bits=6, code_rate=0.75, modulation_order=64, clip=2.0), 40),
        (dict(num_bits=8, code_rate=0.9, modulation_order=256, num_iter=10), 24),
        (dict(num_bits=3, code_rate=1 / 3, modulation_order=16, channel="rayleigh"), 30),
    ],
)
def test_high_snr_decodes_bit_exactly(kwargs, k):
    layer = ts.DigitalChannel(**kwargs)
    x = values(16, k, clip=kwargs.get("clip", 3.0)) * 1.2  # some values are clipped too
    snr = 50.0 if kwargs.get("channel") == "rayleigh" else 30.0
    y = layer(x, snr_db=snr)
    assert y.shape == (16, k) and dtype_name(y) == "float32"
    expected = numpy(layer.quantize_values(x))
    np.testing.assert_array_equal(numpy(y), expected)
    # the no= form is the same contract
    np.testing.assert_array_equal(numpy(layer(x, no=10 ** (-snr / 10))), expected)
    # the quantizer: 2^b levels inside [-clip, clip], error at most half a step unclipped
    levels = np.unique(expected)
    assert len(levels) <= 2**layer.num_bits and np.all(np.abs(levels) < layer.clip)
    inside = np.abs(x) <= layer.clip
    assert np.all(np.abs(expected - x)[inside] <= layer.step / 2 + 1e-6)


@pytest.mark.parametrize("m, snrs", [(4, (4.0, 8.0)), (16, (10.0, 14.0))])
def test_raw_ber_matches_gray_qam_theory(m, snrs):
    """SNR is Es/N0 per complex symbol: QPSK BER = Q(sqrt(Es/N0)), 16-QAM exact Gray form."""
    layer = ts.DigitalChannel(num_bits=4, code_rate=0.5, modulation_order=m)
    x = values(500, 64, seed=1)  # 500 x 512 = 256k coded bits
    for snr in snrs:
        ber = layer.raw_bit_error_rate(x, snr)
        theory = qam_ber(m, snr)
        assert ber == pytest.approx(theory, rel=0.05), (m, snr, ber, theory)  # measured: < 2%
    assert layer.raw_bit_error_rate(x, no=10 ** (-snrs[0] / 10)) == pytest.approx(
        qam_ber(m, snrs[0]), rel=0.1
    )


@pytest.mark.parametrize(
    "kwargs, k, k_info, n, uses",
    [
        (dict(num_bits=4, code_rate=0.5, modulation_order=16), 64, 256, 512, 128),
        (dict(num_bits=3, code_rate=1 / 3, modulation_order=4), 10, 30, 90, 45),
        # 500 / 0.75 = 666.7 bits -> 112 whole 64-QAM symbols = 672 coded bits
        (dict(num_bits=5, code_rate=0.75, modulation_order=64), 100, 500, 672, 112),
        (dict(num_bits=2, code_rate=0.5, modulation_order=256), 7, 14, 32, 4),
        # pilots are channel uses too
        (dict(num_bits=4, code_rate=0.5, modulation_order=16, channel="rayleigh", csi="ls",
              num_pilots=4), 64, 256, 512, 132),
    ],
)
def test_channel_use_accounting(kwargs, k, k_info, n, uses):
    layer = ts.DigitalChannel(**kwargs)
    params = layer.code_parameters(k)  # before building
    assert (params["k_info"], params["n"], params["channel_uses"]) == (k_info, n, uses)
    assert layer.channel_uses is None
    m = int(math.log2(kwargs["modulation_order"]))
    assert uses - (kwargs.get("num_pilots", 0)) == math.ceil(n / m)
    layer(values(2, k), snr_db=20.0)
    assert (layer.num_info_bits, layer.num_coded_bits, layer.channel_uses) == (k_info, n, uses)
    assert layer.effective_code_rate == pytest.approx(k_info / n)
    assert layer.effective_code_rate <= kwargs["code_rate"] + 1e-12
    # Sionna's encoder agrees, and the mapper emits channel_uses (minus pilots) symbols
    assert (layer._encoder.k, layer._encoder.n) == (k_info, n)
    bits = tensor(np.zeros([1, n]), "float32")
    assert layer._mapper(bits).shape[-1] == uses - kwargs.get("num_pilots", 0) * (
        kwargs.get("csi") == "ls"
    )


def test_config_and_keras_round_trip(tmp_path):
    layer = ts.DigitalChannel(num_bits=3, clip=2.5, code_rate=0.6, modulation_order=64,
                              num_iter=7, channel="rayleigh", csi="ls", num_pilots=2,
                              demapping_method="maxlog", straight_through=True)
    config = layer.get_config()
    clone = ts.DigitalChannel.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is ts.DigitalChannel and revived.get_config() == config

    x_in = keras.Input((16,))
    snr_in = keras.Input(())
    z = keras.layers.Dense(16)(x_in)
    y = ts.DigitalChannel(num_bits=4, code_rate=0.5, modulation_order=16, return_noise=True)(
        z, snr_in
    )
    model = keras.Model([x_in, snr_in], y)
    x, snr = values(4, 16), np.full(4, 30.0, np.float32)
    before = model([x, snr])
    path = tmp_path / "digital.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = loaded([x, snr])
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(numpy(a), numpy(b))
    channel = [lyr for lyr in loaded.layers if isinstance(lyr, ts.DigitalChannel)][0]
    assert channel.channel_uses == 32 and channel.return_noise


@pytest.mark.parametrize(
    "kwargs, k, match",
    [
        (dict(num_bits=16), 600, "exceed one 5G LDPC codeword"),
        (dict(num_bits=4), 2, "below the 5G LDPC minimum"),
        (dict(code_rate=0.1), 8, "code_rate must lie in"),
        (dict(code_rate=0.97), 8, "code_rate must lie in"),
        (dict(code_rate=0.2, num_bits=2, modulation_order=256), 6, r"rate 0\.1875 < 1/5"),
        (dict(modulation_order=8), 8, "power of 4"),
        (dict(modulation_order=32), 8, "power of 4"),
        (dict(modulation_order=2), 8, "power of 4"),
        (dict(modulation_order=1024), 8, "power of 4"),
        (dict(num_bits=0), 8, "num_bits"),
        (dict(num_bits=2.5), 8, "num_bits"),
        (dict(num_bits=17), 8, "num_bits"),
        (dict(clip=0.0), 8, "clip"),
        (dict(clip=-1.0), 8, "clip"),
        (dict(clip=float("inf")), 8, "clip"),
        (dict(num_iter=0), 8, "num_iter"),
        (dict(channel="ofdm"), 8, "channel must be one of"),
        (dict(csi="blind"), 8, "csi must be one of"),
        (dict(num_pilots=0), 8, "num_pilots"),
        (dict(demapping_method="exact"), 8, "demapping_method"),
    ],
)
def test_bad_configurations_raise(kwargs, k, match):
    with pytest.raises(ValueError, match=match):
        layer = ts.DigitalChannel(**kwargs)
        layer(values(2, k), snr_db=10.0)


def test_bad_inputs_raise():
    layer = ts.DigitalChannel()
    with pytest.raises(ValueError, match="exactly one of snr_db"):
        layer(values(2, 8), 10.0, no=0.1)
    with pytest.raises(ValueError, match="snr_db"):
        layer(values(2, 8), snr_db=90.0)
    with pytest.raises(ValueError, match=r"\[batch, k\]"):
        ts.DigitalChannel()(np.zeros((2, 4, 2), np.float32), 10.0)


def test_reproducible_with_a_seed():
    layer = ts.DigitalChannel(num_bits=4, code_rate=0.5, modulation_order=16)
    x = values(8, 64)
    ts.set_seed(7)
    y1 = numpy(layer(x, snr_db=6.0))  # near the cliff: decoding errors occur
    ts.set_seed(7)
    y2 = numpy(layer(x, snr_db=6.0))
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, numpy(layer.quantize_values(x)))
    assert not np.array_equal(y1, numpy(layer(x, snr_db=6.0)))


def test_noise_output_and_straight_through_gradient():
    layer = ts.DigitalChannel(num_bits=4, code_rate=0.5, modulation_order=16, return_noise=True)
    x = values(32, 64)
    y, noise = layer(tensor(x), snr_db=30.0)
    assert noise.shape == (32, 64) and dtype_name(noise) == "float32"
    # decoded with certainty: only the granular quantization noise remains
    np.testing.assert_allclose(numpy(noise), layer.step**2 / 12, rtol=1e-3)
    # decoding fails at 0 dB: the receiver's estimate is of the right size
    y, noise = layer(tensor(x), snr_db=0.0)
    err = np.mean((numpy(y) - x) ** 2)
    assert 0.5 < np.mean(numpy(noise)) / err < 2.0

    # no gradient through the hard decisions (none at all, or zeros: gradient() gives zeros)
    grad = gradient(lambda v: ts.DigitalChannel()(v, 20.0), x)
    assert np.all(grad == 0)
    st = ts.DigitalChannel(straight_through=True)
    seen = []

    def scaled(v):
        seen.append(st(v, 20.0))
        return 3.0 * seen[-1]

    np.testing.assert_array_equal(gradient(scaled, x), 3.0)
    np.testing.assert_array_equal(numpy(seen[0]), numpy(st.quantize_values(x)))


def test_in_a_link_with_straight_through_training():
    """The link's rx CAM takes the digital noise like an equalizer's; one fit step runs."""
    channel = ts.DigitalChannel(num_bits=4, code_rate=0.5, modulation_order=4,
                                straight_through=True, return_noise=True)
    link = ts.make_link(channel, num_symbols=8, width=4, hidden_units=(16,), seed=1)
    images = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    labels = np.arange(8) % 10
    link.compile(optimizer="adam",
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = link.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert channel.channel_uses == 64  # 16 reals x 4 bits = 64, rate 1/2: 128 bits, QPSK
