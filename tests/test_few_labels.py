"""benchmarks.few_labels: the few-label study through kd_awgn's main, over seeds, alpha chosen
on validation, resumable."""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from script_modules import load_benchmark

bench = load_benchmark("few_labels")
#: the study's first runs (no validation split, another student), as committed before the rerun
FIRST_RUNS = Path(__file__).resolve().parent / "data" / "few_labels_first_runs.json"


def test_configurations_grid_every_fraction_below_one_with_the_default_student():
    assert len(bench.CONFIGS) == len(set(bench.CONFIGS)) == 10
    for fraction in (0.01, 0.1):
        assert {a for f, a in bench.CONFIGS if f == fraction} == {None, *bench.ALPHA_GRID}
    assert {a for f, a in bench.CONFIGS if f == 1.0} == {None, bench.FULL_LABELS_ALPHA}
    args = bench.job_args(0.01, None, 6, 1, 2, False)
    assert args[:7] == ["--epochs", "6", "--draws", "1", "--labelled-fraction", "0.01",
                        "--no-teacher"]
    assert args[args.index("--seed") + 1] == "2"
    assert args[args.index("--student") + 1] == bench.ts.DEFAULT_STUDENT
    assert args[args.index("--val-snrs") + 1:][:3] == ["0", "10", "20"]
    assert "--val-fraction" not in args and "--width" not in args  # kd_awgn's default split
    quick = bench.job_args(1.0, 0.05, 6, 1, 0, True, "conv-w32-h256")
    assert quick[5:8] == ["1", "--alpha", "0.05"] and quick[-1] == "--quick"
    assert quick[quick.index("--student") + 1] == "conv-w32-h256"


def test_results_record_that_the_teacher_saw_every_label():
    labels = bench.teacher_labels()
    training = json.loads(bench.TEACHER_TRAINING.read_text())
    assert labels["fine_tuned_on_labelled_images"] == training["recipe"]["train_images"] == 60000
    assert "training.json" in labels["source"] and "60,000" in labels["note"]
    assert bench.header()["teacher_labels"] == labels


def run(fraction, alpha, seed, val, test, student="sep-w48-h128", epochs=6):
    """A study run with validation ``val`` and test ``test`` accuracy at every SNR."""
    return {"student": student, "labelled_fraction": fraction, "teacher_free": alpha is None,
            "alpha": 1.0 if alpha is None else alpha, "epochs": epochs, "seed": seed,
            "draws": 1, "quick": False, "val_images": 5000,
            **{f"val_accuracy_{s}db": val for s in (0, 10, 20)},
            **{f"test_accuracy_{s}db": test for s in (0, 10, 20)}}


def test_alpha_is_chosen_on_validation_not_test():
    # on validation 0.25 is best; on test 0.05 is
    runs = [run(0.01, a, s, val, test) for s in (0, 1, 2)
            for a, val, test in ((0.05, 0.80, 0.95), (0.25, 0.90, 0.85), (0.5, 0.70, 0.75))]
    runs += [run(0.01, None, s, 0.6, 0.6 + 0.01 * s) for s in (0, 1, 2)]
    (rec,) = bench.summarize(runs)
    assert rec["chosen_alpha"] == 0.25 and rec["alphas_compared"] == [0.05, 0.25, 0.5]
    assert rec["selection_seeds"] == [0, 1, 2]
    assert rec["validation_by_alpha"]["0.25"]["score"] == pytest.approx(0.90)
    assert rec["validation_by_alpha"]["0.05"]["10 dB"]["mean"] == pytest.approx(0.80)
    assert rec["distilled"]["alpha"] == 0.25
    assert rec["distilled"]["test"]["10 dB"]["mean"] == pytest.approx(0.85)
    assert rec["teacher_free"]["test"]["0 dB"]["mean"] == pytest.approx(0.61)
    assert rec["test_gain_points"]["20 dB"] == pytest.approx(24.0)


