"""Feature distillation (issue 14 item 2): the receiver matched to the teacher's pooled features.

Real components: a tiny Hugging Face teacher built from a config, saved and reloaded
offline; a cache with float16 and int8 features written by the extraction itself;
real Fashion-MNIST images; a real link over Sionna's AWGN channel.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tiny_teachers as tt
from backend import numpy, tensor, value_and_gradient
from script_modules import load_script

import tosc_sionna as ts
from cache_tools.extract import ExtractionOptions, extract
from tosc_cache import TeacherCache
from tosc_sionna import serving
from tosc_sionna.data import TeacherCacheDataset
from tosc_sionna.losses import feature_distance

os.environ["HF_HUB_OFFLINE"] = "1"
ROWS = 64
JOB = Path(__file__).resolve().parents[1] / "examples" / "kd_awgn.py"


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    teacher = tt.make_vit(root / "teacher")
    out = {}
    for method in ("float16", "int8", None):
        path = extract(ExtractionOptions(teacher, root / f"{method}.h5", limit=ROWS, views=3,
                                         topk=None, features=method, batch_size=48))
        out[method] = TeacherCache(path)
    return out


def test_feature_distance_is_one_minus_the_cosine():
    s = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0]], np.float32)
    t = np.array([[2.0, 0.0], [-1.0, 0.0], [0.0, 5.0], [4.0, 3.0], [1.0, 1.0]], np.float32)
    d = keras.ops.convert_to_numpy(feature_distance(s, t))
    # same direction, opposite, orthogonal, cos = 24/25, a zero vector (cos read as 0)
    np.testing.assert_allclose(d, [0.0, 2.0, 1.0, 1 - 24 / 25, 1.0], atol=1e-6)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 8, 16)).astype(np.float32)
    scaled = keras.ops.convert_to_numpy(feature_distance(7.0 * a, 0.01 * b))
    np.testing.assert_allclose(scaled, keras.ops.convert_to_numpy(feature_distance(a, b)),
                               rtol=1e-5)
    # a zero student vector (all hidden units dead) gives a finite gradient
    value, gradient = value_and_gradient(
        lambda zero: feature_distance(zero, tensor(np.ones((1, 3)), "float32")),
        np.zeros((1, 3), np.float32),
    )
    assert value == pytest.approx([1.0]) and np.isfinite(gradient).all()
    # half the squared distance of the unit vectors
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(scaled, 0.5 * ((unit(a) - unit(b)) ** 2).sum(-1), atol=1e-5)


def test_reader_serves_the_features_of_the_view_it_serves(caches):
    cache = caches["float16"]
    all_views = cache.teacher_features()
    assert all_views.shape == (ROWS, 3, cache.spec.feature_dim) and all_views.dtype == np.float32
    data = TeacherCacheDataset(cache, batch_size=16, seed=3, features=True)
    plain = TeacherCacheDataset(cache, batch_size=16, seed=3)
    for i in range(len(data)):
        x, y = data[i]
        xp, yp = plain[i]
        np.testing.assert_array_equal(x, xp)  # features change nothing else
        assert set(y) == set(yp) | {"features"}
        for key in yp:
            np.testing.assert_array_equal(y[key], yp[key])
        rows = data.order[i * 16:(i + 1) * 16]
        np.testing.assert_array_equal(y["features"], all_views[rows, data.views[rows]])
    assert len(set(data.views[data.rows])) == 3  # augmented views among them
    # int8 + row scale: the decoded features are close to the float16 ones
    q = caches["int8"].teacher_features(np.arange(ROWS), np.zeros(ROWS, int))
    np.testing.assert_allclose(q, all_views[:, 0], atol=np.abs(all_views).max() / 100)


def test_reader_refuses_features_the_cache_does_not_have(caches):
    with pytest.raises(ValueError, match="tosc-cache extract --features"):
        TeacherCacheDataset(caches[None], features=True)
    with pytest.raises(ValueError, match="targets='kd'"):
        TeacherCacheDataset(caches["float16"], features=True, targets="label")


def _link(seed=0):
    ts.set_seed(seed)
    return ts.make_link(ts.AWGNChannel(), num_classes=10, width=4, hidden_units=(16,),
                        seed=seed)


def _trainer(dim, seed=0, weight=1.0, **kwargs):
    return ts.make_trainer(_link(seed), steps_per_epoch=100, epochs=1, feature_dim=dim,
                           feature_weight=weight, **kwargs)


def test_training_lowers_the_feature_distance_and_inference_needs_no_features(caches, tmp_path):
    cache = caches["float16"]
    dim = cache.spec.feature_dim
    data = TeacherCacheDataset(cache, batch_size=16, seed=0, features=True)
    trainer = _trainer(dim, learning_rate=1e-2)
    history = trainer.fit(data, epochs=6, verbose=0).history
    assert history["feature"][-1] < 0.6 * history["feature"][0]
    link = trainer.link
    x = data[0][0]
    logits = keras.ops.convert_to_numpy(link(x, snr_db=30.0))  # images alone at inference
    assert logits.shape == (16, 10) and np.isfinite(logits).all()
    # the head is training-only: the trainer's, not in the transmitter or the receiver
    assert trainer.feature_head.count_params() == (16 + 1) * dim
    assert not any("feature" in v.path for v in link.weights)
    plain = _link()
    plain(x, snr_db=30.0)
    assert serving.multiply_accumulates(link, data.input_shape) == \
        serving.multiply_accumulates(plain, data.input_shape)
    # the trainer saves with its head; the link alone saves without
    trainer.save(tmp_path / "trainer.keras")
    back = keras.saving.load_model(tmp_path / "trainer.keras")
    assert back.feature_dim == dim and back.feature_weight == 1.0
    np.testing.assert_allclose(back.feature_head.get_weights()[0],
                               trainer.feature_head.get_weights()[0])
    link.save(tmp_path / "link.keras")
    alone = keras.saving.load_model(tmp_path / "link.keras")
    ts.set_seed(5)
    a = keras.ops.convert_to_numpy(link(x, snr_db=30.0))
    ts.set_seed(5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(alone(x, snr_db=30.0)), a, atol=1e-5)


def test_the_feature_term_weighs_in_the_loss(caches):
    """Evaluation adds no feature term whatever gamma; in training the added loss is gamma x
    the mean 1 - cos of the head's output and the teacher's features."""
    cache = caches["float16"]
    x, y = TeacherCacheDataset(cache, batch_size=16, seed=0, features=True)[0]
    results = {}
    for weight in (0.0, 3.0):
        trainer = _trainer(cache.spec.feature_dim, weight=weight)
        ts.set_seed(1)
        results[weight] = trainer.test_on_batch(x, y, return_dict=True)
    # evaluation adds no feature term (training only), but measures it ...
    assert results[0.0]["loss"] == pytest.approx(results[3.0]["loss"], rel=1e-5)
    assert 0.0 < results[3.0]["feature"] < 2.0
    # ... and training adds gamma x the distance of the head's output, by hand
    trainer = _trainer(cache.spec.feature_dim, weight=3.0)
    ts.set_seed(2)
    out = trainer(x, training=True)
    with_term = float(numpy(trainer.compute_loss(x, y, out, training=True)))
    without = float(numpy(trainer.compute_loss(x, y, out, training=False)))
    expected = float(np.mean(keras.ops.convert_to_numpy(
        feature_distance(trainer.feature_head(out["embedding"]), y["features"]))))
    assert 0.0 < expected < 2.0
    rate = float(numpy(ts.losses.gaussian_rate(out["mu"], out["log_var"])))
    assert with_term - without == pytest.approx(3.0 * expected + trainer.beta * rate, rel=1e-4)
    # the embedding is the decoder's last hidden layer, the logits its projection
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(trainer.link.decoder.logits(out["embedding"])),
        keras.ops.convert_to_numpy(out["logits"]), atol=1e-5)


def test_bad_feature_inputs_are_refused(caches):
    cache = caches["float16"]
    x, y = TeacherCacheDataset(cache, batch_size=8, features=True)[0]
    plain_y = {k: v for k, v in y.items() if k != "features"}
    with pytest.raises(ValueError, match="targets hold none"):
        _trainer(cache.spec.feature_dim).test_on_batch(x, plain_y)
    with pytest.raises(ValueError, match="feature_dim=7"):
        _trainer(7).test_on_batch(x, y)
    with pytest.raises(ValueError, match=">= 0"):
        _trainer(-1)
    with pytest.raises(ValueError, match="returns its embedding"):
        ts.DistillationTrainer(ts.TaskOrientedLink(ts.SemanticEncoder(4), ts.AWGNChannel(),
                                                   keras.layers.Dense(10)), feature_dim=8)
    # features travel as targets now: the link takes images only
    with pytest.raises(ValueError, match="images only"):
        _link()((x, y["features"]), snr_db=10.0)


def _job():
    job = load_script(JOB)
    return job


def test_kd_job_feature_flag_errors_are_one_line(caches, tmp_path, capsys):
    job = _job()
    for cache, args, message in (
        (None, ["--feature-weight", "1"], "tosc-cache extract --features"),
        ("float16", ["--feature-weight", "-1"], "--feature-weight must be >= 0"),
        ("float16", ["--feature-weight", "1", "--no-teacher"], "not with --no-teacher"),
    ):
        base = ["--quick", "--cache", str(caches[cache].path), "--out", str(tmp_path)]
        assert job.main(base + args) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_kd_job_quick_run_with_features(caches, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(JOB), "--quick", "--cache", str(caches["int8"].path),
         "--feature-weight", "2", "--width", "4", "--n-symbols", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["feature_weight"] == 2.0
    assert all(0.0 <= a <= 1.0 for a in results["accuracy"])
    assert " feature: " in result.stdout  # the term is logged while training
