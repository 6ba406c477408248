"""Loss terms against hand computations in NumPy."""

import keras
import numpy as np
import pytest
from backend import dtype_name, numpy

import tosc_sionna as ts
from tosc_cache.codecs import decode_topk, encode_topk
from tosc_cache.probability import softmax
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
    # with a mask: masked rows are 0, and a row marked labelled without a label too
    mask = np.ones(16, np.float32)
    mask[1] = 0.0
    masked = np.asarray(losses.label_cross_entropy(labels, LOGITS, mask))
    expected[1] = 0.0
    np.testing.assert_allclose(masked, expected, rtol=1e-5, atol=1e-6)


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


def np_rate(mu, log_var):
    """The scale-free bound by hand: 0.5 sum_j [ln E(mu_j^2 + sigma_j^2) - E ln sigma_j^2]."""
    mu, log_var = mu.astype(np.float64), log_var.astype(np.float64)
    s2 = np.mean(mu**2 + np.exp(log_var), axis=0)
    return 0.5 * np.sum(np.log(s2) - np.mean(log_var, axis=0))


def test_gaussian_rate_matches_hand_computation_and_the_optimal_prior_kl():
    mu = RNG.normal(size=(8, 6)).astype(np.float32)
    log_var = RNG.normal(size=(8, 6)).astype(np.float32)
    got = float(losses.gaussian_rate(mu, log_var))
    assert got == pytest.approx(np_rate(mu, log_var), rel=1e-5)
    # it is the batch mean of KL(N(mu, sigma^2) || N(0, s^2)), s^2 = E(mu^2 + sigma^2)
    s2 = np.mean(mu.astype(np.float64) ** 2 + np.exp(log_var), 0)
    kl = 0.5 * np.sum((mu**2 + np.exp(log_var)) / s2 - 1 + np.log(s2) - log_var, -1)
    assert got == pytest.approx(kl.mean(), rel=1e-5)
    # a prior N(0, I) gives the old, larger bound (the optimal prior minimizes it)
    assert float(np.mean(numpy(losses.standard_normal_kl(mu, log_var)))) > got


def test_gaussian_rate_is_scale_free_nonnegative_and_float32():
    mu = RNG.normal(scale=3.0, size=(32, 16)).astype(np.float32)
    log_var = RNG.normal(loc=-1.0, size=(32, 16)).astype(np.float32)
    rates = [float(losses.gaussian_rate(c * mu, log_var + 2 * np.log(c)))  # (c mu, c sigma)
             for c in (0.1, 1.0, 10.0)]
    np.testing.assert_allclose(rates, rates[1], rtol=1e-5)
    assert rates[1] == pytest.approx(np_rate(mu, log_var), rel=1e-5)
    # the N(0, I) prior is not scale-free
    kl = [float(np.mean(numpy(losses.standard_normal_kl(c * mu, log_var + 2 * np.log(c)))))
          for c in (0.1, 1.0, 10.0)]
    assert max(kl) > 2 * min(kl)
    for _ in range(20):  # >= 0, and 0 only when mu carries nothing
        m = RNG.normal(size=(4, 3)).astype(np.float32) * RNG.uniform(0, 3)
        v = RNG.normal(size=(4, 3)).astype(np.float32)
        assert float(losses.gaussian_rate(m, v)) >= 0
    same = np.zeros((5, 4), np.float32)
    assert float(losses.gaussian_rate(same, same)) == pytest.approx(0.0, abs=1e-6)
    # float32 whatever the input dtype: float16 inputs whose squares overflow float16
    big = np.full((4, 2), 300.0, np.float16)  # 300^2 = 9e4 > 65504
    out = losses.gaussian_rate(big, np.zeros((4, 2), np.float16))
    assert dtype_name(out) == "float32" and np.isfinite(float(out))
    assert float(out) == pytest.approx(np_rate(big.astype(np.float32), np.zeros((4, 2))),
                                       rel=1e-5)


def targets(labels, probs):
    """The dict a TeacherCacheDataset yields: a negative label is unlabelled."""
    labels = np.asarray(labels)
    return {"label": labels.astype(np.int32), "labelled": (labels >= 0).astype(np.float32),
            "teacher": np.asarray(probs, np.float32)}


def test_ib_distillation_loss_combines_terms_and_serializes():
    p_t = softmax(TEACHER_LOGITS).astype(np.float32)
    y_true = targets(LABELS, p_t)
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
    with pytest.raises(ValueError, match="5 classes but the student's logits 10"):
        loss({**y_true, "teacher": p_t[:, :5]}, LOGITS)
    # the 0.4 layout (label in column 0 of one float array) is refused, saying so
    packed = np.concatenate([LABELS[:, None].astype(np.float32), p_t], 1)
    with pytest.raises(ValueError, match="column 0"):
        loss(packed, LOGITS)


