"""Few labels, honestly: the main job (``examples/kd_awgn.py``) with a fraction of the labels,
distilled from the cached teacher and teacher-free, alpha chosen on validation, over seeds.

One run of ``examples/kd_awgn.py`` per configuration and seed, called in-process (its
``main``): a labelled fraction F of 0.01, 0.1 and 1 (``--labelled-fraction F``), each trained
teacher-free (``--no-teacher``: labels only, alpha = 1, on the labelled images, as many steps
as a distilled run) and distilled from the cached teacher with every alpha of
:data:`ALPHA_GRID` (0.05, 0.25, 0.5) for F < 1, and with alpha 0.5 (the default, chosen on
validation with all labels by ``benchmarks/hyperparameters.py``) for F = 1: 10
configurations, each for every seed of ``--seeds`` (default 0 1 2). The student is the main
job's default (``tosc_sionna.DEFAULT_STUDENT``; ``--student NAME`` picks another preset, e.g.
``conv-w32-h256``, the 1/20 student of the study's first runs) with kd_awgn's validation split:
5,000 training images held out (never trained on; the labelled fraction is of the other
55,000), the same for every seed; 6 epochs, one channel draw, the whole test split.

Each run records its validation and test accuracy at 0, 10 and 20 dB, its 95% interval on the
test split at 10 dB and its command. For each F < 1, alpha is **chosen on validation**: the
alpha of the grid with the highest validation accuracy averaged over 0 and 10 dB (the SNRs
``benchmarks/hyperparameters.py`` chooses on), mean over the seeds every compared alpha has
(ties: the smaller alpha); the test split never enters the choice. The ``summary`` (one
record per student, schedule and F, recomputed on every save) reports the distilled student
at the chosen alpha vs the teacher-free one: test accuracy mean +- std (ddof=1) over seeds at
0, 10 and 20 dB, the chosen alpha and the validation numbers that chose it.

Two facts bound any few-labels claim made from these numbers, and the results record them:
the teacher whose cached outputs the student distils was fine-tuned on **all 60,000 labelled
training images** (``teacher_labels``, read from ``teachers/fashion-mnist-lite0/training.json``,
the held-out validation images included): "few labels" is about the student's training, not
the system's; and the validation split that chooses alpha holds 5,000 labelled images, more
labels than the student trains on at F = 0.01 (550) or 0.1 (5,500).

Runs accumulate in ``benchmarks/results/few_labels.json`` keyed by student, configuration,
seed and schedule; a rerun skips the runs the file holds and seeds can run side by side
(``--seeds 1`` beside ``--seeds 2``: a save merges with what other processes wrote). Runs of
an older file without a validation split (the study's first runs: the 1/20 student, alpha
compared on test, one seed) never count as done: they are dropped when the file is next
written (git history keeps them). ``--summarize FILE`` recomputes the summary of a results
file. ``--quick``: ``kd_awgn --quick`` (1 epoch of 300 steps, 2,000 validation and test
images), F = 0.01 teacher-free and alpha 0.05, the first seed: ``few_labels_quick.json``, the
structure of the full run's file, in about a minute.

The full run (10 configurations x 3 seeds = 30 runs of 6 epochs; a 6-epoch run of the default
student takes roughly 6-8 minutes on this project's 2-core CPU, so about 3-4 hours):

    python -m benchmarks.few_labels [--seeds 0 1 2] [--epochs 6] [--draws 1] [--student NAME]
        [--quick] [--out FILE] [--work DIR]
    python -m benchmarks.few_labels --summarize benchmarks/results/few_labels.json
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np

import tosc_sionna as ts
from benchmarks import common

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "examples" / "kd_awgn.py"
#: the training record of the teacher the shipped cache was extracted with
TEACHER_TRAINING = ROOT / "teachers" / "fashion-mnist-lite0" / "training.json"
FRACTIONS = (0.01, 0.1, 1.0)
#: the alphas compared on validation for each F < 1
ALPHA_GRID = (0.05, 0.25, 0.5)
#: F = 1: the main job's default, chosen on validation with all labels (benchmarks.hyperparameters)
FULL_LABELS_ALPHA = 0.5
#: (labelled fraction, alpha or None for teacher-free), teacher-free first
CONFIGS = ([(f, None) for f in FRACTIONS]
           + [(f, a) for f in FRACTIONS if f < 1 for a in ALPHA_GRID]
           + [(1.0, FULL_LABELS_ALPHA)])
QUICK_CONFIGS = [(0.01, None), (0.01, 0.05)]
#: the SNRs of each run's test and validation accuracy
SNRS = (0.0, 10.0, 20.0)
#: alpha is chosen by the validation accuracy averaged over these SNRs (mean over seeds)
SELECTION_SNRS = (0.0, 10.0)
SELECTION = ("for each F < 1, the alpha of alpha_grid with the highest validation accuracy "
             "(held-out training images) averaged over 0 and 10 dB, mean over the seeds every "
             "compared alpha has (ties: the smaller alpha); the test split is not used. F = 1: "
             "alpha 0.5 only (the default, chosen on validation by benchmarks.hyperparameters)")


def teacher_labels() -> dict:
    """The labels the teacher saw: its fine-tuning images (``training.json``)."""
    images = json.loads(TEACHER_TRAINING.read_text())["recipe"]["train_images"]
    return {"fine_tuned_on_labelled_images": images,
            "source": f"{TEACHER_TRAINING.relative_to(ROOT)} (recipe.train_images)",
            "note": f"the cached teacher was fine-tuned on all {images:,} labelled Fashion-MNIST "
                    "training images (the held-out validation images included): a labelled "
                    "fraction F limits the student's labels, not the system's"}


def job_args(fraction: float, alpha: float | None, epochs: int, draws: int, seed: int,
             quick: bool, student: str = ts.DEFAULT_STUDENT) -> list[str]:
    """kd_awgn's arguments for one configuration and seed (without ``--out``; kd_awgn's
    default validation split)."""
    return (["--epochs", str(epochs), "--draws", str(draws), "--labelled-fraction", f"{fraction:g}"]
            + (["--no-teacher"] if alpha is None else ["--alpha", f"{alpha:g}"])
            + ["--seed", str(seed), "--student", student,
               "--val-snrs", *(f"{s:g}" for s in SNRS)] + (["--quick"] if quick else []))


def validated(run: dict) -> bool:
    """A run of this study: it has a student and a validation accuracy at every SNR (the
    study's first runs had neither)."""
    return run.get("student") is not None and all(
        run.get(f"val_accuracy_{s:g}db") is not None for s in SNRS)


def key(run: dict) -> tuple:
    """What makes a run of the study: student, configuration, seed and schedule (a run
    without validation never equals one with it)."""
    return (run.get("student"), run["labelled_fraction"], run["teacher_free"], run["alpha"],
            run["epochs"], run["seed"], run["draws"], run.get("quick", False), validated(run))


def wanted(fraction: float, alpha: float | None, epochs: int, draws: int, seed: int,
           quick: bool, student: str) -> tuple:
    """The :func:`key` of the run of one configuration and seed."""
    return (student, fraction, alpha is None, 1.0 if alpha is None else alpha, epochs, seed,
            draws, quick, True)


def load_job() -> ModuleType:
    """``examples/kd_awgn.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("kd_awgn", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_of(results: dict, argv: list[str]) -> dict:
    """The study's record of one kd_awgn ``results.json``."""
    test = {snr: results["snr_db"].index(snr) for snr in SNRS}
    val = results["validation"]
    return {"student": results["student"], "labelled_fraction": results["labelled_fraction"],
            "teacher_free": results["teacher_free"], "alpha": results["alpha"],
            "epochs": results["epochs"], "seed": results["seed"], "draws": results["draws"],
            "quick": results["quick"], "train_images": results["train_images"],
            "val_images": results["val_images"], "val_seed": results["val_seed"],
            "train_seconds": results["train_seconds"],
            **{f"val_accuracy_{snr:g}db": val["accuracy"][val["snr_db"].index(snr)]
               for snr in SNRS},
            **{f"test_accuracy_{snr:g}db": results["accuracy"][i] for snr, i in test.items()},
            "test_accuracy_ci95_10db": results["accuracy_ci95"][test[10.0]],
            "command": shlex.join(["python", "examples/kd_awgn.py", *argv]),
            "provenance": results.get("provenance")}


def mean_std(values: list[float]) -> dict:
    """Mean and standard deviation (ddof=1; None for one value) over seeds."""
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else None}


