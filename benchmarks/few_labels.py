"""Few labels: the main job (``examples/kd_awgn.py``) with a fraction of the labels, distilled
from the cached teacher and teacher-free.

One run of ``examples/kd_awgn.py`` per configuration, called in-process (its ``main``): a
labelled fraction F of 0.01, 0.1 and 1 (``--labelled-fraction F``), each trained
teacher-free (``--no-teacher``: labels only, alpha = 1, on the labelled images, as many steps
as a distilled run) and distilled from the cached teacher with alpha = 0.5 (the default) and,
for F < 1, alpha = 0.05. The student and split are those of the study's first runs (the 1/20
student that was the default then, ``--width 32 --no-separable --hidden-units 256``, trained
on all 60,000 images: ``--val-fraction 0``); 6 epochs, one channel draw, the whole test split,
seed 0. Each run's accuracy at 0, 10 and 20 dB, its 95% interval at 10 dB and its command
accumulate in ``benchmarks/results/few_labels.json``; a rerun skips the configurations the
file holds (``--quick``: ``kd_awgn --quick``, two configurations, ``few_labels_quick.json``).

    python -m benchmarks.few_labels [--epochs 6] [--seed 0] [--draws 1] [--quick] [--out FILE]
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from benchmarks import common

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "examples" / "kd_awgn.py"
#: (labelled fraction, alpha or None for teacher-free), in the order of the study's table
CONFIGS = [(0.01, None), (0.1, None), (1.0, None), (0.01, 0.5), (0.01, 0.05), (0.1, 0.5),
           (0.1, 0.05), (1.0, 0.5)]
QUICK_CONFIGS = [(0.01, None), (0.01, 0.05)]
#: the study's student and split (see the docstring)
STUDENT = ["--width", "32", "--no-separable", "--hidden-units", "256", "--val-fraction", "0"]
SNRS = (0.0, 10.0, 20.0)


def job_args(fraction: float, alpha: float | None, epochs: int, draws: int, seed: int,
             quick: bool) -> list[str]:
    """kd_awgn's arguments for one configuration (without ``--out``)."""
    return (["--epochs", str(epochs), "--draws", str(draws), "--labelled-fraction", f"{fraction:g}"]
            + (["--no-teacher"] if alpha is None else ["--alpha", f"{alpha:g}"])
            + ["--seed", str(seed), *STUDENT] + (["--quick"] if quick else []))


def key(run: dict) -> tuple:
    """What makes a run of the study: its configuration and schedule."""
    return (run["labelled_fraction"], run["teacher_free"], run["alpha"], run["epochs"],
            run["seed"], run["draws"], run.get("quick", False))


def load_job() -> ModuleType:
    """``examples/kd_awgn.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("kd_awgn", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_of(results: dict, argv: list[str]) -> dict:
    """The study's record of one kd_awgn ``results.json``."""
    at = {snr: results["snr_db"].index(snr) for snr in SNRS}
    return {"labelled_fraction": results["labelled_fraction"],
            "teacher_free": results["teacher_free"], "alpha": results["alpha"],
            "epochs": results["epochs"], "seed": results["seed"], "draws": results["draws"],
            "quick": results["quick"], "train_seconds": results["train_seconds"],
            **{f"accuracy_{snr:g}db": results["accuracy"][i] for snr, i in at.items()},
            "accuracy_ci95_10db": results["accuracy_ci95"][at[10.0]],
            "command": shlex.join(["python", "examples/kd_awgn.py", *argv]),
            "provenance": results.get("provenance")}


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, quick="smoke run: kd_awgn --quick, two configurations",
                           epochs=6, out=common.RESULTS,
                           out_help="results folder, or a .json results file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--work", default=None,
                        help="folder for the runs' own outputs (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.draws < 1:
        print("error: --epochs and --draws must be >= 1", file=sys.stderr)
        return 2
    path = common.results_file(args.out, "few_labels", args.quick)
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    epochs = 1 if args.quick else args.epochs
    results = {
        "benchmark": "few_labels",
        "what": "few-label study: examples/kd_awgn.py with --labelled-fraction, distilled "
                "(alpha) and teacher-free (--no-teacher), AWGN, whole test split",
        "student_args": " ".join(STUDENT), "runs": [],
        **(json.loads(path.read_text()) if path.exists() else {})}
    written: set[tuple] = set()

    def merge(on_disk: dict) -> None:
        results["runs"] = common.merge_runs(results["runs"], on_disk.get("runs", []), written,
                                            key)

    job = None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for i, (fraction, alpha) in enumerate(configs):
            config = job_args(fraction, alpha, epochs, args.draws, args.seed, args.quick)
            want = (fraction, alpha is None, 1.0 if alpha is None else alpha, epochs, args.seed,
                    args.draws, args.quick)
            on_disk = json.loads(path.read_text())["runs"] if path.exists() else []
            if any(key(r) == want for r in results["runs"] + on_disk):
                print(f"have {' '.join(config)}", flush=True)
                continue
            job = job or load_job()
            out = work / f"run{i}"
            if job.main([*config, "--out", str(out)]):
                print(f"error: kd_awgn failed for {' '.join(config)}", file=sys.stderr)
                return 1
            run = run_of(json.loads((out / "results.json").read_text()), config)
            results["runs"].append(run)
            written.add(key(run))
            common.save_merged(path, results, merge, common.run_provenance(argv, __name__))
            print(f"F = {fraction:g}, {'teacher-free' if alpha is None else f'alpha {alpha:g}'}:"
                  f" {run['accuracy_0db']:.4f} / {run['accuracy_10db']:.4f} / "
                  f"{run['accuracy_20db']:.4f} at 0 / 10 / 20 dB", flush=True)
    common.save_merged(path, results, merge, common.run_provenance(argv, __name__))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
