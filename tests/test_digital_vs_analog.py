"""The pieces of benchmarks/digital_vs_analog.py that its numbers rest on."""


import numpy as np
import pytest
from backend import gradient, numpy
from script_modules import load_benchmark

import tosc_sionna as ts


@pytest.fixture(scope="module")
def bench():
    # loaded by the tests, not at import: a benchmark that fails to import on a line fails
    # these tests there instead of interrupting the collection of the whole suite
    return load_benchmark("digital_vs_analog")


def test_search_enumerates_every_point_that_spends_exactly_n_channel_uses(bench):
    import math

    from tosc_sionna.channels.digital import LDPC5G_RATE_MAX, LDPC5G_RATE_MIN_REPEATED

    space = bench.SEARCH_SPACE
    for n in bench.NS:
        points = bench.search_points(n)
        found = {(p["num_bits"], p["num_values"], p["modulation_order"]) for p in points}
        # exactly the grid points at a 5G code rate that fill n uses
        expected = {(b, k, m) for b in space["num_bits"] for k in space["num_values"]
                    for m in space["modulation_order"]
                    if LDPC5G_RATE_MIN_REPEATED <= k * b / (n * math.log2(m)) <= LDPC5G_RATE_MAX}
        assert found == expected and len(points) == len(found), n
        for p in points:
            b, k, m, r = p["num_bits"], p["num_values"], p["modulation_order"], p["code_rate"]
            assert k % 2 == 0  # the encoder emits pairs of reals
            awgn = bench.digital_channel(b, r, m, "awgn").code_parameters(k)
            rayleigh = bench.digital_channel(b, r, m, "rayleigh").code_parameters(k)
            assert awgn["channel_uses"] == p["channel_uses"] == n
            assert rayleigh["channel_uses"] == p["channel_uses_rayleigh"] == n + bench.NUM_PILOTS
            assert awgn["effective_code_rate"] == pytest.approx(r, abs=1e-12)
            assert awgn["n"] == n * math.log2(m)
    low = [p for p in bench.search_points(64) if p["code_rate"] < 1 / 5]
    assert low and all(p["below_one_fifth"] for p in low)
    assert any(p["filler_bits"] > 0 for p in bench.search_points(16))  # shortened points too
    # the quick run's points are searched points
    for n, quick in bench.QUICK_POINTS.items():
        assert set(quick) <= {(p["num_bits"], p["num_values"], p["modulation_order"])
                              for p in bench.search_points(n)}


def test_a_point_below_one_fifth_decodes_with_its_student_budget(bench):
    """A searched point below rate 1/5 at n = 64 runs through the layer: repeated, bit-exact
    at high SNR, and it spends 64 uses (68 with the Rayleigh pilots)."""
    low = min((p for p in bench.search_points(64) if p["filler_bits"] == 0),
              key=lambda p: p["code_rate"])
    layer = bench.digital_channel(low["num_bits"], low["code_rate"], low["modulation_order"],
                                  "awgn")
    x = np.random.default_rng(0).normal(0, 0.7, (16, low["num_values"])).astype(np.float32)
    np.testing.assert_array_equal(numpy(layer(x, snr_db=30.0)), numpy(layer.quantize_values(x)))
    assert layer.code_parameters(low["num_values"])["repetitions"] > 1
    assert layer.channel_uses == 64


