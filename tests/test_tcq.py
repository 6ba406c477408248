"""The ``tcq`` compression: fixed bits per row, trellis-coded basis and ranked residuals."""

import json
import os

import numpy as np
import pytest
import tiny_teachers as tt

from cache_tools import cli
from cache_tools.teachers import load_teacher
from tosc_cache import CacheSpec, TeacherCache, UsageError, codecs, probability
from tosc_cache.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

os.environ["HF_HUB_OFFLINE"] = "1"


def _flat_logits(rows, num_classes=1000, rank=16, noise=0.1, seed=0):
    """Many-class logits: a rank-16 structure plus noise on every class (entropy ~5.7 nats)."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(num_classes, rank)))[0].T
    scales = 30.0 / (1 + np.arange(rank))
    return (rng.normal(size=num_classes) + (rng.normal(size=(rows, rank)) * scales) @ directions
            + noise * rng.normal(size=(rows, num_classes)))


@pytest.fixture(scope="module")
def fitted():
    logits = _flat_logits(1300)
    return logits, codecs.fit_tcq(logits[:1000], 40, 32, 256)


def test_tcq_round_trip_meets_a_kl_bound_on_held_out_rows(fitted):
    logits, shared = fitted
    assert shared["mean"].dtype == np.float32 and shared["basis"].dtype == np.float16
    assert shared["basis"].shape == (40, 1000) and shared["bits"].shape == (72,)
    assert shared["levels"].shape == (72, codecs.tcq_levels_width())
    first, second = codecs.tcq_split(256)
    assert (int(shared["bits"][:40].sum()), int(shared["bits"][40:].sum())) == (first, second)
    held = logits[1000:].reshape(100, 3, 1000)  # [rows, views, C]
    packed = codecs.encode_tcq(held, shared, 256)
    assert packed.shape == (100, 3, 32) and packed.dtype == np.uint8
    restored = codecs.decode_tcq(packed, shared)
    assert restored.shape == (100, 3, 1000) and restored.dtype == np.float32
    np.testing.assert_allclose(restored.sum(-1), 1.0, rtol=1e-5)
    full = probability.softmax(held)
    for tau in (1.0, 4.0):  # measured 5.3e-3 and 6.2e-4
        assert probability.tempered_kl(full, restored, tau).mean() < 1e-2
    # no indices are stored, yet the top class mostly survives
    assert np.mean(restored.argmax(-1) == full.argmax(-1)) > 0.9


def test_tcq_is_deterministic_and_decodes_bit_identically(fitted):
    logits, shared = fitted
    again = codecs.fit_tcq(logits[:1000], 40, 32, 256)
    for key in shared:
        np.testing.assert_array_equal(again[key], shared[key])
    rows = logits[1000:1060]
    packed = codecs.encode_tcq(rows, shared, 256)
    np.testing.assert_array_equal(codecs.encode_tcq(rows, shared, 256), packed)
    whole = codecs.decode_tcq(packed, shared)
    # row by row (another batch shape) gives the same bits
    single = np.concatenate([codecs.decode_tcq(packed[i : i + 1], shared)
                             for i in range(len(packed))])
    np.testing.assert_array_equal(single, whole)
    # a round trip through a cache file's dtypes changes nothing
    stored = {k: np.array(v) for k, v in shared.items()}
    np.testing.assert_array_equal(codecs.decode_tcq(packed.copy(), stored), whole)


def test_tcq_pack_unpack_and_trellis_gain():
    rng = np.random.default_rng(1)
    widths = np.array([1, 5, 3, 2, 4, 1])
    codes = rng.integers(0, 2**widths, size=(7, len(widths)))
    packed = codecs.tcq._pack(codes, widths, 3)
    assert packed.shape == (7, 3)
    np.testing.assert_array_equal(codecs.tcq._unpack(packed, widths), codes)
    # 2 bits per value: the trellis beats the 1-D Lloyd quantizer by > 0.7 dB on a Gaussian
    x = rng.standard_normal((400, 64))
    bits = np.full(64, 2)
    start = codecs.lloyd_levels(rng.standard_normal(20000), 8)
    levels = np.zeros((64, codecs.tcq_levels_width()))
    levels[:, :8] = start
    codes, where = codecs.tcq._tcq_encode(x, np.ones_like(x), levels, bits)
    values = codecs.tcq._tcq_walk(codes, levels)
    np.testing.assert_array_equal(values, np.take_along_axis(levels, where.T, 1).T)
    scalar = codecs.lloyd_levels(rng.standard_normal(20000), 4)
    q = scalar[np.searchsorted((scalar[1:] + scalar[:-1]) / 2, x)]
    gain_db = 10 * np.log10(np.mean((q - x) ** 2) / np.mean((values - x) ** 2))
    assert gain_db > 0.7


def test_tcq_rejects_bad_settings(fitted):
    logits, shared = fitted
    with pytest.raises(ValueError, match="multiple of 8"):
        codecs.fit_tcq(logits[:50], 8, 8, 60)
    with pytest.raises(ValueError, match="topk a multiple of 8"):
        codecs.fit_tcq(logits[:50], 8, 12, 64)
    with pytest.raises(ValueError, match="exceed what rank 4"):
        codecs.fit_tcq(logits[:50], 4, 8, 256)
    with pytest.raises(ValueError, match="rank"):
        codecs.fit_tcq(logits[:50], 1001, 8, 64)
    with pytest.raises(ValueError, match="finite"):
        codecs.fit_tcq(np.full((5, 1000), np.nan), 8, 8, 64)
    with pytest.raises(ValueError, match="classes"):
        codecs.encode_tcq(logits[:3, :999], shared, 256)
    with pytest.raises(ValueError, match="rows hold 128"):
        codecs.encode_tcq(logits[:3], shared, 128)
    spec = dict(teacher_id="t", teacher_digest="d", teacher_kind="classifier",
                class_names=[str(i) for i in range(10)], dataset="x", split="train",
                dataset_digest="e", num_samples=4, num_views=1, seed=0, augmentation={},
                preprocessing={})
    with pytest.raises(UsageError, match="multiple of 8"):
        CacheSpec(**spec, probs="tcq", topk=8, rank=4, bits=20)
    with pytest.raises(UsageError, match="bits applies to probs='tcq'"):
        CacheSpec(**spec, probs="basis", topk=4, rank=4, bits=32)
    ok = CacheSpec(**spec, probs="tcq", topk=8, rank=6, bits=32)
    assert json.loads(ok.to_json())["bits"] == 32
    assert "bits" not in json.loads(CacheSpec(**spec, probs="topk", topk=3).to_json())


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return tt.make_vit(tmp_path_factory.mktemp("models") / "vit")


def test_extract_tcq_cache(vit, tmp_path, capsys):
    out = tmp_path / "tcq.h5"
    assert cli.main([str(a) for a in (
        "extract", "--model", vit, "--out", out, "--limit", 64, "--views", 2, "--tcq", 4,
        "--basis", 6, "--topk", 8, "--batch-size", 32, "-q")]) == 0
    cache = TeacherCache(out)
    assert (cache.spec.probs, cache.spec.rank, cache.spec.topk, cache.spec.bits) == (
        "tcq", 6, 8, 32)
    assert cache.arrays["teacher/tcq_codes"].shape == (64, 2, 4)
    assert cache.arrays["teacher/tcq_basis"].dtype == np.float16
    teacher = load_teacher(vit, class_names=list(FASHION_MNIST_CLASSES))
    images, labels = load_fashion_mnist("train")
    logits, _ = teacher(images[:64])
    restored = cache.teacher_probs()[:, 0]
    fidelity = json.loads(cache.attrs["compression_fidelity"])
    for tau in (1, 4):
        kl = probability.tempered_kl(probability.softmax(logits), restored, tau)
        assert kl.max() <= fidelity[str(tau)]["kl_max"] + 1e-5
    assert cache.attrs["teacher_accuracy"] == np.mean(restored.argmax(-1) == labels[:64])
    assert cli.main(["verify", str(out), "--split", "train"]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(out)]) == 0
    assert "trellis-coded in 32 bits" in capsys.readouterr().out
    assert cli.main(["extract", "--model", str(vit), "--out", str(tmp_path / "x.h5"),
                     "--limit", "8", "--tcq", "4", "--logits", "-q"]) == 2
    assert "--tcq" in capsys.readouterr().err
    assert cli.main(["extract", "--model", str(vit), "--out", str(tmp_path / "y.h5"),
                     "--limit", "8", "--tcq", "40", "--basis", "2", "--topk", "8", "-q"]) == 2
    assert "exceed what rank 2 and topk 8 can hold" in capsys.readouterr().err
    assert cli.main(["extract", "--model", str(vit), "--out", str(tmp_path / "z.h5"),
                     "--limit", "8", "--tcq", "0", "-q"]) == 2
    assert "--tcq needs" in capsys.readouterr().err


def test_tcq_extraction_resumes_with_the_staged_codebooks(vit, tmp_path, monkeypatch):
    from cache_tools import extract as ex

    kwargs = dict(limit=48, views=2, topk=8, basis_rank=5, tcq_bytes=4, batch_size=32)
    whole = TeacherCache(ex.extract(ex.ExtractionOptions(vit, tmp_path / "whole.h5", **kwargs)))

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.extract(ex.ExtractionOptions(vit, tmp_path / "resumed.h5", **kwargs),
                   progress=interrupt)
    assert (tmp_path / "resumed.h5.partial").exists()

    def refit(*args, **kw):
        raise AssertionError("a resumed extraction refits the tcq codebooks")

    monkeypatch.setattr(codecs.tcq.TcqCodec, "fit", refit)  # what extraction fits with
    resumed = TeacherCache(ex.extract(ex.ExtractionOptions(vit, tmp_path / "resumed.h5", **kwargs)))
    for name in whole.arrays:
        np.testing.assert_array_equal(resumed.arrays[name], whole.arrays[name])
    np.testing.assert_array_equal(resumed.teacher_probs(), whole.teacher_probs())
