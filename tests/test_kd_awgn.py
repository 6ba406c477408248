"""The main job, `examples/kd_awgn.py --quick`, end to end on the shipped cache and real data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "examples" / "kd_awgn.py"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(*args, check=True):
    return subprocess.run([sys.executable, str(JOB), *map(str, args)], capture_output=True,
                          text=True, timeout=900, env=ENV, check=check)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("kd")
    first = run("--quick", "--out", out / "a", "--seed", 3)
    second = run("--quick", "--out", out / "b", "--seed", 3)
    return out, first, second


def test_quick_run_writes_results_and_beats_chance(quick):
    out, first, _ = quick
    results = json.loads((out / "a" / "results.json").read_text())
    for key in ("snr_db", "accuracy", "teacher_accuracy", "channel", "n_symbols",
                "student_params", "teacher_params", "train_seconds"):
        assert key in results, key
    assert len(results["snr_db"]) == len(results["accuracy"]) == 4
    assert results["channel"] == "awgn" and results["n_symbols"] == 16
    assert results["accuracy"][-1] > 0.5  # chance is 0.1
    assert results["accuracy"][-1] >= results["accuracy"][0]
    assert 0.9 < results["teacher_accuracy"] <= 1.0
    assert results["student_params"] * 20 <= results["teacher_params"]
    assert (out / "a" / "accuracy_vs_snr.png").read_bytes()[:4] == b"\x89PNG"
    assert "teacher (clean)" in first.stdout


def test_same_seed_same_results(quick):
    out, _, _ = quick
    a = json.loads((out / "a" / "results.json").read_text())
    b = json.loads((out / "b" / "results.json").read_text())
    a.pop("train_seconds"), b.pop("train_seconds")
    assert a["accuracy"] == b["accuracy"]
    a.pop("cache"), b.pop("cache")
    assert a == b


def test_missing_cache_or_data_is_a_clear_error(tmp_path):
    result = run("--quick", "--cache", tmp_path / "none.h5", "--out", tmp_path, check=False)
    assert result.returncode == 2 and "No teacher cache" in result.stderr
    result = run("--quick", "--data-dir", tmp_path, "--out", tmp_path, check=False)
    assert result.returncode == 2 and "dataset-fashion-mnist" in result.stderr
