"""Loss terms against hand computations in NumPy."""

import keras
import numpy as np
import pytest

import tosc_sionna as ts
from cache_tools.compression import decode_topk, encode_topk, softmax
from tosc_sionna import losses

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(scale=2.0, size=(16, 10)).astype(np.float32)
TEACHER_LOGITS = RNG.normal(scale=3.0, size=(16, 10))
LABELS = RNG.integers(0, 10, 16)


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_cross_entropy_and_unlabelled_rows():
    labels = LABELS.copy()
    labels[::3] = -1
    got = np.asarray(losses.label_cross_entropy(labels, LOGITS))
    expected = -np_log_softmax(LOGITS)[np.arange(16), np.maximum(labels, 0)]
    expected[labels < 0] = 0.0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_distillation_kl_with_topk_reconstruction_and_temperature(tau):
    values, indices = encode_topk(TEACHER_LOGITS, 3)
    p_t = decode_topk(values, indices, 10)  # what the cache gives
    got = np.asarray(losses.distillation_kl(p_t, LOGITS, tau))
    # by hand: temper the reconstructed distribution, then tau^2 KL
    p_tau = p_t.astype(np.float64) ** (1 / tau)
    p_tau /= p_tau.sum(-1, keepdims=True)
    q_log = np_log_softmax(LOGITS.astype(np.float64) / tau)
    expected = tau**2 * np.sum(p_tau * (np.log(p_tau) - q_log), -1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # tempering probabilities equals softmax of logits / tau for an exact distribution
    np.testing.assert_allclose(np.asarray(losses.temper(softmax(TEACHER_LOGITS), tau)),
                               softmax(TEACHER_LOGITS / tau), rtol=1e-4, atol=1e-7)


def test_distillation_kl_zero_when_student_matches_teacher():
    got = np.asarray(losses.distillation_kl(softmax(LOGITS), LOGITS, 3.0))
    np.testing.assert_allclose(got, 0.0, atol=1e-4)


def test_gaussian_rate():
    mu = RNG.normal(size=(8, 6)).astype(np.float32)
    log_var = RNG.normal(size=(8, 6)).astype(np.float32)
    expected = 0.5 * np.sum(mu**2 + np.exp(log_var) - 1 - log_var, -1)
    np.testing.assert_allclose(np.asarray(losses.gaussian_rate(mu, log_var)), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses.gaussian_rate(0 * mu, 0 * log_var)), 0.0)


def test_ib_distillation_loss_combines_terms_and_serializes():
    p_t = softmax(TEACHER_LOGITS).astype(np.float32)
    y_true = np.concatenate([LABELS[:, None].astype(np.float32), p_t], 1)
    loss = ts.IBDistillationLoss(alpha=0.3, temperature=2.0)
    expected = np.mean(0.3 * np.asarray(losses.label_cross_entropy(LABELS, LOGITS))
                       + 0.7 * np.asarray(losses.distillation_kl(p_t, LOGITS, 2.0)))
    assert float(loss(y_true, LOGITS)) == pytest.approx(expected, rel=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, ts.IBDistillationLoss)
    assert (clone.alpha, clone.temperature) == (0.3, 2.0)
    with pytest.raises(ValueError, match="alpha"):
        ts.IBDistillationLoss(alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ts.IBDistillationLoss(temperature=0.0)
    with pytest.raises(ValueError, match=r"\[batch, 1 \+ C\]"):
        loss(y_true[:, :5], LOGITS)