def few_labels(alpha=0.3, tau=2.0):
    """8 rows, only row 5 labelled; the loss and metrics by hand in NumPy."""
    logits = LOGITS[:8].astype(np.float64)
    p_t = softmax(TEACHER_LOGITS[:8])
    labels = np.full(8, -1)
    labels[5] = LABELS[5]
    y_true = targets(labels, p_t)
    ce5 = -np_log_softmax(logits)[5, LABELS[5]]
    p_tau = p_t ** (1 / tau)
    p_tau /= p_tau.sum(-1, keepdims=True)
    kd = tau**2 * np.sum(p_tau * (np.log(p_tau) - np_log_softmax(logits / tau)), -1)
    return y_true, ce5, kd


def test_label_term_is_averaged_over_labelled_rows_only():
    y_true, ce5, kd = few_labels()
    loss = ts.IBDistillationLoss(alpha=0.3, temperature=2.0)
    # 1 of 8 labelled: the label term is that row's CE, not CE / 8
    expected = 0.3 * ce5 + 0.7 * kd.mean()
    assert float(loss(y_true, LOGITS[:8])) == pytest.approx(expected, rel=1e-5)
    # no row labelled: only the distillation term, over all rows
    y_none = targets(np.full(8, -1), y_true["teacher"])
    assert float(loss(y_none, LOGITS[:8])) == pytest.approx(0.7 * kd.mean(), rel=1e-5)
    # every row labelled: the plain mean
    y_all = targets(LABELS[:8], y_true["teacher"])
    ce = -np_log_softmax(LOGITS[:8].astype(np.float64))[np.arange(8), LABELS[:8]]
    assert float(loss(y_all, LOGITS[:8])) == pytest.approx(
        np.mean(0.3 * ce + 0.7 * kd), rel=1e-5)


def test_labelled_mean_ignores_unlabelled_rows_and_accumulates():
    metric = losses.LabelledMean(name="accuracy")
    metric.update_state([1.0, 0.0, 1.0], [1.0, 0.0, 0.0])  # one labelled row, right
    assert float(metric.result()) == 1.0
    metric.update_state([1.0, 1.0], [0.0, 0.0])  # a batch without labels: unchanged
    assert float(metric.result()) == 1.0
    metric.update_state([0.0, 0.0], [1.0, 1.0])  # 1 right of 1, then 0 of 2 -> 1/3
    assert float(metric.result()) == pytest.approx(1 / 3)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(clone, losses.LabelledMean) and clone.name == "accuracy"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_distillation_kl_is_finite_for_half_precision_logits(dtype):
    # the probability floor would round to 0 in float16: the loss works in float32
    assert np.float16(losses.PROB_FLOOR) == 0.0
    p_t = np.zeros((2, 10), np.float32)
    p_t[:, 3] = 1.0  # a one-hot teacher: zeros to floor
    half = keras.ops.cast(LOGITS[:2], dtype)
    for teacher in (p_t, keras.ops.cast(p_t, dtype)):
        got = keras.ops.convert_to_numpy(losses.distillation_kl(teacher, half, 4.0))
        want = np.asarray(losses.distillation_kl(
            p_t, keras.ops.convert_to_numpy(keras.ops.cast(half, "float32")), 4.0))
        assert got.dtype == np.float32 and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_soft_label_distillation_is_a_keras_distillation_loss():
    kd = ts.SoftLabelDistillation(temperature=2.0)
    assert isinstance(kd, keras.distillation.DistillationLoss)
    expected = np.mean(np.asarray(losses.distillation_kl(softmax(TEACHER_LOGITS), LOGITS, 2.0)))
    assert float(kd.compute_loss(TEACHER_LOGITS.astype(np.float32), LOGITS)) == pytest.approx(
        expected, rel=1e-5)
    # the IB loss's distillation term is the same loss on cached probabilities
    ib = ts.IBDistillationLoss(alpha=0.0, temperature=2.0)
    p_t = softmax(TEACHER_LOGITS).astype(np.float32)
    assert float(ib(targets(np.full(16, -1), p_t), LOGITS)) == pytest.approx(
        float(ib.distillation.compute_loss(p_t, LOGITS)), rel=1e-6)
    clone = ts.SoftLabelDistillation.from_config(kd.get_config())
    assert (clone.temperature, clone.teacher) == (2.0, "logits")
    with pytest.raises(ValueError, match="temperature"):
        ts.SoftLabelDistillation(temperature=-1)
    with pytest.raises(ValueError, match="teacher must be"):
        ts.SoftLabelDistillation(teacher="soft")
