"""Bring your own data and teacher (issue 9): Hugging Face datasets, image folders, label sets.

Real data where it exists: Fashion-MNIST converted to a Hugging Face dataset
and saved to disk, an RGB image folder written here, tiny teachers saved and
reloaded offline.
"""

import json
import os
import socket
import subprocess
import sys
import time

import datasets
import numpy as np
import pytest
import tiny_teachers as tt
from script_modules import KD_JOB, load_script

from cache_tools import cli
from cache_tools.extract import ExtractionOptions
from cache_tools.labels import LabelMismatchError, align_labels
from cache_tools.teachers import load_teacher
from tosc_cache import TeacherCache
from tosc_cache.augment import augment, default_pad
from tosc_cache.datasets import (
    FASHION_MNIST_CLASSES,
    DatasetFormatError,
    DatasetNotFoundError,
    load_dataset,
    load_fashion_mnist,
)
from tosc_cache.integrity import row_hashes
from tosc_cache.probability import softmax
from tosc_sionna.data import DataSource, TeacherCacheDataset

os.environ["HF_HUB_OFFLINE"] = "1"
FOLDER_CLASSES = ("cat", "dog", "ship")


def run_cli(*args):
    return cli.main([str(a) for a in args])


def _fashion_dict(n_train=96, n_test=64):
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=list(FASHION_MNIST_CLASSES))})
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = load_fashion_mnist(split)
        splits[split] = datasets.Dataset.from_dict(
            {"image": list(images[:n]), "label": labels[:n].astype(int).tolist()},
            features=features)
    return datasets.DatasetDict(splits)


@pytest.fixture(scope="module")
def saved_fashion(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "fashion"
    _fashion_dict().save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("folder") / "shapes"
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 6)):
        for c, name in enumerate(FOLDER_CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[..., c] = 255  # a class cue
                if i == 0:  # one RGBA image: its alpha is dropped
                    rgba = np.concatenate([pixels, np.full((32, 32, 1), 128, np.uint8)], -1)
                    Image.fromarray(rgba, "RGBA").save(root / split / name / f"{i:03d}.png")
                else:
                    Image.fromarray(pixels).save(root / split / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"vit": tt.make_vit(root / "vit"),
            "encoder": tt.make_vit_encoder(root / "encoder"),
            "letters": tt.make_vit(root / "letters", class_names=list("abcdefghij")),
            "unnamed": tt.make_unnamed_vit(root / "unnamed"),
            "unnamed2": tt.make_unnamed_vit(root / "unnamed2", num_labels=2),
            "pair": tt.make_vit(root / "pair", class_names=["a", "b"])}


@pytest.mark.slow
def test_saved_hf_dataset_extract_verify_and_train(saved_fashion, models, tmp_path, capsys):

    import tosc_sionna as ts

    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--dataset", saved_fashion,
                   "--views", 2, "--out", out, "-q") == 0
    cache = TeacherCache(out)
    assert cache.spec.dataset == str(saved_fashion) and cache.num_samples == 96
    assert cache.spec.class_names == list(FASHION_MNIST_CLASSES)
    assert cache.spec.augmentation == {"name": "crop_flip", "pad": 2, "flip": True}
    # the converted dataset has the built-in loader's pixels: the same row hashes
    images, labels = load_fashion_mnist("train")
    np.testing.assert_array_equal(cache.arrays["row_hash"],
                                  row_hashes(images, labels, np.arange(96)))
    assert run_cli("verify", out) == 0
    assert "match verified" in capsys.readouterr().out
    data = TeacherCacheDataset(out, batch_size=32, view=0, shuffle=False)
    x, y = data[0]
    assert x.shape == (32, 28, 28, 1) and data.input_shape == (28, 28, 1)
    np.testing.assert_array_equal(x[..., 0], images[:32] / np.float32(255))
    assert y["teacher"].shape == (32, 10) and y["label"].shape == (32,)
    ts.set_seed(0)
    link = ts.make_link(ts.AWGNChannel(), num_symbols=4, num_classes=data.num_classes,
                        width=4, hidden_units=(8,), stochastic=True, seed=0)
    trainer = ts.make_trainer(link, steps_per_epoch=2, epochs=1, learning_rate=1e-3)
    history = trainer.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_rgb_image_folder_with_an_encoder_teacher(rgb_folder, models, tmp_path):
    from PIL import Image

    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["encoder"], "--dataset", rgb_folder,
                   "--views", 2, "--out", out, "-q") == 0
    cache = TeacherCache(out)
    assert cache.spec.class_names == list(FOLDER_CLASSES) and cache.num_samples == 36
    assert cache.arrays["head/weight"].shape[0] == 3
    assert run_cli("verify", out) == 0
    data = TeacherCacheDataset(out, batch_size=36, view=0, shuffle=False)
    x, y = data[0]
    assert x.shape == (36, 32, 32, 3) and y["teacher"].shape == (36, 3)
    first = np.asarray(Image.open(rgb_folder / "train" / "cat" / "000.png").convert("RGB"))
    np.testing.assert_array_equal(x[0], first / np.float32(255))
    np.testing.assert_array_equal(y["label"], np.repeat([0, 1, 2], 12))
    images, labels, names = load_dataset(str(rgb_folder), "test")
    assert images.shape == (18, 32, 32, 3) and names == FOLDER_CLASSES
    assert len(labels) == 18


