"""Teacher-output compressions: reconstruction error bounds and fidelity as training sees it."""

import numpy as np
import pytest
from backend import numpy

from tosc_cache import codecs, probability


def test_temper_is_the_training_formula():
    rng = np.random.default_rng(0)
    probs = probability.softmax(rng.normal(scale=3.0, size=(50, 7)))
    probs[0, :3] = 0.0  # zeros are floored at 1e-12, as training floors them
    probs[0] /= probs[0].sum()
    for tau in (1.0, 2.0, 4.0):
        floored = np.maximum(probs, 1e-12)
        expected = floored ** (1 / tau) / np.sum(floored ** (1 / tau), -1, keepdims=True)
        np.testing.assert_allclose(probability.temper(probs, tau), expected, rtol=1e-12)
    # and it is what tosc_sionna.losses.temper computes (float64 there too)
    from tosc_sionna.losses import temper as training_temper

    for tau in (1.0, 4.0):
        trained = numpy(training_temper(probs, tau))
        # float64 in, float64 out on TensorFlow; Keras' torch backend reads float64 NumPy
        # arrays as float32 (floatx), so there the match is to float32 precision
        rtol = 1e-9 if trained.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(probability.temper(probs, tau), trained, rtol=rtol)
    from tosc_sionna.losses import PROB_FLOOR as TRAINING_FLOOR

    assert probability.PROB_FLOOR == TRAINING_FLOOR  # the cache's fidelity is training's
    # softmax(z / tau) == temper(softmax(z), tau) away from the floor
    z = rng.normal(size=(20, 10))
    np.testing.assert_allclose(probability.temper(probability.softmax(z), 4.0),
                               probability.softmax(z, 4.0), rtol=1e-10)


def test_fidelity_reports_scaled_kl():
    rng = np.random.default_rng(1)
    full = probability.softmax(rng.normal(scale=2.0, size=(300, 10)))
    restored = codecs.decode_topk(*codecs.encode_topk(np.log(full), 2), 10)
    fid = probability.fidelity(full, restored, (1.0, 4.0))
    assert set(fid) == {"1", "4"}
    kl4 = probability.kl_divergence(probability.temper(full, 4), probability.temper(restored, 4))
    assert fid["4"]["kl_mean"] == pytest.approx(kl4.mean())
    assert fid["4"]["scaled_kl_mean"] == pytest.approx(16 * kl4.mean())
    assert fid["4"]["kl_max"] == pytest.approx(kl4.max())
    assert fid["1"]["kl_mean"] > fid["4"]["kl_mean"] > 0  # tempering flattens both


def _rounds_above_one(k: int, num_classes: int) -> np.ndarray:
    """A distribution whose float16 top-k sums to >= 1 although the rest holds mass."""
    rng = np.random.default_rng(2)
    for _ in range(10000):
        top = rng.dirichlet(np.ones(k)) * (1 - 1e-4)
        probs = np.concatenate([top, np.full(num_classes - k, 1e-4 / (num_classes - k))])
        if top.astype(np.float16).astype(np.float64).sum() >= 1.0:
            return probs
    raise AssertionError("no such case found")


def test_float16_topk_summing_above_one_keeps_a_tail():
    probs = _rounds_above_one(2, 10)
    values, indices = codecs.encode_topk(np.log(probs)[None], 2)
    assert values.astype(np.float64).sum() >= 1.0  # the case of the bug
    restored = codecs.decode_topk(values, indices, 10)[0].astype(np.float64)
    tail = np.delete(restored, indices[0].astype(int))
    assert np.all(tail > 0)  # was exactly 0: infinite KL, no tempered tail
    np.testing.assert_allclose(tail.sum(), codecs.TOPK_TAIL_FLOOR, rtol=1e-3)
    np.testing.assert_allclose(restored.sum(), 1.0, rtol=1e-6)
    # the KL the floor leaves: true tail 1e-4 against 1e-6, at tau = 1 and 4
    assert probability.kl_divergence(probs, restored) < 1e-3
    assert probability.tempered_kl(probs, restored, 4.0) < 0.1
    assert np.isfinite(probability.tempered_kl(probs, restored, 1.0))


def test_logits_kl_bound_holds():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=5.0, size=(2000, 10)) + rng.uniform(-20, 20, (2000, 1))
    stored = logits.astype(np.float16)
    full, restored = probability.softmax(logits), probability.softmax(stored.astype(np.float64))
    for tau in (1.0, 4.0):
        kl = probability.tempered_kl(full, restored, tau)
        bound = codecs.logits_kl_bound(stored, tau)
        assert np.all(kl <= bound + 1e-15)
        assert bound.mean() < 100 * kl.mean() + 1e-9  # and it is not vacuous


