"""Online distillation (issue 12 item 3): the teacher run on each batch's views, not cached.

Real components: tiny Hugging Face teachers built from configs, saved and reloaded
offline; real Fashion-MNIST images; caches written by the extraction itself.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_teachers as tt
from conftest import assert_batches_equal
from script_modules import load_script

from cache_tools.extract import ExtractionOptions, extract
from cache_tools.online import OnlineTeacher
from tosc_cache import CacheMismatchError, TeacherCache
from tosc_cache.datasets import FASHION_MNIST_CLASSES
from tosc_sionna.data import LabelPolicy, OnlineDistillation, TeacherCacheDataset

os.environ["HF_HUB_OFFLINE"] = "1"
JOB = Path(__file__).resolve().parents[1] / "examples" / "kd_awgn.py"
ROWS = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A three-view logits cache of a teacher whose classes are the dataset's in another
    order (extraction records the permutation), and teachers that are not its teacher."""
    root = tmp_path_factory.mktemp("online")
    reordered = list(reversed(FASHION_MNIST_CLASSES))
    models = {"teacher": tt.make_vit(root / "teacher", class_names=reordered),
              "other_weights": tt.make_vit(root / "other", seed=1, class_names=reordered),
              "letters": tt.make_vit(root / "letters", class_names=list("abcdefghij"))}
    cache = extract(ExtractionOptions(models["teacher"], root / "c.h5", limit=ROWS, views=3,
                                      topk=None, batch_size=48))
    return TeacherCache(cache), models


def batches(data, epochs):
    out = []
    for _ in range(epochs):
        out.append([data[i] for i in range(len(data))])
        data.on_epoch_end()
    return out


def test_stored_views_give_the_cache_batch_for_batch(setup):
    cache, models = setup
    online = OnlineTeacher(models["teacher"], cache)
    assert online.alignment.permutation == list(range(9, -1, -1))  # the label alignment is used
    common = dict(batch_size=16, seed=5, labelling=LabelPolicy(0.5), rows=np.arange(8, ROWS))
    cached = TeacherCacheDataset(cache, **common)
    live = TeacherCacheDataset(cache, online=OnlineDistillation(online, fresh_views=False),
                               **common)
    for epoch_a, epoch_b in zip(batches(cached, 2), batches(live, 2), strict=True):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b, strict=True):
            np.testing.assert_array_equal(xb, xa)  # the same views, order and rows
            np.testing.assert_array_equal(yb["label"], ya["label"])  # -1 where unlabelled
            # the cache holds float16 logits: equal to that precision
            np.testing.assert_allclose(yb["teacher"], ya["teacher"], rtol=0, atol=2e-3)
            np.testing.assert_allclose(yb["teacher"].sum(-1), 1, rtol=1e-5)
    assert set(cached.views[cached.rows]) == {0, 1, 2}  # augmented views among them
    assert 0 < cached.labelled[cached.rows].sum() < len(cached.rows)  # some unlabelled
    assert online.images == 2 * (ROWS - 8) and online.seconds > 0


def test_fresh_views_every_epoch_and_the_same_seed_gives_the_same_batches(setup):
    cache, models = setup
    online = OnlineTeacher(models["teacher"], cache)
    live = TeacherCacheDataset(cache, batch_size=16, seed=5, online=OnlineDistillation(online))
    again = TeacherCacheDataset(cache, batch_size=16, seed=5, online=OnlineDistillation(online))
    cached = TeacherCacheDataset(cache, batch_size=16, seed=5)
    runs = batches(live, 2), batches(again, 2)
    for a, b in zip(*runs, strict=True):
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa, xb)
            assert_batches_equal(ya, yb)
    pictures = []  # per epoch: cache row -> the view served
    for served in runs[0]:
        x = np.concatenate([x for x, _ in served])
        y = {key: np.concatenate([y[key] for _, y in served]) for key in served[0][1]}
        order, views = cached.order, cached.views[cached.order]
        np.testing.assert_array_equal(y["label"], cached.labels[order])  # the cache's order
        pixels = np.rint(x[..., 0] * 255).astype(np.uint8)
        np.testing.assert_allclose(y["teacher"], online(pixels), rtol=0, atol=1e-6)
        clean = views == 0  # view 0 stays the unaugmented image
        np.testing.assert_array_equal(pixels[clean], cached.images[cached.index[order[clean]]])
        stored = cached.replay_views(order, views)
        differs = (pixels != stored).any(axis=(1, 2))
        assert not differs[clean].any() and differs[~clean].mean() > 0.8  # not the stored views
        pictures.append(dict(zip(order.tolist(), pixels, strict=True)))
        cached.on_epoch_end()
    both = [r for r in range(ROWS) if all((p[r] != cached.images[cached.index[r]]).any()
                                          for p in pictures)]  # augmented in both epochs
    assert len(both) > 10
    assert np.mean([(pictures[0][r] != pictures[1][r]).any() for r in both]) > 0.8
    other = TeacherCacheDataset(cache, batch_size=16, seed=6, online=OnlineDistillation(online))
    assert not np.array_equal(other[0][0], runs[0][0][0][0])


def test_not_the_cache_teacher_is_refused(setup, tmp_path):
    cache, models = setup
    with pytest.raises(CacheMismatchError, match="its classes differ"):
        OnlineTeacher(models["letters"], cache)
    with pytest.raises(CacheMismatchError, match="its weights differ"):
        OnlineTeacher(models["other_weights"], cache)
    with pytest.raises(FileNotFoundError):
        OnlineTeacher(tmp_path / "none", cache)
    with pytest.raises(ValueError, match="targets='kd'"):
        TeacherCacheDataset(cache,
                            online=OnlineDistillation(OnlineTeacher(models["teacher"], cache)),
                            labelling=LabelPolicy(0.5, only=True))


def test_kd_job_bad_online_teacher_is_a_one_line_error(setup, tmp_path, capsys):
    cache, models = setup
    job = load_script(JOB)
    base = ["--quick", "--cache", str(cache.path), "--out", str(tmp_path)]
    (tmp_path / "empty").mkdir()
    for args, message in (
        (["--online-teacher", str(tmp_path / "none")], "no such directory"),
        (["--online-teacher", str(tmp_path / "empty")], "/empty"),  # no model in it
        (["--online-teacher", str(models["letters"])], "its classes differ"),
        (["--online-teacher", str(models["other_weights"])], "its weights differ"),
        (["--online-teacher", str(models["teacher"]), "--no-teacher"],
         "do not give --online-teacher with it"),
    ):
        assert job.main(base + args) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_kd_job_quick_online_run(setup, tmp_path):
    cache, models = setup
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(JOB), "--quick", "--cache", str(cache.path), "--online-teacher",
         str(models["teacher"]), "--width", "4", "--n-symbols", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["online_teacher"] == str(models["teacher"])
    assert results["train_images"] == ROWS - 6 and results["steps_per_epoch"] == 1
    # one epoch of one batch, served twice: Keras reads the first batches once more to
    # learn the tensor shapes (the cached run reads them twice too)
    assert results["teacher_forward_images"] == 2 * results["train_images"]
    assert results["teacher_forward_seconds"] > 0 and results["teacher_threads"] >= 1
    assert all(0.0 <= a <= 1.0 for a in results["accuracy"])
    assert "online teacher:" in result.stdout