def arm(runs: list[dict]) -> dict | None:
    """One side of a comparison: its seeds, and its test and validation accuracy at each SNR,
    mean +- std over them."""
    if not runs:
        return None
    runs = sorted(runs, key=lambda r: r["seed"])
    return {"alpha": runs[0]["alpha"], "seeds": [r["seed"] for r in runs],
            **{split: {f"{s:g} dB": mean_std([r[f"{split}_accuracy_{s:g}db"] for r in runs])
                       for s in SNRS} for split in ("test", "val")}}


def choose_alpha(by_alpha: dict[float, dict[int, dict]]) -> tuple[float | None, list[int], dict]:
    """The alpha chosen on validation (:data:`SELECTION`) among ``{alpha: {seed: run}}``, the
    seeds it was chosen over (those every alpha has) and each alpha's validation numbers
    there: ``(None, [], {})`` where no seed is common to all."""
    seeds = sorted(set.intersection(*(set(r) for r in by_alpha.values()))) if by_alpha else []
    if not seeds:
        return None, [], {}
    numbers = {}
    for alpha in sorted(by_alpha):
        runs = [by_alpha[alpha][s] for s in seeds]
        scores = [np.mean([r[f"val_accuracy_{s:g}db"] for s in SELECTION_SNRS]) for r in runs]
        numbers[alpha] = {"score": float(np.mean(scores)),
                          **{f"{s:g} dB": mean_std([r[f"val_accuracy_{s:g}db"] for r in runs])
                             for s in SNRS}}
    best = max(sorted(numbers), key=lambda a: numbers[a]["score"])  # first max: smaller alpha
    return best, seeds, numbers