def test_choice_averages_0_and_10_db_over_the_seeds_every_alpha_has():
    a = run(0.1, 0.05, 0, 0.0, 0.5) | {"val_accuracy_0db": 0.80, "val_accuracy_10db": 0.90,
                                       "val_accuracy_20db": 0.99}
    b = run(0.1, 0.5, 0, 0.0, 0.5) | {"val_accuracy_0db": 0.86, "val_accuracy_10db": 0.86,
                                      "val_accuracy_20db": 0.0}
    extra = run(0.1, 0.05, 1, 1.0, 0.5)  # seed 1 of 0.05 only: not in the comparison
    (rec,) = bench.summarize([a, b, extra])
    assert rec["selection_seeds"] == [0]
    # 0.85 (0.05) vs 0.86 (0.5) averaged over 0 and 10 dB: 20 dB and seed 1 do not count
    assert rec["chosen_alpha"] == 0.5
    assert rec["validation_by_alpha"]["0.5"]["score"] == pytest.approx(0.86)
    assert rec["validation_by_alpha"]["0.05"]["score"] == pytest.approx(0.85)
    assert rec["distilled"]["seeds"] == [0]
    # ties go to the smaller alpha
    tie = [run(0.1, 0.5, 0, 0.9, 0.5), run(0.1, 0.25, 0, 0.9, 0.5)]
    assert bench.summarize(tie)[0]["chosen_alpha"] == 0.25


def test_summary_reports_mean_and_sample_std_over_seeds_per_student_and_fraction():
    runs = [run(0.01, None, s, 0.7, acc) for s, acc in enumerate((0.70, 0.72, 0.77))]
    runs += [run(0.01, 0.05, s, 0.8, 0.9) for s in range(3)]
    runs += [run(0.01, 0.05, 0, 0.8, 0.5, student="conv-w32-h256")]
    runs += [{**run(0.01, 0.05, 1, 0.8, 0.1), "student": None}]  # no student: not the study's
    summary = bench.summarize(runs)
    assert [(r["student"], r["labelled_fraction"]) for r in summary] == [
        ("conv-w32-h256", 0.01), ("sep-w48-h128", 0.01)]
    free = summary[1]["teacher_free"]["test"]["10 dB"]
    assert free["mean"] == pytest.approx(np.mean([0.70, 0.72, 0.77]))
    assert free["std"] == pytest.approx(np.std([0.70, 0.72, 0.77], ddof=1))
    assert summary[1]["teacher_free"]["seeds"] == [0, 1, 2]
    one = summary[0]["distilled"]["test"]["0 dB"]
    assert one == {"mean": 0.5, "std": None} and summary[0]["teacher_free"] is None
    assert summary[0]["test_gain_points"] is None


class FakeJob:
    """kd_awgn's ``main`` without training: writes a results.json of the fields the study
    reads, and records the configurations it ran."""

    def __init__(self):
        self.ran = []

    def main(self, argv):
        p = argparse.ArgumentParser()
        for flag, kind in (("--epochs", int), ("--draws", int), ("--labelled-fraction", float),
                           ("--alpha", float), ("--seed", int), ("--student", str),
                           ("--out", str)):
            p.add_argument(flag, type=kind)
        p.add_argument("--val-snrs", type=float, nargs="+")
        p.add_argument("--no-teacher", action="store_true")
        p.add_argument("--quick", action="store_true")
        a = p.parse_args(argv)
        self.ran.append((a.labelled_fraction, a.alpha, a.seed))
        acc = 0.5 + 0.1 * (a.alpha or 0) + 0.01 * a.seed
        out = Path(a.out)
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps({
            "student": a.student, "labelled_fraction": a.labelled_fraction,
            "teacher_free": a.no_teacher, "alpha": 1.0 if a.no_teacher else a.alpha,
            "epochs": a.epochs, "seed": a.seed, "draws": a.draws, "quick": a.quick,
            "train_images": 55000, "val_images": 5000, "val_seed": 0, "train_seconds": 1.0,
            "snr_db": [-10.0, 0.0, 10.0, 20.0], "accuracy": [0.1, acc, acc, acc],
            "accuracy_ci95": [[0, 1]] * 4,
            "validation": {"snr_db": a.val_snrs, "accuracy": [acc - 0.01] * len(a.val_snrs)},
            "provenance": {"command": "python examples/kd_awgn.py"}}))
        return 0


