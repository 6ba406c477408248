"""benchmarks.hyperparameters: its one-at-a-time grid, its summary and its CI subset."""

import json

import pytest
from script_modules import load_benchmark

bench = load_benchmark("hyperparameters")


def test_one_at_a_time_grid_has_the_defaults_once():
    grid = bench.settings(list(bench.GRID))
    assert grid.count(bench.DEFAULTS) == 1
    assert len(grid) == sum(len(v) for v in bench.GRID.values()) - (len(bench.GRID) - 1)
    for setting in grid:  # at most one parameter away from the defaults
        assert sum(setting[k] != v for k, v in bench.DEFAULTS.items()) <= 1


def test_summary_means_over_seeds_and_picks_the_best_value():
    runs = [{"setting": {**bench.DEFAULTS, "beta": b}, "seed": s, "epochs": 3,
             "val_accuracy": [acc + 0.01 * s, acc + 0.02 + 0.01 * s]}
            for b, acc in ((0.0, 0.80), (1e-4, 0.70)) for s in (0, 1)]
    beta = bench.summary(runs, ["beta"])["beta"]
    assert beta["best"] == 0.0 and beta["default"] == 1e-4
    assert beta["values"]["0.0"]["seeds"] == 2
    assert beta["values"]["0.0"]["mean"] == pytest.approx([0.805, 0.825])
    assert beta["values"]["0.0001"]["std"] == pytest.approx([0.00707107] * 2, rel=1e-5)
    assert "1e-05" not in beta["values"]  # not measured: left out
    # a run written before "stochastic" joined the grid counts as the default (True)
    old = [{**r, "setting": {k: v for k, v in r["setting"].items() if k != "stochastic"}}
           for r in runs]
    assert bench.summary(old, ["beta"]) == bench.summary(runs, ["beta"])
    assert bench.summary(old + [{"setting": {**bench.DEFAULTS, "stochastic": False}, "seed": 0,
                                 "epochs": 3, "val_accuracy": [0.9, 0.9]}],
                         ["stochastic"])["stochastic"]["best"] is False


def test_training_uses_the_setting(monkeypatch):
    seen = {}

    def fit(link, data, epochs, steps, callbacks=None, alpha=0.5, temperature=4.0, beta=None):
        seen.update(alpha=alpha, temperature=temperature, beta=beta,
                    separable=link.encoder.separable)
        return 0.0

    monkeypatch.setattr(bench.harness, "fit", fit)
    bench.train({"alpha": 0.25, "temperature": 8.0, "beta": 1e-3}, 10, None, 1, 1, 0)
    assert seen == {"alpha": 0.25, "temperature": 8.0, "beta": 1e-3, "separable": True}
    link, _ = bench.train({**bench.DEFAULTS, "stochastic": False}, 10, None, 1, 1, 0)
    assert not link.encoder.stochastic and seen["beta"] == 0.0


@pytest.mark.benchmark
def test_quick_subset_writes_results_and_a_rerun_keeps_them(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    path = tmp_path / "hyperparameters_quick.json"
    results = json.loads(path.read_text())
    assert [r["setting"]["beta"] for r in results["runs"]] == [0.0, 1e-4]
    for run in results["runs"]:
        assert len(run["val_accuracy"]) == 2 and all(0 <= a <= 1 for a in run["val_accuracy"])
    assert set(results["summary"]["beta"]["values"]) == {"0.0", "0.0001"}
    assert (tmp_path / "hyperparameters_quick.png").stat().st_size > 0
    assert results["provenance"]["command"] and results["provenance"]["commit"]
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0  # nothing left to do

    def measured(r: dict) -> dict:  # the rerun rewrites the summary and its provenance
        return {k: v for k, v in r.items() if k != "provenance"}

    assert measured(json.loads(path.read_text())) == measured(results)
    assert bench.main(["--epochs", "0", "--out", str(tmp_path)]) == 2
    # a run written without "stochastic" (before it joined the grid) is the default run
    old = {**results["runs"][1], "setting": {"alpha": 0.5, "temperature": 4.0, "beta": 1e-4}}
    path.write_text(json.dumps({**results, "runs": results["runs"] + [old]}))
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    assert len(json.loads(path.read_text())["runs"]) == 2