def summarize(runs: list[dict]) -> list[dict]:
    """One record per student, schedule and labelled fraction, of the runs with validation:
    the alpha chosen on validation (:func:`choose_alpha`) and, on the test split, the
    distilled student at that alpha vs the teacher-free one (mean +- std over seeds)."""
    groups: dict[tuple, list[dict]] = {}
    for run in filter(validated, runs):
        groups.setdefault((run["student"], run["epochs"], run["draws"], run.get("quick", False),
                           run["val_images"], run["labelled_fraction"]), []).append(run)
    out = []
    for group in sorted(groups, key=lambda g: (str(g[0]), *g[1:])):
        student, epochs, draws, quick, val_images, fraction = group
        by_alpha: dict[float, dict[int, dict]] = {}
        for run in groups[group]:
            if not run["teacher_free"]:
                by_alpha.setdefault(run["alpha"], {})[run["seed"]] = run
        chosen, seeds, numbers = choose_alpha(by_alpha)
        distilled = arm(list(by_alpha[chosen].values())) if chosen is not None else None
        free = arm([r for r in groups[group] if r["teacher_free"]])
        gain = None if distilled is None or free is None else {
            f"{s:g} dB": 100 * (distilled["test"][f"{s:g} dB"]["mean"]
                                - free["test"][f"{s:g} dB"]["mean"]) for s in SNRS}
        out.append({"student": student, "epochs": epochs, "draws": draws, "quick": quick,
                    "val_images": val_images, "labelled_fraction": fraction,
                    "alphas_compared": sorted(by_alpha), "selection_seeds": seeds,
                    "validation_by_alpha": {f"{a:g}": n for a, n in numbers.items()},
                    "chosen_alpha": chosen, "distilled": distilled, "teacher_free": free,
                    "test_gain_points": gain})
    return out


def header() -> dict:
    """A results file's fields besides its runs, summary and provenance."""
    return {"benchmark": "few_labels",
            "what": "few-label study: examples/kd_awgn.py with --labelled-fraction, distilled "
                    "(alpha chosen on validation) and teacher-free (--no-teacher), AWGN, seeds; "
                    "validation = kd_awgn's held-out training images, test = the whole test "
                    "split",
            "teacher_labels": teacher_labels(), "alpha_grid": list(ALPHA_GRID),
            "full_labels_alpha": FULL_LABELS_ALPHA, "selection": SELECTION,
            "snrs_db": list(SNRS)}


