"""benchmarks.student_frontier: its cache checks, its merging results file and a quick run."""

import json
import os

import numpy as np
import pytest
import tiny_teachers as tt
from script_modules import load_benchmark
from test_presets import closed_form_params

import tosc_sionna as ts
from cache_tools.extract import ExtractionOptions, extract
from tosc_cache import TeacherCache
from tosc_sionna import serving
from tosc_sionna.data import default_teacher_cache

os.environ["HF_HUB_OFFLINE"] = "1"
bench = load_benchmark("student_frontier")


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("frontier")
    return extract(ExtractionOptions(tt.make_vit(root / "teacher"), root / "c.h5", limit=32,
                                     views=2, topk=None, features="float16", batch_size=32))


def test_caches_must_hold_the_same_rows_views_and_teacher(tiny_cache):
    shipped = TeacherCache(default_teacher_cache())
    assert bench.same_rows_and_views(shipped, shipped) is None
    problem = bench.same_rows_and_views(TeacherCache(tiny_cache), shipped)
    assert problem == "these differ: teacher, views, rows"
    assert bench.same_rows_and_views(TeacherCache(tiny_cache), shipped, teacher=False) == \
        "these differ: views, rows"


def test_bad_feature_or_teacher_caches_exit_2(tiny_cache, tmp_path, capsys):
    for argv, message in ((["--modes", "feat"], "mode feat needs --feature-cache"),
                          (["--modes", "feat", "--feature-cache", str(tiny_cache)],
                           "these differ: teacher, views, rows"),
                          (["--cache", str(tiny_cache)], "these differ: views, rows"),
                          (["--feature-weight", "nan"], "--feature-weight must be >= 0"),
                          (["--cache", str(tmp_path / "none.h5")], "no such cache file")):
        assert bench.main(["--quick", "--out", str(tmp_path)] + argv) == 2, argv
        assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# the structure check's quick run (test_benchmark_quick) runs on the torch line
@pytest.mark.tensorflow
@pytest.mark.benchmark
def test_quick_run_keeps_what_another_process_writes_meanwhile(tmp_path, monkeypatch):
    path = tmp_path / "student_frontier_quick.json"
    old = {"mode": "ce", "seed": 7, "epochs": 1, "steps_per_epoch": 30,
           "train_seconds": 1.0, "val_accuracy": [0.5, 0.5], "test_accuracy": None,
           "feature_weight": None, "teacher": "77a963a93e4e"}
    path.write_text(json.dumps({"students": {"sep-w8-h64": {"runs": [old]}}}))
    replaced, other = {**old, "test_accuracy": [0.4, 0.4]}, {**old, "seed": 8}
    fit = bench.harness.fit

    def fit_while_another_process_writes(*args, **kwargs):
        # meanwhile another process replaces `old` with its test run and adds a run
        data = json.loads(path.read_text())
        data["students"]["sep-w8-h64"]["runs"] = [replaced, other]
        data.setdefault("teachers", {})["0123456789ab"] = {"teacher": "other"}
        path.write_text(json.dumps(data))
        return fit(*args, **kwargs)

    monkeypatch.setattr(bench.harness, "fit", fit_while_another_process_writes)
    assert bench.main(["--quick", "--students", "sep-w8-h64", "--modes", "kd",
                       "--out", str(tmp_path)]) == 0
    results = json.loads(path.read_text())
    runs = results["students"]["sep-w8-h64"]["runs"]
    assert replaced in runs and other in runs and old not in runs and len(runs) == 3
    assert results["teachers"]["0123456789ab"] == {"teacher": "other"}
    ours = next(r for r in runs if r["mode"] == "kd")
    shipped = TeacherCache(default_teacher_cache()).spec.teacher_digest[:12]
    assert ours["teacher"] == shipped == results["teacher"]
    assert ours["seed"] == 0 and ours["feature_weight"] is None
    assert all(0.0 <= a <= 1.0 for a in ours["val_accuracy"])
    entry = results["students"]["sep-w8-h64"]
    assert entry["params"]["link"] == closed_form_params(8, True, (64,))
    small = ts.make_link(ts.AWGNChannel(), student="sep-w8-h64")
    small(np.zeros((1, 28, 28, 1), np.float32), snr_db=10.0)
    assert entry["macs"] == serving.multiply_accumulates(small, (28, 28, 1))
    assert results["teachers"][shipped]["params"] == \
        TeacherCache(default_teacher_cache()).spec.teacher_params
    assert path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert results["provenance"]["command"] and results["provenance"]["versions"]["python"]


def test_runs_are_keyed_by_how_the_cache_stores_the_teacher(tiny_cache, tmp_path):
    shipped = TeacherCache(default_teacher_cache())
    # every run before the key recorded it trained from float16 logits, as the shipped cache
    assert bench.soft_labels(shipped) == bench.LOGITS
    old = {"mode": "kd", "seed": 0, "epochs": 5, "teacher": "77a963a93e4e"}
    assert bench.run_key(old) == bench.run_key({**old, "soft_labels": bench.LOGITS})
    topk = extract(ExtractionOptions(tt.make_vit(tmp_path / "teacher"), tmp_path / "k.h5",
                                     limit=8, views=1, topk=2, batch_size=8))
    stored = bench.soft_labels(TeacherCache(topk))
    assert stored == "topk topk=2 rank=0 bits=0"
    assert bench.run_key({**old, "soft_labels": stored}) != bench.run_key(old)
