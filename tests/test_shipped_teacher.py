"""The shipped Fashion-MNIST teacher (EfficientNet-Lite0) and its embedded train-split cache."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from cache_tools import cli
from cache_tools.teachers import load_teacher
from tosc_cache import TeacherCache
from tosc_cache.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from tosc_cache.probability import kl_divergence, softmax
from tosc_sionna.data import default_teacher_cache

TEACHER = Path(__file__).resolve().parents[1] / "teachers" / "fashion-mnist-lite0"
#: The accuracy target on the Fashion-MNIST test split (the shipped teacher: 0.9445 at 64 px).
TARGET_ACCURACY = 0.94
#: Test images the accuracy is measured on: binomial SE sqrt(0.94 * 0.06 / 600) = 0.0097
SAMPLE = 600


def test_shipped_teacher_loads_offline_through_transformers():
    import cache_tools.efficientnet_lite  # noqa: F401  (registers the architecture)

    model = transformers.AutoModelForImageClassification.from_pretrained(TEACHER)
    assert model.config.model_type == "efficientnet_lite"
    assert [model.config.id2label[i] for i in range(10)] == list(FASHION_MNIST_CLASSES)
    assert next(model.parameters()).dtype.is_floating_point
    size = (TEACHER / "model.safetensors").stat().st_size
    assert 5e6 < size < 12e6  # float16, about 10 MB


@pytest.fixture(scope="module")
def measured_accuracy():
    """The shipped teacher's accuracy on a seeded sample of the test split, and its binomial
    standard error."""
    images, labels = load_fashion_mnist("test")
    pick = np.random.default_rng(0).choice(len(labels), SAMPLE, replace=False)
    teacher = load_teacher(TEACHER)
    with torch.inference_mode():
        logits = np.concatenate([teacher(images[part])[0]
                                 for part in np.array_split(pick, SAMPLE // 200)])
    accuracy = float(np.mean(logits.argmax(-1) == labels[pick]))
    return accuracy, np.sqrt(accuracy * (1 - accuracy) / SAMPLE)


def assert_measured(recorded, measured_accuracy):
    """A recorded accuracy (all 10,000 test images) agrees with the measured one within 5 SE;
    with 600 images 8 SE is about 0.08, so a teacher 10% worse than its record (0.85) fails."""
    accuracy, se = measured_accuracy
    assert 8 * se <= 0.1 * recorded
    assert abs(accuracy - recorded) <= 5 * se, (accuracy, recorded, se)


def test_shipped_teacher_accuracy_matches_its_record(measured_accuracy):
    recorded = json.loads((TEACHER / "training.json").read_text())["test_accuracy"]
    assert recorded >= TARGET_ACCURACY
    assert_measured(recorded, measured_accuracy)


def test_shipped_teacher_carries_the_one_model_definition():
    # the remote code beside the weights is cache_tools' model file, byte for byte
    from cache_tools.efficientnet_lite import MODEL_CODE

    assert (TEACHER / MODEL_CODE.name).read_bytes() == MODEL_CODE.read_bytes()
    auto_map = json.loads((TEACHER / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "modeling_efficientnet_lite.EfficientNetLiteConfig",
        "AutoModelForImageClassification":
            "modeling_efficientnet_lite.EfficientNetLiteForImageClassification",
    }


@pytest.mark.slow
def test_shipped_teacher_loads_with_remote_code_without_cache_tools(tmp_path):
    # Pixels of real Fashion-MNIST test images, preprocessed as the teacher's pipeline does.
    teacher = load_teacher(TEACHER)
    images, labels = load_fashion_mnist("test")
    images, labels = images[:16], labels[:16]
    pixels = teacher.preprocess(images).contiguous().numpy()
    np.save(tmp_path / "pixels.npy", pixels)
    script = textwrap.dedent(f"""
        import sys

        import numpy as np
        import torch
        import transformers

        model = transformers.AutoModelForImageClassification.from_pretrained(
            {str(TEACHER)!r}, trust_remote_code=True, dtype=torch.float32
        ).eval()
        loaded = [name for name in sys.modules
                  if name.split(".")[0] in ("cache_tools", "tosc_sionna",
                                            "efficientnet_lite_pytorch")]
        assert not loaded, loaded
        assert type(model).__module__.startswith("transformers_modules."), type(model)
        with torch.no_grad():
            logits = model(pixel_values=torch.from_numpy(np.load("pixels.npy"))).logits
        np.save("logits.npy", logits.numpy())
        """)
    # a fresh interpreter that cannot see the repository (no cache_tools on its path),
    # offline, with its own cache for the copied remote code
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    remote = np.load(tmp_path / "logits.npy")

    import cache_tools.efficientnet_lite  # noqa: F401  (registers the architecture)

    local = transformers.AutoModelForImageClassification.from_pretrained(
        TEACHER, dtype=torch.float32
    ).eval()
    assert type(local).__module__ == "cache_tools.modeling_efficientnet_lite"
    with torch.no_grad():
        expected = local(pixel_values=torch.from_numpy(pixels)).logits.numpy()
    assert remote.shape == (16, 10)
    np.testing.assert_array_equal(remote, expected)
    # and they are the teacher's logits: real predictions, mostly right
    np.testing.assert_allclose(remote, teacher(images)[0], rtol=0, atol=1e-4)
    assert (remote.argmax(-1) == labels).mean() >= 0.8


def test_shipped_cache_verifies_against_the_debian_data(capsys, measured_accuracy):
    path = default_teacher_cache()
    assert cli.main(["verify", str(path), "--split", "train"]) == 0
    assert "OK (60,000 samples" in capsys.readouterr().out
    cache = TeacherCache(path)
    assert cache.spec.dataset == "fashion-mnist" and cache.spec.split == "train"
    assert cache.num_samples == 60000 and cache.num_views >= 2
    # the accuracy the cache records is its teacher's, measured
    assert_measured(cache.attrs["teacher_test_accuracy"], measured_accuracy)
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