def test_old_runs_without_validation_are_not_done_and_a_rerun_resumes(tmp_path, monkeypatch):
    path = tmp_path / "few_labels.json"
    shutil.copy(FIRST_RUNS, path)
    old = json.loads(path.read_text())
    assert not any(map(bench.validated, old["runs"]))
    job = FakeJob()
    monkeypatch.setattr(bench, "load_job", lambda: job)
    assert bench.main(["--seeds", "0", "1", "--out", str(path)]) == 0
    assert sorted(job.ran, key=str) == sorted(
        [(f, a, s) for f, a in bench.CONFIGS for s in (0, 1)], key=str)  # none skipped
    results = json.loads(path.read_text())
    assert len(results["runs"]) == 20 and all(map(bench.validated, results["runs"]))
    assert "student_args" not in results  # a fresh structure, not the old file's
    # the old runs' provenance is not carried as this file's earlier provenance
    assert old["provenance"]["commit"] not in json.dumps(results.get("earlier_provenance", []))
    assert results["teacher_labels"]["fine_tuned_on_labelled_images"] == 60000
    assert [r["labelled_fraction"] for r in results["summary"]] == [0.01, 0.1, 1.0]
    assert results["summary"][0]["selection_seeds"] == [0, 1]
    assert results["summary"][2]["alphas_compared"] == [0.5]

    # resume: seeds 0 and 1 are done, only seed 2 runs; then nothing is left
    job.ran.clear()
    assert bench.main(["--seeds", "0", "1", "2", "--out", str(path)]) == 0
    assert {s for _, _, s in job.ran} == {2} and len(job.ran) == 10
    runs = json.loads(path.read_text())["runs"]

    def no_training():
        raise AssertionError("a run in the file was run again")

    monkeypatch.setattr(bench, "load_job", no_training)
    assert bench.main(["--out", str(path)]) == 0
    assert json.loads(path.read_text())["runs"] == runs
    # another student or schedule is not done
    monkeypatch.setattr(bench, "load_job", lambda: job)
    job.ran.clear()
    assert bench.main(["--seeds", "0", "--epochs", "3", "--out", str(path)]) == 0
    assert len(job.ran) == 10


def test_summarize_recomputes_the_summary_of_a_file(tmp_path):
    path = tmp_path / "few.json"
    runs = [run(0.1, a, s, v, 0.8) for s in (0, 1) for a, v in ((0.05, 0.9), (0.5, 0.8))]
    path.write_text(json.dumps({**bench.header(), "runs": runs, "summary": []}))
    assert bench.main(["--summarize", str(path)]) == 0
    results = json.loads(path.read_text())
    assert results["summary"][0]["chosen_alpha"] == 0.05
    assert results["provenance"]["command"].startswith("python ")


# the structure check's quick run (test_benchmark_quick) runs on the TensorFlow line
@pytest.mark.torch
@pytest.mark.benchmark
def test_quick_study_collects_each_run_with_provenance_and_resumes(tmp_path, monkeypatch):
    path = tmp_path / "few.json"
    assert bench.main(["--quick", "--out", str(path)]) == 0
    results = json.loads(path.read_text())
    runs = results["runs"]
    assert [(r["labelled_fraction"], r["teacher_free"], r["alpha"]) for r in runs] == [
        (0.01, True, 1.0), (0.01, False, 0.05)]
    for r in runs:
        assert r["quick"] and r["epochs"] == 1 and r["draws"] == 1 and r["seed"] == 0
        assert r["student"] == bench.ts.DEFAULT_STUDENT and r["val_images"] > 0
        assert all(0 <= r[f"{split}_accuracy_{s}db"] <= 1
                   for split in ("val", "test") for s in (0, 10, 20))
        assert r["command"].startswith("python examples/kd_awgn.py --epochs 1")
        assert r["provenance"]["command"].startswith("python examples/kd_awgn.py")
    assert results["provenance"]["command"].startswith("python ")
    (rec,) = results["summary"]
    assert rec["chosen_alpha"] == 0.05 and rec["teacher_free"]["seeds"] == [0]

    def no_training(*args, **kwargs):
        raise AssertionError("a configuration in the file was run again")

    monkeypatch.setattr(bench, "load_job", no_training)
    assert bench.main(["--quick", "--out", str(path)]) == 0  # resume: nothing left to do
    assert json.loads(path.read_text())["runs"] == runs
