"""benchmarks.ablations: its ablated module, its variants and its resumable CI subset."""

import json

import numpy as np
import pytest
from backend import numpy
from script_modules import load_benchmark

import tosc_sionna as ts

bench = load_benchmark("ablations")


def test_no_adaptation_passes_features_unchanged_and_has_no_weights():
    module = bench.NoAdaptation()
    x = np.random.default_rng(0).normal(size=(5, 32)).astype("float32")
    np.testing.assert_array_equal(numpy(module(x, 3.0)), x)
    assert module.count_params() == 0


@pytest.mark.benchmark
def test_variants_build_what_they_say():
    from tosc_sionna.data import TeacherCacheDataset, default_teacher_cache

    data = TeacherCacheDataset(default_teacher_cache(), batch_size=32, seed=0)
    trained = {v: bench.train_variant(v, "rayleigh", 10, data, 1, 2, 0)[0]
               for v in ("no-channel", "no-noise-input", "deterministic", "fixed-10db")}
    # trained without a channel (60 dB AWGN), evaluated through the Rayleigh channel
    assert isinstance(trained["no-channel"].channel, ts.RayleighBlockFadingChannel)
    assert trained["no-channel"].snr_train_db == (60.0, 60.0)
    assert not trained["no-channel"].rx_cam.use_noise
    assert trained["no-noise-input"].channel.return_noise
    assert not trained["no-noise-input"].rx_cam.use_noise
    assert not trained["deterministic"].encoder.stochastic
    assert trained["fixed-10db"].snr_train_db == (10.0, 10.0)


@pytest.mark.benchmark
def test_quick_subset_writes_results_and_a_rerun_keeps_them(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "ablations_quick.json").read_text())
    runs = results["runs"]["awgn"]
    assert set(runs) == {"full", "no-cam"}
    assert results["provenance"]["command"].startswith("python ")
    assert {"commit", "versions", "machine", "date"} <= set(results["provenance"])
    for variant in runs.values():
        (run,) = variant
        assert len(run["val_accuracy"]) == 2 and all(0 <= a <= 1 for a in run["val_accuracy"])
    assert (tmp_path / "ablations_quick.png").stat().st_size > 0
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0  # nothing left to do
    assert json.loads((tmp_path / "ablations_quick.json").read_text()) == results


def test_merge_keeps_other_processes_runs_and_replaces_only_what_this_one_measured():
    key = lambda r: r["seed"]  # noqa: E731
    theirs = [{"seed": 0, "v": "disk"}, {"seed": 1, "v": "disk"}]
    mine = [{"seed": 0, "v": "stale"}, {"seed": 1, "v": "mine"}]
    merged = bench.common.merge_runs(mine, theirs, {1}, key)
    assert merged == [{"seed": 0, "v": "disk"}, {"seed": 1, "v": "mine"}]
    # a run the file holds twice (keys a later parameter made equal): one stays, the last
    twice = [{"seed": 0, "v": "old"}, {"seed": 2, "v": "disk"}, {"seed": 0, "v": "new"}]
    assert bench.common.merge_runs([], twice, set(), key) == [
        {"seed": 0, "v": "new"}, {"seed": 2, "v": "disk"}]


@pytest.mark.benchmark
def test_quick_run_keeps_what_another_process_writes_meanwhile(tmp_path, monkeypatch):
    path = tmp_path / "ablations_quick.json"
    other = {"seed": 0, "epochs": 1, "steps_per_epoch": 20, "train_seconds": 1.0,
             "val_accuracy": [0.5, 0.5], "test_accuracy": None}
    fit = bench.harness.fit

    def fit_while_another_process_writes(*args, **kwargs):
        # meanwhile another process (say, the Rayleigh channel) saves its run
        data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
        data["runs"].setdefault("rayleigh", {})["full"] = [other]
        path.write_text(json.dumps(data))
        return fit(*args, **kwargs)

    monkeypatch.setattr(bench.harness, "fit", fit_while_another_process_writes)
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads(path.read_text())
    assert results["runs"]["rayleigh"]["full"] == [other]
    assert set(results["runs"]["awgn"]) == {"full", "no-cam"}
    assert not list(tmp_path.glob("*.tmp"))