def _permuted_copy(source, path, perm):
    """The same network with its classes in another order (head rows permuted)."""
    import torch
    import transformers

    model = transformers.AutoModelForImageClassification.from_pretrained(source)
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight[perm])
        model.classifier.bias.copy_(model.classifier.bias[perm])
    names = [FASHION_MNIST_CLASSES[p] for p in perm]
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    model.save_pretrained(path)
    transformers.AutoImageProcessor.from_pretrained(source).save_pretrained(path)
    return path


def test_permuted_teacher_labels_are_aligned(saved_fashion, models, tmp_path):
    perm = np.random.default_rng(3).permutation(10)
    permuted = _permuted_copy(models["vit"], tmp_path / "permuted", perm)
    caches = {}
    for name, model in (("plain", models["vit"]), ("permuted", permuted)):
        caches[name] = tmp_path / f"{name}.h5"
        assert run_cli("extract", "--model", model, "--dataset", saved_fashion, "--limit", 32,
                       "--logits", "--out", caches[name], "-q") == 0
    plain, aligned = TeacherCache(caches["plain"]), TeacherCache(caches["permuted"])
    assert aligned.spec.class_names == list(FASHION_MNIST_CLASSES)
    options = aligned.spec.dataset_options
    assert [FASHION_MNIST_CLASSES[p] for p in perm] == options["teacher_class_names"]
    assert options["label_permutation"] == np.argsort(perm).tolist()
    np.testing.assert_allclose(aligned.teacher_probs(), plain.teacher_probs(), atol=2e-3)
    assert np.array_equal(aligned.teacher_probs().argmax(-1), plain.teacher_probs().argmax(-1))
    assert aligned.attrs["teacher_accuracy"] == plain.attrs["teacher_accuracy"]


def test_unrelated_labels_refused_unless_mapped(saved_fashion, models, tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["letters"], "--dataset", saved_fashion,
                   "--limit", 16, "--out", out, "-q") == 2
    err = capsys.readouterr().err
    assert "are not the dataset's" in err and "'a'" in err and "'Trouser'" in err
    assert "--label-map" in err and not out.exists()
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps(dict(zip("abcdefghij", FASHION_MNIST_CLASSES, strict=True))))
    assert run_cli("extract", "--model", models["letters"], "--dataset", saved_fashion,
                   "--limit", 16, "--label-map", mapping, "--out", out, "-q") == 0
    assert TeacherCache(out).spec.dataset_options["teacher_class_names"] == list("abcdefghij")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": "Sweater", "zz": "Bag"}))
    assert run_cli("extract", "--model", models["letters"], "--dataset", saved_fashion,
                   "--limit", 16, "--label-map", bad, "--out", tmp_path / "d.h5", "-q") == 2
    err = capsys.readouterr().err
    assert "'zz'" in err and "'Sweater'" in err and not (tmp_path / "d.h5").exists()


