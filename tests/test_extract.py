"""End-to-end extraction with small Hugging Face teachers saved to disk and reloaded offline."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tiny_teachers as tt
from conftest import assert_batches_equal

from cache_tools import cli
from cache_tools import extract as extract_module
from cache_tools.teachers import Teacher, load_teacher
from tosc_cache import CacheMismatchError, TeacherCache
from tosc_cache.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from tosc_cache.probability import kl_divergence, softmax
from tosc_sionna.data import DataSource, LabelPolicy, TeacherCacheDataset

os.environ["HF_HUB_OFFLINE"] = "1"  # everything loads from local directories
KILLER = Path(__file__).with_name("extract_and_kill.py")
WAITER = Path(__file__).with_name("extract_and_wait.py")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "vit": tt.make_vit(root / "vit"),
        "resnet": tt.make_resnet(root / "resnet"),
        "clip": tt.make_clip(root / "clip"),
        "encoder": tt.make_vit_encoder(root / "encoder"),
    }


def run_cli(*args):
    return cli.main([str(a) for a in args])


@pytest.mark.parametrize("name", ["vit", "resnet", "clip"])
def test_extract_info_verify(models, tmp_path, capsys, name):
    out = tmp_path / f"{name}.h5"
    assert run_cli("extract", "--model", models[name], "--out", out, "--limit", 96,
                   "--views", 2, "--features", "--batch-size", 32, "-q") == 0
    cache = TeacherCache(out)
    assert cache.spec.teacher_kind == ("clip" if name == "clip" else "classifier")
    assert cache.spec.extra == ({"prompt": "a photo of a {}."} if name == "clip" else {})
    assert cache.arrays["teacher/topk_values"].shape == (96, 2, 5)
    assert cache.arrays["teacher/features"].dtype == np.float16
    assert cache.spec.class_names == list(FASHION_MNIST_CLASSES)
    assert 0.0 <= cache.attrs["teacher_accuracy"] <= 1.0
    assert cache.attrs["compression_kl_mean"] < 0.05
    # the loaded teacher reproduces the cached view-0 outputs within the compression's error
    teacher = load_teacher(models[name], class_names=list(FASHION_MNIST_CLASSES))
    images, _ = load_fashion_mnist("train")
    logits, _ = teacher(images[:96])
    kl = kl_divergence(softmax(logits), cache.teacher_probs()[:, 0])
    assert kl.max() <= cache.attrs["compression_kl_max"] + 1e-4
    capsys.readouterr()
    assert run_cli("info", out) == 0
    text = capsys.readouterr().out
    for needle in ("complete", "top-5 probabilities", "bytes per sample per view",
                   "fidelity T=1", "fidelity T=4", "KL(teacher^T || stored^T)",
                   cache.spec.teacher_digest, "96 samples"):
        assert needle in text
    assert run_cli("info", out, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["views"] == 2 and info["bytes_per_sample_per_view"] > 0
    # fidelity at the training temperature, measured as training tempers
    from tosc_cache.probability import tempered_kl

    kl4 = tempered_kl(softmax(logits), cache.teacher_probs()[:, 0], 4.0)
    fid4 = info["reconstruction_kl"]["4"]
    assert kl4.max() <= fid4["kl_max"] + 1e-4 and fid4["kl_max"] > 0
    assert fid4["scaled_kl_mean"] == pytest.approx(16 * fid4["kl_mean"])
    assert run_cli("verify", out, "--split", "train") == 0
    assert run_cli("verify", out, "--split", "test") == 1
    assert "split 'train' in the cache, 'test' given" in capsys.readouterr().err


def test_clip_logits_are_zero_shot_cosines(models):
    import torch

    teacher = load_teacher(models["clip"], class_names=list(FASHION_MNIST_CLASSES))
    images, _ = load_fashion_mnist("test")
    logits, features = teacher(images[:8])
    model = teacher.model
    with torch.no_grad():
        pixels = teacher.preprocess(images[:8])
        image = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        text = model.text_projection(model.text_model(**teacher.text_inputs).pooler_output)
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        expected = (model.logit_scale.exp() * image @ text.T).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert features.shape == (8, 16)
    assert teacher.text_inputs["input_ids"].shape[0] == 10  # one prompt per class


def test_preprocessing_follows_the_image_processor(models):
    import transformers

    images, _ = load_fashion_mnist("test")
    images = images[:16]
    for name, max_err in (("vit", 0.01), ("resnet", 0.2), ("clip", 0.3)):
        teacher = load_teacher(models[name], class_names=list(FASHION_MNIST_CLASSES))
        ours = teacher.preprocess(images).numpy()
        processor = transformers.AutoImageProcessor.from_pretrained(models[name])
        ref = processor([np.repeat(i[..., None], 3, -1) for i in images],
                        return_tensors="np")["pixel_values"]
        assert ours.shape == ref.shape
        # bilinear matches to one grey level; bicubic kernels differ at a few edge pixels
        assert np.abs(ours - ref).max() < max_err
        assert np.abs(ours - ref).mean() < 0.005


def test_encoder_teacher_fits_and_stores_a_head(models, tmp_path):
    train = tmp_path / "enc-train.h5"
    assert run_cli("extract", "--model", models["encoder"], "--out", train, "--limit", 400,
                   "--logits", "--features", "--batch-size", 100, "-q") == 0
    cache = TeacherCache(train)
    assert cache.spec.teacher_kind == "encoder"
    weight, bias = cache.arrays["head/weight"], cache.arrays["head/bias"]
    assert weight.shape == (10, 32) and bias.shape == (10,)
    # stored logits are the head applied to the embeddings, up to float16 rounding
    # of both the stored features and the stored logits
    features = cache.teacher_features()[:, 0]
    logits = features @ weight.T + bias
    bound = 2.0**-10 * (np.abs(features) @ np.abs(weight).T + np.abs(logits)) + 1e-4
    assert np.all(np.abs(cache.arrays["teacher/logits"][:, 0] - logits) <= bound)
    assert cache.attrs["teacher_accuracy"] > 0.5  # a linear probe on random-ViT features
    test = tmp_path / "enc-test.h5"
    assert run_cli("extract", "--model", models["encoder"], "--out", test, "--split", "test",
                   "--limit", 50, "-q") == 2  # no head for the test split without --head-from
    assert run_cli("extract", "--model", models["encoder"], "--out", test, "--split", "test",
                   "--limit", 50, "--head-from", train, "-q") == 0
    np.testing.assert_array_equal(TeacherCache(test).arrays["head/weight"], weight)


def test_reader_replays_the_views_the_teacher_saw(models, tmp_path, monkeypatch):
    seen = []
    original = Teacher.__call__

    def recording(self, images):
        seen.append(np.array(images))
        return original(self, images)

    monkeypatch.setattr(Teacher, "__call__", recording)
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 40,
                   "--views", 3, "--batch-size", 30, "--seed", 5, "-q") == 0
    # batches are view-major: rows [start, stop) for view 0, then view 1, ...
    seen_views = np.concatenate([b.reshape(3, -1, 28, 28).transpose(1, 0, 2, 3) for b in seen])
    dataset = TeacherCacheDataset(out, batch_size=16, seed=3)
    rows = np.repeat(np.arange(40), 3)
    views = np.tile(np.arange(3), 40)
    replayed = dataset.replay_views(rows, views).reshape(40, 3, 28, 28)
    np.testing.assert_array_equal(replayed, seen_views)
    assert not np.array_equal(seen_views[:, 1], seen_views[:, 0])  # views do differ


def test_reader_batches_and_determinism(models, tmp_path):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 100,
                   "--views", 4, "-q") == 0
    a = TeacherCacheDataset(out, batch_size=32, seed=1)
    b = TeacherCacheDataset(out, batch_size=32, seed=1)
    assert len(a) == 4
    x, y = a[0]
    assert x.shape == (32, 28, 28, 1) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    assert y["teacher"].shape == (32, 10) and y["label"].shape == (32,)
    np.testing.assert_allclose(y["teacher"].sum(1), 1, rtol=1e-5)
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i][0], b[i][0])
        assert_batches_equal(a[i][1], b[i][1])
    assert a[3][0].shape[0] == 4  # last, partial batch
    first_epoch = (a.order.copy(), a.views.copy())
    a.on_epoch_end()
    assert not np.array_equal(a.order, first_epoch[0])
    assert not np.array_equal(a.views, first_epoch[1])
    # labels match the dataset
    _, labels = load_fashion_mnist("train")
    rows = a.order[:32]
    np.testing.assert_array_equal(a[0][1]["label"], labels[rows])
    c = TeacherCacheDataset(out, batch_size=50, shuffle=False, view=0, targets="label")
    np.testing.assert_array_equal(c[0][1], labels[:50])
    from tosc_sionna.data import load_fashion_mnist as load_student_inputs

    np.testing.assert_array_equal(c[0][0], load_student_inputs("train")[0][:50])
    with pytest.raises(ValueError, match="view must be"):
        TeacherCacheDataset(out, view=4)


def test_reader_refuses_other_data(models, tmp_path):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 64, "-q") == 0
    images, labels = load_fashion_mnist("train")
    changed = images.copy()
    changed[10, 5, 5] ^= 1  # one pixel
    with pytest.raises(CacheMismatchError, match=r"1 of 64 checked rows differ \(row 10 "):
        TeacherCacheDataset(out, DataSource(changed, labels))
    with pytest.raises(CacheMismatchError, match="64 of 64 checked rows differ"):
        TeacherCacheDataset(out, DataSource(images[::-1], labels[::-1]))
    with pytest.raises(CacheMismatchError, match="only 10 samples"):
        TeacherCacheDataset(out, DataSource(images[:10], labels[:10]))
    TeacherCacheDataset(out, DataSource(images, labels))


def test_cli_errors_and_exit_codes(models, tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", tmp_path / "nope", "--out", out, "-q") == 2
    assert "not a local model directory" in capsys.readouterr().err
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 0, "-q") == 2
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 20,
                   "--data-dir", tmp_path, "-q") == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 20, "-q") == 0
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 20, "-q") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert run_cli("verify", tmp_path / "missing.h5", "--split", "train") == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["extract"])
    assert exit_info.value.code == 2


def test_a_teacher_without_an_image_processor_is_one_line(models, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(models["vit"], bare)
    (bare / "preprocessor_config.json").unlink()
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", bare, "--limit", 16, "--out", out, "-q") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tosc-cache: ")
    assert f"{bare}: it has no preprocessor_config.json" in err
    assert "AutoImageProcessor.from_pretrained(BASE_MODEL).save_pretrained(" in err
    assert not out.exists()


def test_a_second_extraction_into_a_live_output_is_refused(models, tmp_path, capsys):
    """A resubmitted job while the first still runs: refused at once, in one line; the
    first finishes cleanly and leaves neither stage nor lock."""
    out, stage, lock = tmp_path / "c.h5", tmp_path / "c.h5.partial", tmp_path / "c.h5.lock"
    args = ["extract", "--model", str(models["vit"]), "--out", str(out), "--limit", "64",
            "--batch-size", "16", "-q"]
    go = tmp_path / "go"
    # the first stores one batch, then holds on (a long extraction) until `go` appears
    first = subprocess.Popen([sys.executable, str(WAITER), str(go), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(stage.glob("rows-*.npz")):
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        shards = sorted(stage.glob("rows-*.npz"))
        assert len(shards) == 1 and lock.exists()
        start = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "cache_tools", *args],
                                capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - start
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1, second.stderr
        assert f"another extraction is writing {out}" in second.stderr
        assert "run this command again" in second.stderr
        # in-process (torch already imported): refused before any data or teacher is loaded
        loaded = []

        def loader(name):
            def refused_too_late(*args, **kwargs):
                loaded.append(name)
                raise AssertionError(f"{name} ran before the refusal")
            return refused_too_late

        with pytest.MonkeyPatch.context() as patch:
            for name in ("load_dataset", "load_teacher"):
                patch.setattr(extract_module, name, loader(name))
            start = time.monotonic()
            assert run_cli(*args) == 2
            assert run_cli(*args, "--overwrite") == 2
            in_process = time.monotonic() - start
        assert loaded == []
        assert capsys.readouterr().err.count("another extraction is writing") == 2
        assert sorted(stage.glob("rows-*.npz")) == shards  # the second ones wrote nothing
        print(f"second extraction refused in {seconds:.2f} s (a new process), "
              f"{in_process / 2:.3f} s (in process)")
    finally:
        go.touch()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert first.stderr.read() == ""
    assert not stage.exists() and not lock.exists()
    assert run_cli("verify", out) == 0


def test_a_killed_extraction_does_not_lock_out_its_resume(models, tmp_path):
    """The lock of a SIGKILLed extraction dies with it: the same command resumes."""
    args = ["--model", models["vit"], "--limit", 64, "--views", 2, "--batch-size", 16, "-q"]
    whole = tmp_path / "whole.h5"
    assert run_cli("extract", "--out", whole, *args) == 0
    out, stage, lock = tmp_path / "k.h5", tmp_path / "k.h5.partial", tmp_path / "k.h5.lock"
    killed = subprocess.run([sys.executable, str(KILLER), "0", "2", "extract", "--out",
                             str(out), *map(str, args)], timeout=300)
    assert killed.returncode == -signal.SIGKILL  # a real kill, after its 2nd batch
    assert len(list(stage.glob("rows-*.npz"))) == 2 and not out.exists()
    assert lock.exists()  # the file stays; the OS released the lock on it
    assert run_cli("extract", "--out", out, *args) == 0
    assert not stage.exists() and not lock.exists()
    a, b = TeacherCache(whole), TeacherCache(out)
    assert a.arrays.keys() == b.arrays.keys()
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])


def test_progress_lines_when_piped(models, tmp_path, capsys):
    # in-process: captured streams are not terminals, as when the command is piped
    assert run_cli("extract", "--model", models["vit"], "--out", tmp_path / "c.h5",
                   "--limit", 64) == 0
    result = capsys.readouterr()
    assert "extract: 64/64 samples" in result.err
    assert "wrote" in result.err and result.out == ""
    assert run_cli("extract", "--model", models["vit"], "--out", tmp_path / "c.h5",
                   "--limit", 64, "--overwrite", "-q") == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""


@pytest.mark.slow
def test_resume_after_kill_gives_identical_cache(models, tmp_path):
    args = ["--model", str(models["resnet"]), "--limit", "1200", "--views", "2",
            "--batch-size", "16", "--features", "int8", "-q"]
    whole = tmp_path / "whole.h5"
    assert run_cli("extract", "--out", whole, *args) == 0
    path = tmp_path / "killed.h5"
    stage = tmp_path / "killed.h5.partial"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cache_tools", "extract", "--out", str(path), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(stage.glob("rows-*.npz"))) < 5:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # a real kill, mid-run
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    shards = len(list(stage.glob("rows-*.npz")))
    assert 5 <= shards < 1200 // 8 and not path.exists()
    with pytest.raises(Exception, match="interrupted extraction"):
        TeacherCache(path)
    assert run_cli("extract", "--out", path, *args) == 0
    assert not stage.exists()
    a, b = TeacherCache(whole), TeacherCache(path)
    assert a.arrays.keys() == b.arrays.keys()
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    assert a.attrs == b.attrs


def test_test_accuracy_recorded(models, tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 32,
                   "--test-accuracy", "--batch-size", 500, "-q") == 0
    cache = TeacherCache(out)
    teacher = load_teacher(models["vit"])
    images, labels = load_fashion_mnist("test")
    logits, _ = teacher(images)
    expected = float(np.mean(logits.argmax(-1) == labels))
    assert cache.attrs["teacher_test_accuracy"] == pytest.approx(expected)
    capsys.readouterr()
    assert run_cli("info", out) == 0
    assert f"{expected:.4f} (teacher, test split)" in capsys.readouterr().out


def test_reader_labelled_fraction(models, tmp_path):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 200, "-q") == 0
    data = TeacherCacheDataset(out, batch_size=200, seed=4, labelling=LabelPolicy(0.1))
    _, y = data[0]
    assert np.sum(y["labelled"]) == 20 and np.sum(y["label"] == -1) == 180
    np.testing.assert_array_equal(y["labelled"] == 1, y["label"] >= 0)
    same = TeacherCacheDataset(out, batch_size=200, seed=4, labelling=LabelPolicy(0.1))
    np.testing.assert_array_equal(same.labelled, data.labelled)
    data.on_epoch_end()  # the labelled subset is fixed across epochs
    np.testing.assert_array_equal(same.labelled, data.labelled)
    with pytest.raises(ValueError, match="labelled fraction"):
        TeacherCacheDataset(out, labelling=LabelPolicy(1.5))


def test_reader_labelled_only_cycles_the_labelled_subset(models, tmp_path):
    out = tmp_path / "c.h5"
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 200, "-q") == 0
    full = TeacherCacheDataset(out, batch_size=64, seed=4, labelling=LabelPolicy(0.1))
    data = TeacherCacheDataset(out, batch_size=64, seed=4,
                               labelling=LabelPolicy(0.1, only=True))
    assert len(data) == len(full) == 4  # as many steps as the distilled run
    ys = np.concatenate([data[i][1]["label"] for i in range(len(data))])
    assert len(ys) == 200 and np.all(ys >= 0)
    served = data.order
    assert set(served) == set(np.flatnonzero(full.labelled))
    # every labelled sample once per pass of 20: 10 passes, each a permutation
    np.testing.assert_array_equal(np.bincount(served, minlength=200)[full.labelled], 10)
    assert not np.array_equal(served[:20], served[20:40])
    with pytest.raises(ValueError, match="keeps no sample"):
        TeacherCacheDataset(out, labelling=LabelPolicy(0.0, only=True))


def test_extract_basis_compression(models, tmp_path, capsys):
    out = tmp_path / "basis.h5"
    assert run_cli("extract", "--model", models["vit"], "--out", out, "--limit", 64,
                   "--views", 2, "--basis", 3, "--topk", 4, "--batch-size", 32, "-q") == 0
    cache = TeacherCache(out)
    assert cache.spec.probs == "basis" and cache.spec.rank == 3 and cache.spec.topk == 4
    assert cache.arrays["teacher/basis_coeffs"].shape == (64, 2, 3)
    assert cache.arrays["teacher/basis_residuals"].shape == (64, 2, 2)
    assert cache.attrs["format_version"] == 3
    teacher = load_teacher(models["vit"], class_names=list(FASHION_MNIST_CLASSES))
    images, labels = load_fashion_mnist("train")
    logits, _ = teacher(images[:64])
    from tosc_cache.probability import tempered_kl

    fidelity = json.loads(cache.attrs["compression_fidelity"])
    for tau in (1, 4):
        kl = tempered_kl(softmax(logits), cache.teacher_probs()[:, 0], tau)
        assert kl.max() <= fidelity[str(tau)]["kl_max"] + 1e-5
    assert fidelity["1"]["kl_mean"] < 0.05
    # the recorded accuracy is that of the stored distributions
    stored = cache.teacher_probs()[:, 0].argmax(-1)
    assert cache.attrs["teacher_accuracy"] == np.mean(stored == labels[:64])
    assert run_cli("verify", out, "--split", "train") == 0
    assert run_cli("extract", "--model", models["vit"], "--out", tmp_path / "x.h5",
                   "--limit", 8, "--basis", 3, "--logits", "-q") == 2
    assert "--basis" in capsys.readouterr().err


def test_basis_extraction_resumes_identically(models, tmp_path):
    from cache_tools.extract import ExtractionOptions, extract

    kwargs = dict(limit=48, views=2, topk=5, basis_rank=3, batch_size=32)
    whole = TeacherCache(extract(ExtractionOptions(models["vit"], tmp_path / "whole.h5", **kwargs)))

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(ExtractionOptions(models["vit"], tmp_path / "resumed.h5", **kwargs),
                progress=interrupt)
    assert (tmp_path / "resumed.h5.partial").exists()
    resumed = TeacherCache(
        extract(ExtractionOptions(models["vit"], tmp_path / "resumed.h5", **kwargs)))
    for name in whole.arrays:
        np.testing.assert_array_equal(resumed.arrays[name], whole.arrays[name])
    np.testing.assert_array_equal(resumed.teacher_probs(), whole.teacher_probs())
