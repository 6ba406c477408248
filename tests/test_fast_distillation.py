"""benchmarks.fast_distillation: its quick run, its summary and its merging results file."""

import json

import pytest
from script_modules import load_benchmark

bench = load_benchmark("fast_distillation")


# the structure check's quick run (test_benchmark_quick) runs on the torch line
@pytest.mark.tensorflow
@pytest.mark.benchmark
def test_quick_run_times_and_scores_variants_keeping_other_processes_runs(tmp_path, monkeypatch):
    path = tmp_path / "fast_distillation_quick.json"
    other = {"seed": 9, "epochs": 1, "epoch_seconds": [1.0], "teacher_forward_seconds": None,
             "val_accuracy": [0.5, 0.5], "test_accuracy": [0.5, 0.5]}
    fit = bench.harness.fit

    def fit_while_another_process_writes(*args, **kwargs):
        data = json.loads(path.read_text()) if path.exists() else {"accuracy": {}}
        data["accuracy"]["cached-v4"] = [other]
        path.write_text(json.dumps(data))
        return fit(*args, **kwargs)

    monkeypatch.setattr(bench.harness, "fit", fit_while_another_process_writes)
    assert bench.main(["--quick", "--variants", "ce-only", "cached-v1",
                       "--out", str(tmp_path)]) == 0
    results = json.loads(path.read_text())
    assert results["accuracy"]["cached-v4"] == [other]  # written meanwhile: kept
    assert results["provenance"]["commit"] and results["provenance"]["command"]
    for v in ("ce-only", "cached-v1"):
        (run,) = results["accuracy"][v]
        assert run["seed"] == 0 and len(run["epoch_seconds"]) == 1
        assert all(0 <= a <= 1 for a in run["val_accuracy"] + run["test_accuracy"])
        timing = results["timing"]["variants"][v]
        assert timing["best_ms_per_step"] > 0 and timing["spread"] >= 1.0
    ratio = results["summary"]["epoch_ratio_cached_over_ce_only"]["cached-v1"]
    assert ratio == (results["timing"]["variants"]["cached-v1"]["best_ms_per_step"]
                     / results["timing"]["variants"]["ce-only"]["best_ms_per_step"])
    assert results["summary"]["accuracy"]["cached-v4"]["validation"]["0 dB"]["seeds"] == 1


def test_bad_schedule_exits_2(tmp_path, capsys):
    assert bench.main(["--rounds", "0", "--out", str(tmp_path)]) == 2
    assert "--rounds must be >= 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