def _low_rank_logits(rows, num_classes=1000, rank=6, noise=0.0, seed=4):
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(num_classes, rank)))[0].T  # orthonormal rows
    offset = rng.normal(scale=2.0, size=num_classes)
    coeffs = rng.normal(scale=3.0, size=(rows, rank))
    return offset + coeffs @ directions + noise * rng.normal(size=(rows, num_classes))


def _centered_log_probs(probs):
    logp = np.log(np.asarray(probs, np.float64))
    return logp - logp.mean(-1, keepdims=True)


def test_basis_reconstructs_low_rank_logits_within_int8_rounding():
    logits = _low_rank_logits(3000)
    shared = codecs.fit_basis(logits[:1000], 6)
    basis, scale = shared["basis"], shared["scale"]
    assert all(a.dtype == np.float32 for a in shared.values()) and basis.shape == (6, 1000)
    np.testing.assert_allclose(basis @ basis.T, np.eye(6), atol=1e-5)
    codes, residuals = codecs.encode_basis(logits[1000:], shared, k=0)
    assert codes.dtype == np.int8 and residuals.shape == (2000, 0)
    restored = codecs.decode_basis(codes, residuals, shared, 0)
    # error per logit <= sum_j scale_j / 2 * |B_ji| (+ float32 rounding of the basis)
    bound = scale.astype(np.float64) / 2 @ np.abs(basis).astype(np.float64) + 1e-4
    z = logits[1000:] - logits[1000:].mean(-1, keepdims=True)
    approx = codecs.basis_approx(codes, shared)
    assert np.all(np.abs(approx - z) <= bound)
    full = probability.softmax(logits[1000:])
    np.testing.assert_allclose(restored, probability.softmax(approx), rtol=1e-5, atol=1e-30)
    for tau in (1.0, 4.0):  # Hoeffding: KL <= range^2 / (8 tau^2), range <= 2 max bound
        assert np.all(probability.tempered_kl(full, restored, tau)
                      <= bound.max() ** 2 / 2 / tau**2 + 1e-6)


def test_basis_residuals_correct_the_classes_it_ranks_highest():
    logits = _low_rank_logits(2000, noise=1.0)
    full = probability.softmax(logits[1000:])
    z = logits[1000:] - logits[1000:].mean(-1, keepdims=True)
    kls = {}
    for k in (0, 8, 33):
        shared = codecs.fit_basis(logits[:1000], 6, k)
        codes, residuals = codecs.encode_basis(logits[1000:], shared, k)
        assert residuals.dtype == np.uint8 and residuals.shape == (1000, (k + 1) // 2)
        assert codecs.basis_bytes(6, k) == 6 + (k + 1) // 2
        restored = codecs.decode_basis(codes, residuals, shared, k)
        np.testing.assert_allclose(restored.sum(-1), 1.0, rtol=1e-5)
        if k:
            step = float(shared["step"][0])
            approx = codecs.basis_approx(codes, shared)
            support = codecs.basis_support(approx, k)
            true_res = np.take_along_axis(z - approx, support, -1)
            inside = np.abs(true_res) <= 7 * step  # not clipped: within half a step
            assert inside.mean() > 0.98  # the step covers the 99th percentile
            got = _centered_log_probs(restored)
            shift = (got - z)[:, :1]  # the row's normalizer: softmax ignores it
            # the corrected logits are the teacher's within half a step, plus the float error
            off = np.take_along_axis(got - z, support, -1) - np.take_along_axis(
                got - z, support, -1).mean(-1, keepdims=True)
            del shift
            spread = np.where(inside, np.abs(off - np.median(off, -1, keepdims=True)), 0)
            assert spread.max() <= step + 1e-6
        kls[k] = [probability.tempered_kl(full, restored, tau).mean() for tau in (1.0, 4.0)]
    assert kls[0][0] > kls[8][0] > kls[33][0]  # corrections help at tau = 1 ...
    assert kls[33][1] < kls[0][1]  # ... and at tau = 4


def test_basis_decoding_is_bit_reproducible_and_needs_no_indices():
    logits = _low_rank_logits(200, num_classes=50, noise=0.5)
    shared = codecs.fit_basis(logits, 5, 7)
    codes, residuals = codecs.encode_basis(logits, shared, 7)
    a = codecs.decode_basis(codes, residuals, shared, 7)
    b = np.concatenate([codecs.decode_basis(codes[i : i + 1], residuals[i : i + 1],
                                                 shared, 7) for i in range(200)])
    np.testing.assert_array_equal(a, b)  # row by row == batched: no BLAS reordering
    # odd k: the last nibble is padding (a zero residual)
    assert np.all(residuals[:, -1] >> 4 == 8)


def test_basis_rejects_bad_settings():
    logits = _low_rank_logits(10, num_classes=20)
    with pytest.raises(ValueError, match="rank must lie"):
        codecs.fit_basis(logits, 11)
    shared = codecs.fit_basis(logits, 3)
    with pytest.raises(ValueError, match="k must lie"):
        codecs.encode_basis(logits, shared, 21)