def report(summary: list[dict]) -> None:
    """The summary as lines: per F, the chosen alpha and test mean +- std over seeds."""
    def cell(side: dict | None) -> str:
        if side is None:
            return "-"
        return " / ".join(f"{v['mean']:.4f}" + (f" +- {v['std']:.4f}" if v["std"] else "")
                          for v in side["test"].values()) + f" ({len(side['seeds'])} seeds)"

    for rec in summary:
        print(f"{rec['student']}, {rec['epochs']} epochs, F = {rec['labelled_fraction']:g}: "
              f"alpha {rec['chosen_alpha']} chosen on validation of {rec['alphas_compared']}; "
              f"test at {' / '.join(f'{s:g}' for s in SNRS)} dB: distilled "
              f"{cell(rec['distilled'])}, teacher-free {cell(rec['teacher_free'])}")


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, quick="smoke run: kd_awgn --quick, F = 0.01, teacher-free "
                           "and alpha 0.05, the first seed", seeds=[0, 1, 2], epochs=6,
                           out=common.RESULTS, out_help="results folder, or a .json results file")
    parser.add_argument("--draws", type=int, default=1, help="channel draws per SNR (default 1)")
    parser.add_argument("--student", choices=list(ts.STUDENT_PRESETS), default=ts.DEFAULT_STUDENT,
                        help=f"the student (default {ts.DEFAULT_STUDENT}, the main job's; "
                             "conv-w32-h256: the study's first runs)")
    parser.add_argument("--work", default=None,
                        help="folder for the runs' own outputs (default: a temporary one)")
    parser.add_argument("--summarize", metavar="FILE", default=None,
                        help="only recompute the summary of a results file")
    args = parser.parse_args(argv)
    if args.summarize:
        path = Path(args.summarize)
        results = json.loads(path.read_text())
        results["summary"] = summarize(results.get("runs", []))
        # the file's runs keep their provenance; the file's own becomes earlier_provenance
        common.save_merged(path, results, record=common.run_provenance(argv, __name__))
        report(results["summary"])
        return 0
    if args.epochs < 1 or args.draws < 1:
        print("error: --epochs and --draws must be >= 1", file=sys.stderr)
        return 2
    if len(set(args.seeds)) != len(args.seeds):
        print(f"error: --seeds must differ; got {args.seeds}", file=sys.stderr)
        return 2
    path = common.results_file(args.out, "few_labels", args.quick)
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    seeds = args.seeds[:1] if args.quick else args.seeds
    epochs = 1 if args.quick else args.epochs

    def on_disk() -> list[dict]:
        return json.loads(path.read_text()).get("runs", []) if path.exists() else []

    results = {**header(), "runs": [r for r in on_disk() if validated(r)], "summary": []}
    written: set[tuple] = set()

    def merge(disk: dict) -> None:
        runs = disk.get("runs", [])
        if not all(map(validated, runs)):
            # a file of the study's first runs (no validation split): its runs are dropped,
            # and so is its provenance (save_merged reads it from ``disk`` after this merge)
            print(f"dropping {sum(not validated(r) for r in runs)} runs without a validation "
                  f"split from {path}", flush=True)
            disk.pop("provenance", None)
            disk.pop("earlier_provenance", None)
        results["runs"] = common.merge_runs(results["runs"], list(filter(validated, runs)),
                                            written, key)
        results["summary"] = summarize(results["runs"])

    job = None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for seed in seeds:
            for fraction, alpha in configs:
                config = job_args(fraction, alpha, epochs, args.draws, seed, args.quick,
                                  args.student)
                want = wanted(fraction, alpha, epochs, args.draws, seed, args.quick,
                              args.student)
                if any(key(r) == want for r in results["runs"] + on_disk()):
                    print(f"have {' '.join(config)}", flush=True)
                    continue
                job = job or load_job()
                out = work / f"F{fraction:g}_{'free' if alpha is None else f'a{alpha:g}'}_s{seed}"
                if job.main([*config, "--out", str(out)]):
                    print(f"error: kd_awgn failed for {' '.join(config)}", file=sys.stderr)
                    return 1
                run = run_of(json.loads((out / "results.json").read_text()), config)
                results["runs"].append(run)
                written.add(key(run))
                common.save_merged(path, results, merge, common.run_provenance(argv, __name__))
                print(f"F = {fraction:g}, {'teacher-free' if alpha is None else f'alpha {alpha:g}'}"
                      f", seed {seed}: validation {run['val_accuracy_0db']:.4f} / "
                      f"{run['val_accuracy_10db']:.4f}, test {run['test_accuracy_0db']:.4f} / "
                      f"{run['test_accuracy_10db']:.4f} / {run['test_accuracy_20db']:.4f} at "
                      "0 / 10 (/ 20) dB", flush=True)
    common.save_merged(path, results, merge, common.run_provenance(argv, __name__))
    report(results["summary"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
