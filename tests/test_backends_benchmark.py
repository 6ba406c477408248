"""benchmarks.backends without its two interpreters: the worker's result line, the summary
of the rounds (best, spread, torch / TensorFlow ratio, epoch estimate), the missing-Python
error, and a whole run on stand-in workers."""

import json
import sys
import time

import pytest

from benchmarks import backends

MEASUREMENTS = tuple(backends.measurement_keys())


def record(line: str, scale: float, **extra) -> dict:
    """A worker's record on ``line`` whose measurements are ``scale`` times 1, 2, 3, ... ms."""
    versions = {"tensorflow": {"tensorflow": "2.21.0", "sionna": "1.2.2"},
                "torch": {"torch": "2.13.0", "sionna": "2.2.0"}}[line]
    return {"line": {"keras_backend": line, "keras": "3.15.1", **versions},
            "python": "3.11.7", "executable": f"/venv-{line}/bin/python", "threads": 2,
            "worker_s": 10.0 * scale,
            "measurements": {k: scale * (i + 1) for i, k in enumerate(MEASUREMENTS)}, **extra}


def test_the_worker_result_is_the_last_prefixed_line_among_the_chatter():
    first, last = record("torch", 1.0), record("torch", 2.0)
    stdout = "\n".join(["Keras warming up", backends.RESULT_PREFIX + json.dumps(first),
                        "a log line", backends.RESULT_PREFIX + json.dumps(last), ""])
    assert backends.parse_worker_output(stdout) == last
    with pytest.raises(backends.BenchmarkError, match="no result line"):
        backends.parse_worker_output("only chatter\n")
    with pytest.raises(backends.BenchmarkError, match="not JSON"):
        backends.parse_worker_output(backends.RESULT_PREFIX + "{broken")
    with pytest.raises(backends.BenchmarkError, match="no measurements"):
        backends.parse_worker_output(backends.RESULT_PREFIX + json.dumps({"line": {}}))


def test_summary_takes_each_lines_best_round_with_its_spread_and_the_ratio():
    rounds = {"tensorflow": [record("tensorflow", 1.5), record("tensorflow", 1.0)],
              "torch": [record("torch", 3.0), record("torch", 4.5)]}
    summary = backends.summarize(rounds)
    key = "train_ms_per_step/ofdm-tdl-a"  # 3 ms x scale
    assert summary["best_ms"]["tensorflow"][key] == pytest.approx(3.0)
    assert summary["best_ms"]["torch"][key] == pytest.approx(9.0)
    assert summary["all_ms"]["torch"][key] == pytest.approx([9.0, 13.5])
    assert summary["median_ms"]["torch"][key] == pytest.approx(11.25)
    assert summary["spread"]["tensorflow"][key] == pytest.approx(1.5)
    assert summary["spread"]["torch"][key] == pytest.approx(1.5)
    assert summary["torch_over_tensorflow"] == pytest.approx({k: 3.0 for k in MEASUREMENTS})
    # the epoch estimate: best ms/step x the 430 steps of 55,000 images at batch 128
    assert backends.EPOCH_STEPS == 430
    assert summary["epoch_s_estimate"]["torch"] == pytest.approx(
        {"awgn": 3.0e-3 * 430, "ofdm-tdl-a": 9.0e-3 * 430})
    assert summary["lines"]["torch"]["sionna"] == "2.2.0"
    assert summary["lines"]["tensorflow"]["rounds"] == 2
    assert summary["lines"]["tensorflow"]["worker_s"] == [15.0, 10.0]