def test_selection_picks_the_best_on_validation_and_reports_its_test_accuracy(bench):
    snrs = [0.0, 10.0, 20.0]

    def point(b, val, test):
        return {"num_bits": b, "num_values": 8, "modulation_order": 4, "code_rate": b / 4,
                "awgn": {"val_accuracy": val, "test_accuracy": test}}

    points = [point(1, [0.50, 0.80, 0.85], [0.90, 0.70, 0.80]),
              point(2, [0.40, 0.85, 0.85], [0.10, 0.88, 0.90]),
              point(3, [0.30, 0.60, 0.86], [0.95, 0.50, 0.84])]
    best = bench.select_on_validation(points, "awgn", snrs)
    assert [p["num_bits"] for p in best["point"]] == [1, 2, 3]
    assert best["val_accuracy"] == [0.50, 0.85, 0.86]
    # the test accuracy of the validation choice, not the best test accuracy
    assert best["test_accuracy"] == [0.90, 0.88, 0.84]
    assert best["snr_db"] == snrs and best["label"][0].startswith("b=1 k=8 4-QAM")
    # ties: the first point in search order
    tied = bench.select_on_validation([point(1, [0.5] * 3, [0.1] * 3),
                                       point(2, [0.5] * 3, [0.9] * 3)], "awgn", snrs)
    assert [p["num_bits"] for p in tied["point"]] == [1, 1, 1]


def test_bound_entries_are_the_finite_blocklength_values(bench):
    from tosc_sionna import finite_blocklength as fbl

    snrs = [-5.0, 0.0, 10.0]
    for channel, error in (("awgn", fbl.awgn_block_error),
                           ("rayleigh", fbl.rayleigh_block_error)):
        entry = bench.bound_entry(16, channel, snrs, 0.9, 10)
        assert entry["bits"] == pytest.approx(np.log2(10)) and entry["n"] == 16
        for suffix, log_term in (("", True), ("_no_log_term", False)):
            eps = error(16, np.log2(10), snrs, log_term=log_term)
            np.testing.assert_allclose(entry[f"block_error{suffix}"], eps)
            np.testing.assert_allclose(entry[f"accuracy{suffix}"],
                                       fbl.classify_then_send_accuracy(0.9, 10, eps))
        # the 1/2 log2 n term only helps
        assert np.all(np.array(entry["accuracy"]) >= np.array(entry["accuracy_no_log_term"]))


def test_quantizer_in_the_loop_forward_quantizes_and_gradient_is_identity(bench):
    layer = bench.QuantizerInTheLoop(num_bits=2, clip=1.4)
    x = np.random.default_rng(0).normal(0, 0.7, (64, 8)).astype(np.float32)
    y = numpy(layer(x, snr_db=10.0))
    np.testing.assert_array_equal(y, numpy(layer.quantize_values(x)))
    assert len(np.unique(y)) == 4  # 2 bits
    np.testing.assert_allclose(gradient(lambda v: 3.0 * layer(v, snr_db=10.0), x), 3.0)


def test_class_index_reference_is_exact_at_high_snr_and_chance_like_at_very_low(bench):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 400)
    predictions = np.where(rng.random(400) < 0.8, labels, (labels + 1) % 10)
    ts.set_seed(0)
    curve = bench.index_sweep(predictions, labels, 16, "awgn", [-15.0, 30.0], batch=200)
    assert curve["channel_uses"] == 16
    # 4 bits shortened (8 known filler bits) in 32 coded bits
    assert curve["effective_code_rate"] == pytest.approx(4 / 32)
    assert curve["filler_bits"] == 8 and curve["repetitions"] == 1.0
    # n = 64: the rate-1/5 mother codeword (50 unknown bits) repeated over 128 bits
    ts.set_seed(0)
    wide = bench.index_sweep(predictions, labels, 64, "rayleigh", [40.0], batch=200)
    assert wide["channel_uses"] == 64 + bench.NUM_PILOTS
    assert wide["effective_code_rate"] == pytest.approx(4 / 128)
    assert wide["repetitions"] == pytest.approx(128 / 50)
    assert wide["accuracy"][0] == wide["clean_accuracy"]
    assert curve["clean_accuracy"] == pytest.approx(np.mean(predictions == labels))
    assert curve["accuracy"][1] == curve["clean_accuracy"]  # decoded bit-exactly
    assert curve["accuracy"][0] < 0.3  # at -15 dB the code fails