def test_default_label_names_are_aligned_by_index(models, tmp_path, capsys):
    """A teacher fine-tuned without id2label (LABEL_0 ... LABEL_9) on the built-in
    Fashion-MNIST: aligned by index with a one-line note, as docs/your-data.md says."""
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["unnamed"], "--limit", 32, "--logits",
                   "--out", out, "-q") == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tosc-cache: note: ")
    assert "LABEL_0 ... LABEL_9 (transformers' defaults" in err
    assert "in the dataset's order (LABEL_0 = 'T-shirt/top', ..., LABEL_9 = 'Ankle boot')" in err
    assert "If the teacher's order differs, pass --label-map FILE" in err
    cache = TeacherCache(out)
    assert cache.spec.class_names == list(FASHION_MNIST_CLASSES)
    options = cache.spec.dataset_options
    assert options["teacher_class_names"] == [f"LABEL_{i}" for i in range(10)]
    assert options["label_permutation"] == list(range(10))
    images, _ = load_fashion_mnist("train")
    logits, _ = load_teacher(models["unnamed"])(images[:32])
    np.testing.assert_allclose(cache.teacher_probs()[:, 0], softmax(logits), atol=2e-3)
    assert run_cli("verify", out) == 0
    # another order: a label map of the default names, and no note
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({f"LABEL_{i}": FASHION_MNIST_CLASSES[9 - i]
                                   for i in range(10)}))
    capsys.readouterr()
    assert run_cli("extract", "--model", models["unnamed"], "--limit", 32, "--logits",
                   "--label-map", mapping, "--out", tmp_path / "mapped.h5", "-q") == 0
    assert capsys.readouterr().err == ""
    mapped = TeacherCache(tmp_path / "mapped.h5")
    np.testing.assert_allclose(mapped.teacher_probs()[:, 0], softmax(logits)[:, ::-1],
                               atol=2e-3)
    # another number of classes: nothing to align by index, refused in one line
    assert run_cli("extract", "--model", models["unnamed2"], "--limit", 32,
                   "--out", tmp_path / "two.h5", "-q") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 classes carry transformers' default names" in err
    assert "LABEL_0, LABEL_1" in err and "the dataset has 10 classes" in err
    assert "--label-map FILE" in err and not (tmp_path / "two.h5").exists()
    # a dataset whose classes are really named LABEL_i is aligned by name, without a note
    by_name = align_labels(["LABEL_1", "LABEL_0"], ["LABEL_0", "LABEL_1"])
    assert by_name.permutation == [1, 0] and not by_name.by_index


def test_topk_above_the_class_count_keeps_every_class(models, tmp_path):
    from PIL import Image

    folder = tmp_path / "pair"
    for c, name in enumerate("ab"):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            pixels = np.random.default_rng(4 * c + i).integers(0, 256, (28, 28), np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["pair"], "--dataset", folder, "--topk", 5,
                   "--out", out, "-q") == 0
    cache = TeacherCache(out)
    assert (cache.spec.probs, cache.spec.topk, cache.num_classes) == ("topk", 2, 2)
    np.testing.assert_allclose(cache.teacher_probs().sum(-1), 1, atol=1e-3)
    assert cache.attrs["compression_kl_max"] < 1e-4  # nothing dropped: float16 rounding only
    options = ExtractionOptions("m", "o.h5", topk=5)
    assert options.compression(2) == ("topk", 2, 0, 0)
    assert options.compression(1000) == ("topk", 5, 0, 0)
    assert ExtractionOptions("m", "o.h5", topk=40, basis_rank=3).compression(10) == \
        ("basis", 10, 3, 0)


def test_label_alignment_by_name_and_many_to_one():
    teacher = ["Dog", "cat", "tabby_cat", "truck"]
    with pytest.raises(LabelMismatchError, match="are not the dataset's"):
        align_labels(teacher, ["cat", "dog"])
    by_name = align_labels(["Dog", "cat"], ["cat", "dog"])
    assert by_name.permutation == [1, 0] and not by_name.identity
    np.testing.assert_array_equal(by_name.apply(np.array([[1.0, 2.0]])), [[2.0, 1.0]])
    merged = align_labels(teacher, ["cat", "dog"], {"cat": "cat", "tabby cat": "cat",
                                                    "dog": "dog"})
    assert merged.permutation is None and merged.to_dict()["label_targets"] == [1, 0, 0, -1]
    logits = np.random.default_rng(0).normal(size=(5, 4))
    p = softmax(logits)
    kept = p[:, :3] / p[:, :3].sum(-1, keepdims=True)  # the truck is dropped
    expected = np.stack([kept[:, 1] + kept[:, 2], kept[:, 0]], -1)
    np.testing.assert_allclose(softmax(merged.apply(logits)), expected, rtol=1e-10)
    with pytest.raises(LabelMismatchError, match="no teacher class to the dataset classes"):
        align_labels(teacher, ["cat", "dog", "bird"], {"cat": "cat", "dog": "dog"})