def test_a_missing_lines_python_is_one_line_naming_its_flag(tmp_path, capsys):
    torch_python = tmp_path / ".venv-test" / "bin" / "python"
    torch_python.parent.mkdir(parents=True)
    torch_python.write_text("")
    with pytest.raises(backends.MissingInterpreter) as err:
        backends.interpreters({}, root=tmp_path)  # only the torch line's default exists
    message = str(err.value)
    assert "--python-tensorflow" in message and "--python-torch" not in message
    assert ".venv-test-tf/bin/python" in message and "\n" not in message
    assert backends.interpreters({"tensorflow": sys.executable}, root=tmp_path) == {
        "tensorflow": backends.Path(sys.executable), "torch": torch_python}

    missing = tmp_path / "nowhere" / "python"
    assert backends.main(["--quick", "--out", str(tmp_path), "--python-tensorflow",
                          str(missing), "--python-torch", sys.executable]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: ")
    assert f"--python-tensorflow PATH (given {missing}: missing)" in err_lines[0]
    assert not list(tmp_path.glob("*.json"))


def test_a_run_interleaves_the_lines_and_writes_per_line_numbers_and_ratios(tmp_path,
                                                                             monkeypatch):
    calls = []

    def fake_worker(line, python, args):
        calls.append(line)
        assert (args.warmup, args.steps, args.rounds, args.epoch_steps) == (2, 3, 2, 3)  # --quick
        return record(line, {"tensorflow": 1.0, "torch": 2.0}[line] * len(calls))

    monkeypatch.setattr(backends, "run_worker", fake_worker)
    argv = ["--quick", "--out", str(tmp_path), "--python-tensorflow", sys.executable,
            "--python-torch", sys.executable, "--note", "shared machine"]
    assert backends.main(argv) == 0
    assert calls == ["tensorflow", "torch", "tensorflow", "torch"]
    written = json.loads((tmp_path / "backends_quick.json").read_text())
    # rounds: tensorflow x1, x3; torch x4, x8 -> bests 1 and 4
    assert written["torch_over_tensorflow"]["train_ms_per_step/awgn"] == pytest.approx(4.0)
    assert written["spread"]["tensorflow"]["train_ms_per_step/awgn"] == pytest.approx(3.0)
    assert written["rounds"] == 2 and written["quick"] and written["note"] == "shared machine"
    assert written["epoch_steps"] == 3
    assert written["torch_over_tensorflow"]["epoch_ms/ofdm-tdl-a"] == pytest.approx(4.0)
    assert set(written["lines"]) == {"tensorflow", "torch"}
    provenance = written["provenance"]
    assert provenance["command"].startswith("python -m benchmarks.backends --quick")
    assert provenance["line"] == {"tensorflow": {"keras_backend": "tensorflow", "sionna": "1.2.2"},
                                  "torch": {"keras_backend": "torch", "sionna": "2.2.0"}}


def test_the_worker_command_parses_and_its_record_round_trips(monkeypatch, capsys):
    class Args:
        warmup, steps, threads, latency_repeats, epoch_steps = 2, 3, 2, 4, 7
        latency_calls = {1: 5, 256: 1}

    command = backends.worker_command(backends.Path("/py"), Args())
    assert command[:4] == ["/py", "-m", "benchmarks.backends", "--worker"]
    seen = {}

    def fake_worker(warmup, steps, threads, latency_repeats, latency_calls, epoch_steps):
        seen.update(warmup=warmup, steps=steps, threads=threads, repeats=latency_repeats,
                    calls=latency_calls, epoch_steps=epoch_steps)
        return record("torch", 1.0)

    monkeypatch.setattr(backends, "worker", fake_worker)
    assert backends.main(command[3:]) == 0
    assert seen == {"warmup": 2, "steps": 3, "threads": 2, "repeats": 4, "calls": {1: 5, 256: 1},
                    "epoch_steps": 7}
    assert backends.parse_worker_output(capsys.readouterr().out) == record("torch", 1.0)
    # without --epoch-steps the worker times whole epochs
    Args.epoch_steps = None
    command = backends.worker_command(backends.Path("/py"), Args())
    assert "--epoch-steps" not in command
    assert backends.main(command[3:]) == 0 and seen["epoch_steps"] is None


@pytest.mark.parametrize("steps", ["0", str(backends.EPOCH_STEPS + 1)])
def test_epoch_steps_outside_an_epoch_are_refused_in_one_line(steps, capsys):
    assert backends.main(["--worker", "--epoch-steps", steps]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --epoch-steps must be")


def test_the_timed_epochs_read_the_main_jobs_training_rows_and_time_each_epoch(monkeypatch):
    import tosc_sionna as ts
    import tosc_sionna.data as data_module

    seen = {}
    dataset = data_module.TeacherCacheDataset

    def recorded_dataset(cache, **kwargs):
        seen["rows"], seen["batch"] = kwargs["rows"], kwargs["batch_size"]
        return dataset(cache, **kwargs)

    class Trainer:  # stands in for the recipe: its fit runs the epochs' callbacks
        def fit(self, data, epochs, steps_per_epoch, verbose, callbacks):
            seen["fit"] = (len(data), epochs, steps_per_epoch)
            (clock,) = callbacks
            for epoch, seconds in enumerate((0.06, 0.01)):
                clock.on_epoch_begin(epoch, {})
                time.sleep(seconds)
                clock.on_epoch_end(epoch, {})

    monkeypatch.setattr(data_module, "TeacherCacheDataset", recorded_dataset)
    monkeypatch.setattr(ts, "make_trainer", lambda link, **kwargs: Trainer())
    first, second = backends.time_epochs("awgn", 5)
    held_out = data_module.split_rows(60_000, 5000, 0)[1]
    assert len(seen["rows"]) == backends.EPOCH_IMAGES == 55_000
    assert not set(seen["rows"]) & set(held_out) and seen["batch"] == backends.BATCH
    assert seen["fit"] == (backends.EPOCH_STEPS, 2, 5)
    assert first >= 60 and second >= 10  # ms: each epoch's own span, in order
    seen.clear()
    backends.time_epochs("awgn", None)
    assert seen["fit"] == (430, 2, 430)
    with pytest.raises(backends.BenchmarkError, match="1 to 430 steps"):
        backends.time_epochs("awgn", 431)
