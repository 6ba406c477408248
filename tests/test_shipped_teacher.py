"""The shipped Fashion-MNIST teacher (EfficientNet-Lite0) and its embedded train-split cache."""

import json
from pathlib import Path

import numpy as np
import transformers

from cache_tools import cli
from cache_tools.compression import kl_divergence, softmax
from cache_tools.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from cache_tools.format import TeacherCache
from cache_tools.teachers import load_teacher
from tosc_sionna.data import default_teacher_cache

TEACHER = Path(__file__).resolve().parents[1] / "teachers" / "fashion-mnist-lite0"
#: The accuracy target on the Fashion-MNIST test split (the shipped teacher: 0.9445 at 64 px).
TARGET_ACCURACY = 0.94


def test_shipped_teacher_loads_offline_through_transformers():
    import cache_tools.efficientnet_lite  # noqa: F401  (registers the architecture)

    model = transformers.AutoModelForImageClassification.from_pretrained(TEACHER)
    assert model.config.model_type == "efficientnet_lite"
    assert [model.config.id2label[i] for i in range(10)] == list(FASHION_MNIST_CLASSES)
    assert next(model.parameters()).dtype.is_floating_point
    record = json.loads((TEACHER / "training.json").read_text())
    assert record["test_accuracy"] >= TARGET_ACCURACY
    size = (TEACHER / "model.safetensors").stat().st_size
    assert 5e6 < size < 12e6  # float16, about 10 MB


def test_shipped_cache_verifies_against_the_debian_data(capsys):
    path = default_teacher_cache()
    assert cli.main(["verify", str(path), "--split", "train"]) == 0
    assert "OK (60,000 samples" in capsys.readouterr().out
    cache = TeacherCache(path)
    assert cache.spec.dataset == "fashion-mnist" and cache.spec.split == "train"
    assert cache.num_samples == 60000 and cache.num_views >= 2
    assert isinstance(cache.attrs["teacher_test_accuracy"], float)
    assert TARGET_ACCURACY <= cache.attrs["teacher_test_accuracy"] <= 1.0
    assert path.stat().st_size < 8e6  # a few MB (5.2 MB with float16 logits, 4 views)


def test_shipped_teacher_reproduces_cached_view0_outputs():
    cache = TeacherCache(default_teacher_cache())
    teacher = load_teacher(TEACHER)
    assert teacher.digest == cache.spec.teacher_digest
    images, _ = load_fashion_mnist("train")
    logits, _ = teacher(images[:64])
    kl = kl_divergence(softmax(logits), cache.teacher_probs(slice(0, 64))[:, 0])
    assert kl.max() <= cache.attrs["compression_kl_max"] + 1e-3
    np.testing.assert_array_equal(
        logits.argmax(-1), cache.teacher_probs(slice(0, 64))[:, 0].argmax(-1)
    )