def test_no_flip_and_pad_are_recorded_and_replayed(saved_fashion, models, tmp_path):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--dataset", saved_fashion,
                   "--limit", 48, "--views", 4, "--pad", 3, "--no-flip", "--out", out,
                   "-q") == 0
    cache = TeacherCache(out)
    config = {"name": "crop_flip", "pad": 3, "flip": False}
    assert cache.spec.augmentation == config
    data = TeacherCacheDataset(out, shuffle=False)
    images, _ = load_fashion_mnist("train")
    rows, views = np.repeat(np.arange(48), 3), np.tile([1, 2, 3], 48)
    replayed = data.replay_views(rows, views)
    seeds = cache.view_seeds[rows, views]
    for r, s, got in zip(rows, seeds, replayed, strict=True):
        np.testing.assert_array_equal(got, augment(images[r], int(s), config))
        rng = np.random.default_rng(int(s))
        dy, dx = rng.integers(0, 7, size=2)
        crop = np.pad(images[r], 3)[dy:dy + 28, dx:dx + 28]
        np.testing.assert_array_equal(got, crop)  # never mirrored, whatever the seed drew
    assert default_pad((28, 28)) == 2 and default_pad((32, 32)) == 2
    assert default_pad((224, 224)) == 16


@pytest.mark.slow
def test_kd_job_quick_on_a_saved_hf_dataset(saved_fashion, models, tmp_path):
    cache = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--dataset", saved_fashion,
                   "--out", cache, "-q") == 0
    module = load_script(KD_JOB)
    out = tmp_path / "run"
    assert module.main(["--quick", "--cache", str(cache), "--out", str(out), "--width", "4",
                        "--n-symbols", "4"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == str(saved_fashion) and results["test_images"] == 64
    assert results["input_shape"] == [28, 28, 1]
    assert all(0.0 <= a <= 1.0 for a in results["accuracy"])


def test_bad_datasets_are_clear_errors_and_leave_no_cache(models, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "c.h5"
    fashion = _fashion_dict(16, 8)
    # an unknown column
    path = tmp_path / "fashion"
    fashion.save_to_disk(str(path))
    assert run_cli("extract", "--model", models["vit"], "--dataset", path, "--image-column",
                   "picture", "--out", out, "-q") == 2
    assert "no column 'picture'" in capsys.readouterr().err
    # no labels
    unlabelled = tmp_path / "unlabelled"
    fashion["train"].remove_columns("label").save_to_disk(str(unlabelled))
    assert run_cli("extract", "--model", models["vit"], "--dataset", unlabelled,
                   "--out", out, "-q") == 2
    assert "no label column" in capsys.readouterr().err
    # an empty split (datasets cannot even read an empty saved one back)
    with pytest.raises(DatasetFormatError, match="is empty"):
        load_dataset(fashion["train"].select([]), "train")
    empty = tmp_path / "empty"
    fashion["train"].select([]).save_to_disk(str(empty))
    assert run_cli("extract", "--model", models["vit"], "--dataset", empty, "--out", out,
                   "-q") == 2
    assert "cannot be read" in capsys.readouterr().err
    # a split that does not exist
    assert run_cli("extract", "--model", models["vit"], "--dataset", path, "--split",
                   "validation", "--out", out, "-q") == 2
    assert "no split 'validation'" in capsys.readouterr().err
    # mixed image sizes without a resize rule: refused when met, nothing complete left
    mixed = tmp_path / "mixed"
    for c, name in enumerate("abcdefghij"):  # the letters teacher's classes
        (mixed / name).mkdir(parents=True)
        size = 28 if c < 5 else 30
        Image.fromarray(np.full((size, size), 9 * c, np.uint8)).save(mixed / name / "0.png")
    assert run_cli("extract", "--model", models["letters"], "--dataset", mixed, "--out", out,
                   "-q") == 2
    assert "different sizes" in capsys.readouterr().err and not out.exists()
    assert run_cli("extract", "--model", models["letters"], "--dataset", mixed, "--resize", 28,
                   28, "--out", tmp_path / "resized.h5", "--overwrite", "-q") == 0
    resized = TeacherCache(tmp_path / "resized.h5")
    assert resized.spec.dataset_options["resize"] == [28, 28]
    TeacherCacheDataset(resized, shuffle=False)  # read back with the same resize
    # built-in data with HF options, and a folder that is not a dataset
    assert run_cli("extract", "--model", models["vit"], "--resize", 32, 32, "--out", out,
                   "-q") == 2
    assert "built in" in capsys.readouterr().err
    with pytest.raises(DatasetFormatError, match="no class sub-folders"):
        (tmp_path / "nothing").mkdir()
        load_dataset(str(tmp_path / "nothing"), "train")
    with pytest.raises(DatasetNotFoundError, match="not a dataset folder"):
        load_dataset(str(tmp_path / "missing"), "train")


def test_splits_are_never_handed_out_under_another_name(tmp_path):
    from PIL import Image

    flat = tmp_path / "flat"
    for name in ("a", "b"):
        (flat / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(flat / name / "0.png")
    assert len(load_dataset(str(flat), "train")[0]) == 2
    with pytest.raises(DatasetNotFoundError, match="it is one split, 'train'"):
        load_dataset(str(flat), "test")  # would evaluate on the training images
    single = tmp_path / "single"  # one saved Dataset: its split name is not kept
    _fashion_dict(8, 4)["test"].save_to_disk(str(single))
    assert len(load_dataset(str(single), "train")[1]) == 4
    with pytest.raises(DatasetNotFoundError, match="holds one split"):
        load_dataset(str(single), "test")


def test_grey_first_then_colour_is_refused_unless_channels_given(tmp_path):
    from PIL import Image

    root = tmp_path / "mixed"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.fromarray(np.full((8, 8), 50, np.uint8)).save(root / "a" / "0.png")
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(root / "b" / "0.png")
    images, _, _ = load_dataset(str(root), "train")
    assert images.shape == (2, 8, 8)
    with pytest.raises(DatasetFormatError, match="colour image.*--channels 3"):
        images[np.array([0, 1])]
    rgb, _, _ = load_dataset(str(root), "train", channels=3)
    both = rgb[np.array([0, 1])]
    assert both.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(both[0], np.full((8, 8, 3), 50))  # grey replicated
    np.testing.assert_array_equal(both[1], red)
    grey, _, _ = load_dataset(str(root), "train", channels=1)
    assert grey[np.array([1])].shape == (1, 8, 8)


def test_verify_and_reader_follow_a_dataset_that_moved(saved_fashion, models, tmp_path,
                                                       capsys):
    import shutil

    copy = tmp_path / "original"
    shutil.copytree(saved_fashion, copy)
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--dataset", copy, "--limit", 16,
                   "--out", out, "-q") == 0
    moved = tmp_path / "moved"
    copy.rename(moved)
    assert run_cli("verify", out) == 2  # not where the cache says
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"extracted from the dataset {copy} (split 'train'), which is not there any" in err
    assert "If it moved, pass its new place: --dataset NEW_PATH" in err
    with pytest.raises(DatasetNotFoundError, match=r"DataSource\(dataset=NEW_PATH\)"):
        TeacherCacheDataset(out)
    assert run_cli("verify", out, "--dataset", moved) == 0
    TeacherCacheDataset(out, DataSource(dataset=str(moved)))


def test_reader_refuses_a_dataset_with_other_classes(saved_fashion, models, tmp_path):
    from tosc_cache import CacheMismatchError

    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--dataset", saved_fashion,
                   "--limit", 16, "--out", out, "-q") == 0
    renamed = _fashion_dict(16, 8)
    renamed = renamed.cast_column("label", datasets.ClassLabel(
        names=[n.upper() for n in FASHION_MNIST_CLASSES]))
    other = tmp_path / "renamed"
    renamed.save_to_disk(str(other))
    with pytest.raises(CacheMismatchError, match="must be the same classes"):
        TeacherCacheDataset(out, DataSource(dataset=str(other)))


def test_an_unreachable_hub_id_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match="needs network access.*save_to_disk"):
        load_dataset("someone/no-such-dataset-here", "train")


def test_a_bare_name_fails_fast_without_network(models, tmp_path, monkeypatch):
    """`--dataset photoz` (neither a folder nor on a reachable Hub): exit 2 in one line. The
    Hub is asked once and the dataset is then read in offline mode (from the HF cache only),
    not after ~25 s of the hub client's retries; the times are printed, not asserted (a
    timed assertion is a benchmark's job)."""
    with socket.socket() as s:  # a port nobody listens on: the Hub refuses to connect
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = endpoint
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "cache_tools", "extract", "--model",
                             str(models["vit"]), "--dataset", "photoz", "--out",
                             str(tmp_path / "p.h5")], env=env, capture_output=True,
                            text=True, timeout=300)
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert err.count("\n") == 1 and "Hugging Face dataset 'photoz'" in err
    assert f"the Hub, {endpoint}, cannot be reached" in err and "save_to_disk" in err
    # the load alone, in this process (libraries imported), offline mode off: one probe of
    # the Hub, then datasets' load in offline mode (where the hub client does not retry)
    from huggingface_hub import constants

    from tosc_cache import hf_images

    for module, name in ((constants, "ENDPOINT"), (datasets.config, "HF_ENDPOINT")):
        monkeypatch.setattr(module, name, endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    probes, loads = [], []
    probe, load = hf_images.hub_reachable, datasets.load_dataset

    def counted_probe(*args, **kwargs):
        probes.append(probe(*args, **kwargs))
        return probes[-1]

    def offline_load(*args, **kwargs):
        loads.append((datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE))
        return load(*args, **kwargs)

    monkeypatch.setattr(hf_images, "hub_reachable", counted_probe)
    monkeypatch.setattr(datasets, "load_dataset", offline_load)
    start = time.monotonic()
    with pytest.raises(DatasetNotFoundError, match="cannot be reached.*offline, pass a folder"):
        load_dataset("photoz", "train")
    load_seconds = time.monotonic() - start
    assert probes == [False]  # asked once: the port refuses
    assert loads == [(True, True)]  # then read offline only
    assert constants.HF_HUB_OFFLINE is False  # offline mode was for that one call
    print(f"photoz refused in {seconds:.2f} s (command), {load_seconds:.2f} s (load)")


def test_fashion_mnist_download_is_checked(tmp_path, monkeypatch):
    """The fallback download: right bytes land in place; wrong bytes leave nothing."""
    import hashlib

    from tosc_cache import datasets as ds

    debian = ds.find_fashion_mnist()
    mirror = "file://" + str(debian) + "/"
    target = tmp_path / "keras"
    with pytest.raises(OSError, match="sha256"):  # Debian re-compressed the originals
        ds.fetch_fashion_mnist(target, mirrors=[mirror])
    assert not any(target.iterdir())  # no partial or unchecked file left
    sums = {name: hashlib.sha256((debian / name).read_bytes()).hexdigest() for name in ds.SHA256}
    monkeypatch.setattr(ds, "SHA256", sums)
    # another process's download in progress (its old fixed name) is not ours to touch
    name = next(iter(ds.SHA256))
    theirs = target / (name + ".part")
    theirs.write_bytes(b"half of another download")
    assert ds.fetch_fashion_mnist(target, mirrors=["file:///nonexistent/", mirror]) == target
    assert theirs.read_bytes() == b"half of another download"
    assert sorted(p.name for p in target.iterdir()) == sorted([*ds.SHA256, theirs.name])
    assert (target / name).stat().st_mode & 0o777 == 0o644
    images, labels = ds.load_fashion_mnist("test", target)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    monkeypatch.setattr(ds, "candidate_dirs", lambda data_dir=None: [tmp_path / "none"])
    monkeypatch.setattr(ds, "KERAS_DIR", tmp_path / "k2")
    monkeypatch.setattr(ds, "MIRRORS", ("file:///nonexistent/",))
    with pytest.raises(DatasetNotFoundError, match="Downloading them failed.*apt-get"):
        ds.find_fashion_mnist()
