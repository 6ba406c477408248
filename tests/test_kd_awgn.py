"""The main job, `examples/kd_awgn.py --quick`, end to end on the shipped cache and real data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from script_modules import load_script
from test_presets import closed_form_params

import tosc_sionna as ts

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
    second = run("--quick", "--out", out / "b", "--seeds", 3, 4)
    return out, first, second


@pytest.mark.slow
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
    # the default student is the frontier's 1/50 point: separable, width 48, 128 hidden
    assert results["student_params"] == closed_form_params(48, True, (128,)) and \
        results["student_params"] * 50 <= \
        results["teacher_params"]
    assert (results["separable"], results["width"], results["hidden_units"]) == (True, 48, [128])
    assert (out / "a" / "accuracy_vs_snr.png").read_bytes()[:4] == b"\x89PNG"
    assert "teacher (clean)" in first.stdout
    # 5,000 training images held out (2,000 of them evaluated in a quick run), not trained on
    assert results["train_images"] == 55000 and results["val_images"] == 2000
    assert results["validation"]["snr_db"] == [0.0, 10.0]
    assert results["validation"]["accuracy"][1] > 0.5
    assert "validation (held-out training images)" in first.stdout


@pytest.mark.slow
def test_same_seed_same_results_and_seeds_are_summarized(quick):
    out, _, _ = quick
    a = json.loads((out / "a" / "results.json").read_text())
    both = json.loads((out / "b" / "results.json").read_text())
    assert both["seeds"] == [3, 4] and both["seed"] is None
    b = both["per_seed"][0]  # seed 3 again, after nothing else ran in its process
    a.pop("train_seconds"), b.pop("train_seconds")
    assert a["accuracy"] == b["accuracy"]
    a.pop("cache"), b.pop("cache")
    assert a.pop("provenance")["command"].endswith("--seed 3")  # the file's, not a seed's
    assert a == b
    per_seed = np.array([r["accuracy"] for r in both["per_seed"]])
    assert both["per_seed"][1]["seed"] == 4 and not np.array_equal(per_seed[0], per_seed[1])
    np.testing.assert_allclose(both["accuracy"], per_seed.mean(0))
    np.testing.assert_allclose(both["accuracy_seed_std"], per_seed.std(0, ddof=1))
    val = np.array([r["validation"]["accuracy"] for r in both["per_seed"]])
    np.testing.assert_allclose(both["validation"]["accuracy"], val.mean(0))
    assert "accuracy_ci95" not in both  # per test set: in each seed's entry


@pytest.mark.slow
def test_combine_joins_seeds_run_apart_as_seeds_would(quick, tmp_path, capsys):
    out, _, _ = quick
    both = json.loads((out / "b" / "results.json").read_text())
    seed4 = tmp_path / "seed4.json"  # seed 4 as if it had run as a job of its own
    seed4.write_text(json.dumps(both["per_seed"][1]))
    different = {**both["per_seed"][1], "alpha": 0.25, "epochs": 2}
    (tmp_path / "bare.json").write_text(json.dumps({"seed": 5, "accuracy": [0.5]}))
    job = load_script(JOB)
    assert job.main(["--combine", str(seed4), str(out / "a" / "results.json"),
                     "--out", str(tmp_path / "c")]) == 0
    joined = json.loads((tmp_path / "c" / "results.json").read_text())
    assert (tmp_path / "c" / "accuracy_vs_snr.png").read_bytes()[:4] == b"\x89PNG"
    for results in (joined, both):  # seeds 3 and 4 trained in one process or apart
        for run in results["per_seed"]:
            run.pop("train_seconds"), run.pop("cache")
        results.pop("train_seconds"), results.pop("cache"), results.pop("provenance")
    sources = joined.pop("combined_from")  # where each joined file came from
    assert [Path(s["path"]).name for s in sources] == ["seed4.json", "results.json"]
    assert sources[1]["provenance"]["command"].endswith("--seed 3")
    assert joined == both

    seed4.write_text(json.dumps(different))
    for paths, message in (
        ([out / "b" / "results.json", out / "a" / "results.json"], "got [3, 4, 3]"),
        ([out / "a" / "results.json"], "two or more different seeds"),
        ([seed4, out / "a" / "results.json"], "(these differ: alpha, epochs)"),
        ([tmp_path / "none.json", seed4], "No such file"),
        ([tmp_path / "c" / "accuracy_vs_snr.png", seed4], "error: "),
        ([tmp_path / "bare.json", seed4], "bare.json: not a results.json written by"),
    ):
        assert job.main(["--combine", *map(str, paths), "--out", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "d").exists()
    assert job.main(["--combine", str(seed4), "--seed", "1"]) == 2
    assert "do not give --seed or --seeds" in capsys.readouterr().err


def test_bad_arguments_are_one_line_errors(capsys):
    job = load_script(JOB)
    for args, message in (
        (["--epochs", "-1"], "--epochs must be >= 1"),
        (["--n-symbols", "0"], "--n-symbols must be >= 1"),
        (["--snr-train", "20", "10"], "LOW <= HIGH"),
        (["--snr-train", "nan", "10"], "LOW <= HIGH"),
        (["--labelled-fraction", "0"], "--labelled-fraction"),
        (["--alpha", "1.5"], "--alpha must lie in [0, 1]"),
        (["--no-teacher", "--alpha", "0.3"], "do not give --alpha with it"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--val-fraction", "-1"], "--val-fraction"),
        (["--val-snrs", "0", "nan"], "--val-snrs must be finite"),
        (["--val-fraction", "60000"], "cannot hold out 60000.0 of 60000 rows"),
        (["--seed", "1", "--seeds", "2", "3"], "give --seed or --seeds, not both"),
        (["--seeds", "2", "2"], "--seeds must differ"),
        (["--hidden-units", "0"], "--hidden-units must be >= 1"),
        (["--beta", "-1"], "--beta must be >= 0"),
        (["--deterministic-encoder", "--beta", "1e-4"], "do not give --beta with it"),
        (["--deterministic-encoder", "--sample-encoder"], "drop --sample-encoder"),
    ):
        assert job.main(["--quick", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)


def test_split_rows_and_a_reader_serving_some_rows():
    import numpy as np

    from tosc_sionna.data import (
        LabelPolicy,
        TeacherCacheDataset,
        default_teacher_cache,
        split_rows,
    )

    train, held = split_rows(1000, 100, seed=4)
    assert len(train) == 900 and len(held) == 100 and not set(train) & set(held)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(held) > 0)
    np.testing.assert_array_equal(split_rows(1000, 100, seed=4)[1], held)
    assert len(split_rows(1000, 0.25)[1]) == 250
    assert not np.array_equal(split_rows(1000, 100, seed=5)[1], held)
    data = TeacherCacheDataset(default_teacher_cache(), batch_size=256, rows=held,
                               labelling=LabelPolicy(0.5))
    assert len(data) == 1 and set(data.order) == set(held)
    assert data.labelled.sum() == 50 and set(np.flatnonzero(data.labelled)) <= set(held)
    x, y = data[0]
    assert x.shape == (100, 28, 28, 1)
    known = y["labelled"] == 1
    np.testing.assert_array_equal(y["label"][known], data.labels[data.order][known])
    whole = TeacherCacheDataset(default_teacher_cache(), batch_size=256, seed=0)
    again = TeacherCacheDataset(default_teacher_cache(), batch_size=256, seed=0,
                                rows=np.arange(60000))
    np.testing.assert_array_equal(whole.order, again.order)  # rows=None: as before
    np.testing.assert_array_equal(whole.labelled, again.labelled)


def test_missing_cache_or_data_is_a_clear_error(tmp_path, capsys):
    job = load_script(JOB)
    assert job.main(["--quick", "--cache", str(tmp_path / "none.h5"), "--out",
                     str(tmp_path)]) == 2
    assert "No teacher cache" in capsys.readouterr().err
    assert job.main(["--quick", "--data-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err


def test_the_previous_default_student_stays_reachable_by_flags():
    job = load_script(JOB)
    for argv, expected, params in (
            ([], (True, 48, [128]), closed_form_params(48, True, (128,))),
            (["--no-separable", "--width", "32", "--hidden-units", "256"], (False, 32, [256]),
             closed_form_params(32, False, (256,)))):
        args = job.parse(argv)
        job.resolve_student(args)
        assert (args.separable, args.width, args.hidden_units) == expected
        assert args.student == ("sep-w48-h128" if not argv else "conv-w32-h256")
        link = ts.make_link(ts.AWGNChannel(), width=args.width, separable=args.separable,
                            hidden_units=tuple(args.hidden_units), stochastic=True)
        link(np.zeros((1, 28, 28, 1), np.float32), snr_db=10.0)
        assert sum(m.count_params() for m in (link.encoder, link.tx_cam, link.rx_cam,
                                              link.decoder)) == params


def test_every_channel_model_of_the_layers_is_a_channel_choice():
    job = load_script(JOB)
    expected = {"awgn", "rayleigh", *(f"ofdm-{m}" for m in ts.CHANNEL_MODELS)}
    assert set(job.CHANNELS) == expected
    for name in ("ofdm-cdl-e", "ofdm-tdl-d", "ofdm-rayleigh"):
        assert job.parse(["--channel", name]).channel == name
        channel = job.CHANNELS[name]()
        assert isinstance(channel, ts.OFDMChannel) and channel.channel_model == name[5:]
        assert channel.return_noise


@pytest.mark.slow
def test_deterministic_encoder_flag_builds_and_records_it(monkeypatch, tmp_path):
    job = load_script(JOB)
    built = []
    make_trainer = job.ts.make_trainer

    def record(link, **kwargs):
        built.append((link, kwargs))
        raise KeyboardInterrupt  # stop before training: the settings are what we test

    monkeypatch.setattr(job.ts, "make_trainer", record)
    for argv, stochastic, beta in ((["--deterministic-encoder"], False, 0.0), ([], True, 1e-4),
                                   (["--beta", "1e-3"], True, 1e-3)):
        with pytest.raises(KeyboardInterrupt):
            job.main(["--quick", "--out", str(tmp_path), *argv])
        link, kwargs = built[-1]
        assert (link.stochastic, kwargs["beta"]) == (stochastic, beta), argv
    assert not built[0][0].encoder.stochastic
    assert make_trainer(built[0][0], **{**built[0][1], "steps_per_epoch": 1}).beta == 0.0
    # runs written before the flag existed combine with new ones as stochastic runs
    assert job.ADDED == {"stochastic": True}
