"""benchmarks.few_labels: the few-label study through kd_awgn's main, resumable."""

import json

import pytest
from script_modules import load_benchmark

bench = load_benchmark("few_labels")


def test_configurations_are_the_studys_runs():
    assert len(bench.CONFIGS) == len(set(bench.CONFIGS)) == 8
    assert bench.job_args(0.01, None, 6, 1, 0, False)[:7] == [
        "--epochs", "6", "--draws", "1", "--labelled-fraction", "0.01", "--no-teacher"]
    assert bench.job_args(1.0, 0.05, 6, 1, 0, True)[5:8] == ["1", "--alpha", "0.05"]
    assert bench.job_args(1.0, 0.05, 6, 1, 0, True)[-1] == "--quick"


@pytest.mark.benchmark
def test_quick_study_collects_each_run_with_provenance_and_resumes(tmp_path, monkeypatch):
    path = tmp_path / "few.json"
    assert bench.main(["--quick", "--out", str(path)]) == 0
    results = json.loads(path.read_text())
    runs = results["runs"]
    assert [(r["labelled_fraction"], r["teacher_free"], r["alpha"]) for r in runs] == [
        (0.01, True, 1.0), (0.01, False, 0.05)]
    for run in runs:
        assert run["quick"] and run["epochs"] == 1 and run["draws"] == 1
        assert all(0 <= run[f"accuracy_{s}db"] <= 1 for s in (0, 10, 20))
        assert run["command"].startswith("python examples/kd_awgn.py --epochs 1")
        assert run["provenance"]["command"].startswith("python examples/kd_awgn.py")
    assert results["provenance"]["command"].startswith("python ")

    def no_training(*args, **kwargs):
        raise AssertionError("a configuration in the file was run again")

    monkeypatch.setattr(bench, "load_job", no_training)
    assert bench.main(["--quick", "--out", str(path)]) == 0  # resume: nothing left to do
    assert json.loads(path.read_text())["runs"] == runs
