"""Every benchmark's ``--quick`` variant, run in-process: it writes a results file with its
provenance, of the structure of the benchmark's committed results (issue 22: "rerunning the
quick variant of each benchmark reproduces the structure").

The structure is compared key by key: the top-level keys, the keys of every record (a dict
holding numbers, strings, ...) and, of a collection (a dict holding only dicts or lists,
keyed by channel, variant, compression, ...: a quick run measures fewer of them), the keys
of the entries both files hold; of a list of records, the keys of its first entry.
Differences are reported as paths (``runs[0].quick``) and must be exactly those listed in
:data:`DIFFERENCES`, each with its reason.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: benchmark: (its committed results files, the flags its quick run needs besides
#: ``--quick --out DIR``)
BENCHMARKS = {
    "ablations": (["ablations.json"], []),
    "augment_views": (["augment_views.json"], []),
    # spawns a worker under each line's Python: .venv-test-tf and .venv-test (CI's), and
    # fails in one line naming --python-tensorflow / --python-torch where one is missing
    "backends": (["backends.json", "backends_malloc_default.json", "backends_omp_passive.json",
                  "backends_threads1.json"], []),
    "cache_scale": (["cache_scale.json"], []),
    "compression_fidelity": (["compression_fidelity.json",
                              "compression_fidelity_imagenet1000.json"],
                             ["--model", str(ROOT / "teachers" / "fashion-mnist-lite0")]),
    "compression_frontier_imagenet1000": (["compression_frontier_imagenet1000.json"], []),
    "digital_vs_analog": (["digital_vs_analog.json"], []),
    "extraction_throughput": (["extraction_throughput.json"], []),
    "fast_distillation": (["fast_distillation.json"], ["--variants", "ce-only", "cached-v1"]),
    "few_labels": (["few_labels.json"], []),
    "hyperparameters": (["hyperparameters.json"], []),
    "latency": (["latency_sep-w48-h128.json", "latency_sep-w36-h128.json",
                 "latency_conv-w32-h256.json"], []),
    "ofdm_channel_step": (["ofdm_channel_step.json"], []),
    "ofdm_estimator_build": (["ofdm_estimator_build.json"], []),
    "student_frontier": (["student_frontier.json"], []),
    "view_seeds": (["view_seeds.json"], []),
    "xla_training": (["xla_training.json"], []),
}

#: benchmark: the one Sionna line its quick run is for (the others run on both lines);
#: conftest deselects a test marked with the other line's marker
LINE = {
    "xla_training": "tensorflow",  # XLA is TensorFlow's: on torch it exits 2 (tested below)
    "backends": "torch",  # runs both lines in subprocesses: once (CI's torch tier) is enough
    # each also has a quick run in its own test file, pinned to the other line, so every
    # line runs each script once (CI time), not twice
    "few_labels": "tensorflow",
    "student_frontier": "torch",
    "fast_distillation": "torch",
}


def quick_runs() -> list:
    """One parameter per benchmark, marked with its line where it has one (:data:`LINE`)."""
    return [pytest.param(name, marks=getattr(pytest.mark, LINE[name])) if name in LINE
            else name for name in sorted(BENCHMARKS)]

#: what the provenance test checks, not the structure (earlier_provenance: a file several
#: commits wrote)
PROVENANCE = {"provenance", "earlier_provenance"}
MACHINE = "committed file predates provenance (its machine record, now provenance.machine)"
PRESET = "committed file predates the named student presets (issue 22 item 2)"
TIMING = "committed file predates the shared interleaved timing (best, spread, all)"
ONLY_TWO = "the test runs two variants (--variants ce-only cached-v1)"
FRONTIER_RUN = "committed runs predate feature distillation in the frontier"
#: benchmark (or one committed file of it, which then overrides its benchmark's entry):
#: {path where the quick output and a committed file differ: why}
DIFFERENCES: dict[str, dict[str, str]] = {
    "backends_threads1.json": {
        **{f"{key}.encoder_ms_per_step": "committed run predates the encoder-alone measurement"
           for key in ("best_ms.*", "median_ms.*", "spread.*", "torch_over_tensorflow")},
        **{f"{key}.{what}/{channel}": "committed run predates the timed epochs"
           for key in ("best_ms.*", "median_ms.*", "spread.*", "torch_over_tensorflow")
           for what in ("epoch_ms", "first_epoch_ms") for channel in ("awgn", "ofdm-tdl-a")},
        "epoch_steps": "committed run predates the timed epochs",
        "lines.*.malloc_tuned": "committed run predates the allocator setting"},
    "ablations": {"machine": MACHINE},
    "cache_scale": {"machine": MACHINE},
    "compression_fidelity": {"machine": MACHINE},
    "extraction_throughput": {"machine": MACHINE, "device": MACHINE, "torch_threads": MACHINE,
                              "bare_loop_s_all": TIMING, "tool_s_all": TIMING},
    "fast_distillation": {
        "machine": MACHINE, "torch_threads": MACHINE,
        "summary.epoch_ratio_cached_over_ce_only.cached-v2": ONLY_TWO,
        "summary.epoch_ratio_cached_over_ce_only.cached-v4": ONLY_TWO,
        "summary.epoch_ratio_online_over_cached_v4": ONLY_TWO,
        "summary.projection_vit_b16": "--quick skips the ViT-B/16 forward (minutes on a CPU)"},
    "hyperparameters": {"machine": MACHINE, "student.preset": PRESET,
                        "defaults.stochastic": "committed file predates the stochastic setting",
                        "runs[0].setting.stochastic":
                            "committed file predates the stochastic setting"},
    "latency": {"runs[0].per_example_latency.*.*.spread": TIMING,
                "runs[0].exported_ends": "committed runs predate the torch line (there the "
                                         "exported ends are ONNX models, not a SavedModel)"},
    "student_frontier": {"machine": MACHINE, "students.*.preset": PRESET,
                         "students.*.runs[0].feature_weight": FRONTIER_RUN,
                         "students.*.runs[0].feature_storage": FRONTIER_RUN,
                         "students.*.runs[0].soft_labels": FRONTIER_RUN},
    "view_seeds": {"machine": MACHINE, "numpy": "committed file predates provenance.versions",
                   "spread": TIMING},
}


def differences(quick, committed, path: str = "") -> set[str]:
    """The paths where the structures of ``quick`` and ``committed`` differ (see the module):
    the top level is a record (its provenance checked apart, and the contents of a run's
    provenance not compared); a collection's entries are compared as one, their key written
    ``*``."""
    if isinstance(quick, list) and isinstance(committed, list):
        if quick and committed and isinstance(quick[0], dict) and isinstance(committed[0], dict):
            return differences(quick[0], committed[0], f"{path}[0]")
        return set()
    if not (isinstance(quick, dict) and isinstance(committed, dict)):
        return set()
    skip = PROVENANCE if not path else set()
    collection = bool(path) and all(
        d and all(isinstance(v, (dict, list)) for v in d.values()) for d in (quick, committed))
    common = [k for k in quick if k in committed and k not in PROVENANCE]  # its own check
    out = set()
    if collection and not common:
        out.add(f"{path}.*")
    if not collection:
        out |= {f"{path}.{k}".lstrip(".") for k in (set(quick) ^ set(committed)) - skip}
    for k in common:
        out |= differences(quick[k], committed[k], f"{path}.{'*' if collection else k}".lstrip("."))
    return out


def test_differences_reports_record_keys_and_pools_collection_entries():
    quick = {"a": 1, "runs": {"x": [{"s": 0, "new": 1}], "z": [{"s": 3}]}, "rec": {"u": 1},
             "provenance": {}}
    committed = {"a": 2, "old": 3, "runs": {"x": [{"s": 1}], "y": [{"s": 2}]},
                 "rec": {"u": 1, "v": 2, "provenance": {}}}
    assert differences(quick, committed) == {"old", "runs.*[0].new", "rec.v", "rec.provenance"}


@pytest.mark.benchmark
@pytest.mark.parametrize("name", quick_runs())
def test_quick_variant_writes_the_committed_structure_with_provenance(name, tmp_path):
    committed_files, flags = BENCHMARKS[name]
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.main(["--quick", "--out", str(tmp_path), *flags]) in (0, None)
    (written,) = tmp_path.glob("*_quick.json")
    quick = json.loads(written.read_text())

    provenance = quick["provenance"]
    for field in ("commit", "command", "versions", "machine", "date"):
        assert provenance[field], field
    assert provenance["command"].startswith(f"python -m benchmarks.{name} ")
    assert "--quick" in provenance["command"].split()

    for committed_name in committed_files:
        committed = json.loads((RESULTS / committed_name).read_text())
        found = differences(quick, committed)
        expected = DIFFERENCES.get(committed_name, DIFFERENCES.get(name, {}))
        assert found == set(expected), (committed_name, sorted(found))


@pytest.mark.torch
def test_xla_training_refuses_the_torch_line_in_one_line(tmp_path, capsys):
    from benchmarks import xla_training

    assert xla_training.main(["--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TensorFlow line" in err and "torch" in err
    assert not list(tmp_path.iterdir())