def test_cliff_is_where_the_curve_reaches_its_plateau(bench):
    snrs = [-10.0, -5.0, 0.0, 5.0, 10.0]
    assert bench.cliff_db(snrs, [0.1, 0.1, 0.5, 0.90, 0.90]) == pytest.approx(
        0.0 + (0.89 - 0.5) / 0.4 * 5.0)
    assert bench.cliff_db(snrs, [0.9] * 5) == -10.0  # flat: the whole range
    # a late dip below the plateau band resets the search above it
    assert bench.cliff_db(snrs, [0.9, 0.9, 0.7, 0.9, 0.9]) == pytest.approx(0.0 + 0.95 * 5.0)
    # against an error-free reference: a curve still climbing at the top has no cliff in range
    assert bench.cliff_db(snrs, [0.1, 0.3, 0.5, 0.7, 0.85], reference=0.9) is None
    assert bench.cliff_db(snrs, [0.1, 0.3, 0.5, 0.7, 0.89], reference=0.9) == pytest.approx(10.0)


def test_summary_margins_against_best_on_validation_and_the_limit(bench):
    snrs = [0.0, 10.0, 20.0]

    def curve(kind, channel, acc):
        return {"kind": kind, "n": 16, "channel": channel, "label": kind, "snr_db": snrs,
                "accuracy": acc}

    def best(test):
        return {"snr_db": snrs, "test_accuracy": test}

    def bound(acc, acc_no_log):
        return {"snr_db": snrs, "accuracy": acc, "accuracy_no_log_term": acc_no_log}

    results = bench.summarize({
        "curves": [curve("analog", "awgn", [0.85, 0.90, 0.90]),
                   curve("analog", "rayleigh", [0.60, 0.80, 0.89]),
                   curve("index", "awgn", [0.20, 0.91, 0.91]),
                   curve("index", "rayleigh", [0.10, 0.50, 0.80])],
        "digital_search": {"16": {"best_on_validation": {
            "awgn": best([0.20, 0.91, 0.91]), "rayleigh": best([0.30, 0.70, 0.90])}}},
        "finite_blocklength": {"16": {"awgn": bound([0.80, 0.90, 0.90], [0.70, 0.90, 0.90]),
                                      "rayleigh": bound([0.5, 0.8, 0.9], [0.4, 0.7, 0.9])}},
    })
    rayleigh = [c for c in results["curves"] if c["channel"] == "rayleigh"]
    # analog students are trained per channel (own top SNR); the index link serves both
    assert [c["error_free_accuracy"] for c in rayleigh] == [0.89, 0.91]
    assert rayleigh[0]["cliff_db"] == pytest.approx(10.0 + 0.08 / 0.09 * 10.0)
    assert rayleigh[1]["cliff_db"] is None
    margin = results["analog_vs_digital"]["n=16 awgn"]
    np.testing.assert_allclose(margin["analog_minus_best_digital"], [0.65, -0.01, -0.01])
    np.testing.assert_allclose(margin["analog_minus_limit"], [0.05, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(margin["analog_minus_limit_no_log_term"], [0.15, 0.0, 0.0],
                               atol=1e-12)
    assert margin["analog_ahead_at_db"] == [0.0]
    ray = results["analog_vs_digital"]["n=16 rayleigh"]
    np.testing.assert_allclose(ray["analog_minus_best_digital"], [0.30, 0.10, -0.01])
    assert ray["analog_ahead_at_db"] == [0.0, 10.0]


SNRS3 = [0.0, 10.0, 20.0]
#: fake validation accuracies of the first four points at n = 16: AWGN chooses points 0, 1, 1
#: (a tie at 20 dB goes to the first), Rayleigh 2, 2, 0; point 3 is never chosen
FAKE_VAL = {"awgn": [[0.5, 0.6, 0.7], [0.4, 0.8, 0.9], [0.3, 0.7, 0.9], [0.1, 0.2, 0.3]],
            "rayleigh": [[0.2, 0.3, 0.6], [0.1, 0.3, 0.5], [0.4, 0.5, 0.5], [0.3, 0.1, 0.2]]}


def fake_evaluate(points, calls):
    """An evaluation that measures nothing: validation from FAKE_VAL, test = 1 - validation
    (so a choice by test accuracy would differ), each call recorded."""
    index = {(p["num_bits"], p["num_values"], p["modulation_order"]): i
             for i, p in enumerate(points)}

    def evaluate(entry, channel, split):
        i = index[(entry["num_bits"], entry["num_values"], entry["modulation_order"])]
        calls.append((i, channel, split))
        val = FAKE_VAL[channel][i]
        return val if split == "validation" else [1.0 - a for a in val]

    return evaluate


def test_search_evaluates_every_point_on_validation_and_tests_only_the_chosen_pairs(bench):
    points = bench.search_points(16)[:4]
    calls, saved = [], []
    search = {"points": [], "best_on_validation": {}}
    bench.run_search(points, SNRS3, fake_evaluate(points, calls), search,
                     lambda: saved.append(len(calls)))
    validation = [c for c in calls if c[2] == "validation"]
    tested = [c[:2] for c in calls if c[2] == "test"]
    assert validation == [(i, ch, "validation") for i in range(4) for ch in bench.CHANNELS]
    # the test pass comes after every point's validation, and covers exactly the chosen pairs
    assert calls.index((0, "awgn", "test")) > calls.index((3, "rayleigh", "validation"))
    assert tested == [(0, "awgn"), (0, "rayleigh"), (1, "awgn"), (2, "rayleigh")]
    assert bench.chosen_pairs(search["points"]) == tested
    for i, entry in enumerate(search["points"]):
        for channel in bench.CHANNELS:
            assert entry[channel]["val_accuracy"] == FAKE_VAL[channel][i]
            expected = ([1.0 - a for a in FAKE_VAL[channel][i]] if (i, channel) in tested
                        else None)  # not chosen: never tested
            assert entry[channel]["test_accuracy"] == expected
    best = search["best_on_validation"]
    assert [p["num_bits"] for p in best["awgn"]["point"]] == [
        points[i]["num_bits"] for i in (0, 1, 1)]
    assert best["awgn"]["test_accuracy"] == pytest.approx([0.5, 0.2, 0.1])
    assert best["rayleigh"]["val_accuracy"] == [0.4, 0.5, 0.6]
    assert best["rayleigh"]["test_accuracy"] == pytest.approx([0.6, 0.5, 0.4])
    # written as measured: after each point's validation and each test
    assert saved == [2, 4, 6, 8, 9, 10, 11, 12, 12]


def test_search_resumes_what_the_results_file_has(bench):
    points = bench.search_points(16)[:4]
    first = {"points": [], "best_on_validation": {}}
    bench.run_search(points, SNRS3, fake_evaluate(points, []), first, lambda: None)
    # an interrupted run: points 2 and 0 validated (in another order), point 0 tested over
    # AWGN only, point 1's entry lost
    prior = [dict(first["points"][2]), dict(first["points"][0])]
    prior[0]["rayleigh"] = {**prior[0]["rayleigh"], "test_accuracy": None}
    prior[1]["rayleigh"] = {**prior[1]["rayleigh"], "test_accuracy": None}
    search = {"points": prior, "best_on_validation": {}}
    calls, on_disk = [], []
    bench.run_search(points, SNRS3, fake_evaluate(points, calls), search,
                     lambda: on_disk.append([bench.point_key(p) for p in search["points"]]))
    assert calls == [(1, "awgn", "validation"), (1, "rayleigh", "validation"),
                     (3, "awgn", "validation"), (3, "rayleigh", "validation"),
                     (0, "rayleigh", "test"), (1, "awgn", "test"), (2, "rayleigh", "test")]
    # the resumed points stay in the file while the others are measured
    assert on_disk[0][:2] == [bench.point_key(points[2]), bench.point_key(points[0])]
    assert search["points"] == first["points"]  # in search order, the same numbers
    assert search["best_on_validation"] == first["best_on_validation"]


def test_validation_subset_is_a_fixed_seeded_draw_of_the_held_out_images(bench):
    subset = bench.validation_subset(5000, 2000)
    assert len(subset) == len(np.unique(subset)) == 2000
    assert np.all(np.diff(subset) > 0) and 0 <= subset[0] and subset[-1] < 5000
    np.testing.assert_array_equal(subset, bench.validation_subset(5000, 2000))  # fixed
    assert not np.array_equal(subset, np.arange(2000))  # drawn, not the first images
    assert not np.array_equal(subset, bench.validation_subset(5000, 2000, seed=1))
    assert set(bench.validation_subset(5000, 500)) <= set(subset)  # nested
    np.testing.assert_array_equal(bench.validation_subset(1000, 1000), np.arange(1000))
    with pytest.raises(ValueError):
        bench.validation_subset(5000, 5001)


def test_a_run_resumes_only_from_a_file_with_its_settings(bench, tmp_path):
    import json

    settings = {key: 1 for key in bench.RESUME_KEYS}
    path = tmp_path / "digital_vs_analog.json"
    assert bench.resumable(path, settings) == {}
    path.write_text(json.dumps({**settings, "curves": [{"n": 16}]}))
    assert bench.resumable(path, settings)["curves"] == [{"n": 16}]
    for key in ("epochs", "seed", "validation_images", "snr_db"):
        assert bench.resumable(path, {**settings, key: 2}) == {}, key
    # another number of CPUs sums in another order: not the same students
    assert bench.resumable(path, {**settings, "cpu_threads": 2}) == {}
    # a file from before the key resumes
    path.write_text(json.dumps({**{k: v for k, v in settings.items() if k != "cpu_threads"},
                                "curves": [{"n": 16}]}))
    assert bench.resumable(path, {**settings, "cpu_threads": 2})["curves"] == [{"n": 16}]
    assert bench.resumable(path, {**settings, "seed": 2}) == {}


def test_a_student_checkpoint_reloads_the_trained_student_and_only_for_its_settings(
        bench, tmp_path):
    x = np.random.default_rng(1).random((8, 28, 28, 1)).astype(np.float32)
    trainings = []

    def build():
        return ts.make_link(bench.QuantizerInTheLoop(num_bits=2, clip=1.4), num_symbols=4,
                            width=4, hidden_units=(8,), seed=0)

    def fit(link):  # stands in for training: moves every weight, seeded per call
        link.predict(x[:1], verbose=0)
        rng = np.random.default_rng(len(trainings))
        link.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in link.get_weights()])
        trainings.append(link)
        return 12.5

    stem, settings = tmp_path / "students" / "b2_k8", {"seed": 0, "epochs": 5}
    trained, seconds = bench.student_checkpoint(stem, settings, build, fit, x[:2])
    assert (len(trainings), seconds) == (1, 12.5)
    assert sorted(p.name for p in stem.parent.iterdir()) == ["b2_k8.json", "b2_k8.weights.h5"]
    reloaded, seconds = bench.student_checkpoint(stem, settings, build, fit, x[:2])
    assert (len(trainings), seconds) == (1, 12.5) and reloaded is not trained
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), trained.predict(x, verbose=0))
    # other settings: trained again (and the checkpoint replaced)
    bench.student_checkpoint(stem, {**settings, "epochs": 6}, build, fit, x[:2])
    assert len(trainings) == 2
    # weights without the record that vouches for them (an interrupted save): trained again
    (stem.parent / "b2_k8.json").unlink()
    bench.student_checkpoint(stem, {**settings, "epochs": 6}, build, fit, x[:2])
    assert len(trainings) == 3
    # a run that does not resume (its results file deleted) trains its own
    bench.student_checkpoint(stem, {**settings, "epochs": 6}, build, fit, x[:2], reuse=False)
    assert len(trainings) == 4
    bench.student_checkpoint(stem, {**settings, "epochs": 6}, build, fit, x[:2])
    assert len(trainings) == 4  # and leaves it for a resume
    assert sorted(p.name for p in stem.parent.iterdir()) == ["b2_k8.json", "b2_k8.weights.h5"]
