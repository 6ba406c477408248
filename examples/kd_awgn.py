"""The main job: distil the shipped Fashion-MNIST teacher into a tiny link over a noisy channel.

With ``--cache C.h5`` it trains from any teacher cache instead (any dataset
``tosc-cache extract`` read: a hub id, a saved or an image folder); the test
split comes from the same dataset (``--dataset`` if it moved).

Fast distillation: the student trains from the pre-stored teacher cache (the
teacher is never loaded), with the information-bottleneck distillation loss,
an SNR drawn per example from the training range and channel-adaptive
modules at both ends. It then sweeps accuracy vs SNR over the whole test split
(several channel draws per SNR), prints a table beside the teacher's clean
accuracy, and writes ``results.json`` and ``accuracy_vs_snr.png`` into --out.
The default student is ``tosc_sionna.DEFAULT_STUDENT`` (``"sep-w48-h128"``:
a depthwise-separable encoder of width 48, one hidden layer of 128: 65,882
parameters, 1/51 of the teacher), the one ``make_link()`` builds; ``--student
NAME`` picks another preset (``tosc_sionna.STUDENT_PRESETS``, e.g.
``conv-w32-h256``, the 1/20 student), and ``--width``/``--[no-]separable``/
``--hidden-units`` override a preset's architecture. Training is
``tosc_sionna.make_trainer``'s recipe (the one every benchmark uses).

``--online-teacher DIR`` is the baseline the cache replaces: the same student,
loss and steps, but the teacher (the cache's) runs on freshly augmented views
every epoch (:class:`cache_tools.online.OnlineTeacher`, torch) instead of being
read from the cache, which still gives the rows, labels, split and step count.

``--combine A/results.json B/results.json ...`` trains nothing: it joins runs
that differ only in their training seed (seeds run as separate jobs, on one
machine or several) into the one ``results.json`` that ``--seeds`` would have
written, and refuses runs whose settings differ.

    python examples/kd_awgn.py [--quick] [--epochs E] [--n-symbols N] [--channel awgn]
        [--snr-train LOW HIGH] [--labelled-fraction F [--no-teacher]] [--cache FILE]
        [--online-teacher DIR] [--out DIR] [--seed S | --seeds S ...] [--dataset D]
        [--downsample K] [--student NAME] [--width W] [--[no-]separable]
        [--hidden-units U ...] [--val-fraction V] [--val-seed S] [--val-snrs DB ...]
        [--feature-weight G] [--alpha A] [--temperature T] [--beta B | --deterministic-encoder]
    python examples/kd_awgn.py --combine RESULTS.json ... --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF start-up chatter

import numpy as np  # noqa: E402

import tosc_sionna as ts  # noqa: E402
from tosc_cache.provenance import provenance as run_provenance  # noqa: E402
from tosc_sionna.data import (  # noqa: E402
    CacheError,
    DatasetNotFoundError,
    DataSource,
    LabelPolicy,
    OnlineDistillation,
    TeacherCache,
    TeacherCacheDataset,
    decoded_pixels,
    default_teacher_cache,
    load_dataset,
    split_rows,
)
from tosc_sionna.evaluation import accuracy_vs_snr, format_table, plot_accuracy_vs_snr  # noqa: E402

#: --channel: AWGN, flat block Rayleigh, and OFDM over every model OFDMChannel knows
#: ("ofdm-" + its name: ofdm-rayleigh, ofdm-tdl-a ... ofdm-tdl-e, ofdm-cdl-a ... ofdm-cdl-e)
CHANNELS = {
    "awgn": lambda: ts.AWGNChannel(),
    "rayleigh": lambda: ts.RayleighBlockFadingChannel(csi="ls", num_pilots=4, return_noise=True),
    **{f"ofdm-{model}": (lambda model=model: ts.OFDMChannel(model, return_noise=True))
       for model in ts.CHANNEL_MODELS},
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short run (about a minute): fewer images, epochs and SNRs")
    parser.add_argument("--epochs", type=int, default=None, help="default 30 (quick: 1)")
    parser.add_argument("--n-symbols", type=int, default=16,
                        help="complex channel uses per image")
    parser.add_argument("--snr-train", type=float, nargs=2, default=[-10.0, 20.0],
                        metavar=("LOW", "HIGH"))
    parser.add_argument("--student", choices=list(ts.STUDENT_PRESETS),
                        default=ts.DEFAULT_STUDENT,
                        help=f"the student's architecture (default {ts.DEFAULT_STUDENT}, the "
                             "one make_link() builds)")
    parser.add_argument("--width", type=int, default=None,
                        help="override the preset's filters of the encoder's first convolution")
    parser.add_argument("--separable", action=argparse.BooleanOptionalAction, default=None,
                        help="override the preset: depthwise-separable encoder convolutions "
                             "(--no-separable: plain ones)")
    parser.add_argument("--hidden-units", type=int, nargs="+", default=None, metavar="U",
                        help="override the preset's decoder hidden layers")
    parser.add_argument("--channel", choices=sorted(CHANNELS), default="awgn")
    parser.add_argument("--dataset", default=None,
                        help="where the cache's dataset is (default: the one it names)")
    parser.add_argument("--test-split", default="test", help="split to evaluate on")
    parser.add_argument("--downsample", type=int, default=1,
                        help="average-pool large images by this factor first (e.g. 8 at 224)")
    parser.add_argument("--cache", default=None, help="teacher cache (default: the shipped one)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="kd_awgn_out")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                        help="train one student per seed; results.json then holds the mean "
                        "and standard deviation over seeds and every seed's results")
    parser.add_argument("--combine", nargs="+", default=None, metavar="RESULTS",
                        help="train nothing: join the results.json files of runs that differ "
                             "only in their seed into one, as --seeds would have written it")
    parser.add_argument("--labelled-fraction", type=float, default=1.0,
                        help="fraction of training images whose labels the student sees")
    parser.add_argument("--no-teacher", action="store_true",
                        help="teacher-free baseline: labels only (alpha = 1), trained on the "
                             "labelled images only, with as many steps as a distilled run")
    parser.add_argument("--online-teacher", default=None, metavar="DIR",
                        help="online distillation, the baseline the cache replaces: run this "
                             "teacher (the cache's, e.g. teachers/fashion-mnist-lite0) on "
                             "freshly augmented views every epoch instead of reading its "
                             "outputs from the cache (needs torch and transformers)")
    parser.add_argument("--alpha", type=float, default=None,
                        help="weight of the label term, default 0.5 (few labels: use a small "
                        "one, e.g. 0.05)")
    parser.add_argument("--feature-weight", type=float, default=None, metavar="G",
                        help="also distil the teacher's pooled features (weight G of the "
                             "1 - cos term): needs a cache extracted with --features")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="training images held out for validation (never trained on): a "
                        "count or a fraction < 1; 0 for none (default 5000, or a tenth of a "
                        "split under 50,000). The split is seeded by --val-seed, the same for "
                        "every training seed")
    parser.add_argument("--val-seed", type=int, default=0)
    parser.add_argument("--val-snrs", type=float, nargs="+", default=[0.0, 10.0], metavar="DB",
                        help="SNRs of the validation sweep (default 0 10)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--beta", type=float, default=None,
                        help="weight of the rate term of the stochastic encoder (default 1e-4)")
    parser.add_argument("--deterministic-encoder", action="store_true",
                        help="a deterministic encoder z = mu with no rate term (no --beta); "
                             "validation prefers it at short schedules "
                             "(benchmarks/hyperparameters.py)")
    parser.add_argument("--draws", type=int, default=None, help="channel draws per SNR")
    parser.add_argument("--sample-encoder", action="store_true",
                        help="evaluate the sampling encoder z = mu + sigma * eps (the one the "
                             "information bottleneck describes) instead of z = mu")
    return parser.parse_args(argv)


def evaluation_split(
    data: TeacherCacheDataset, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation split of the cache's dataset, read as the cache's was: uint8 pixels
    (a Hugging Face dataset's decoded once, into a memory map: the sweep reads them ~40
    times and converts one batch at a time to floats) and int32 labels."""
    spec = data.cache.spec
    images, labels, names = load_dataset(spec.dataset if args.dataset is None else args.dataset,
                                         args.test_split, args.data_dir,
                                         **data.cache.read_options)
    if list(names) != list(spec.class_names):
        raise ValueError(f"The {args.test_split} split's classes differ from the cache's.")
    if args.quick:
        images, labels = images[:2000], labels[:2000]
    return decoded_pixels(images), np.asarray(labels).astype(np.int32)


def validation_split(data: TeacherCacheDataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The held-out training images (uint8 pixels, unaugmented, as view 0) and their labels."""
    return data.images[data.index[rows]], data.labels[rows]


def resolve_student(args: argparse.Namespace) -> None:
    """Fill ``--width``/``--separable``/``--hidden-units`` from ``--student``'s preset where
    not given; ``args.student`` becomes the preset that architecture is (None for a custom
    one), so the results name what ran."""
    preset = ts.student_preset(args.student)
    if args.width is None:
        args.width = preset.width
    if args.separable is None:
        args.separable = preset.separable
    if args.hidden_units is None:
        args.hidden_units = list(preset.hidden_units)
    args.student = _preset_name(args.width, args.separable, args.hidden_units)


def _preset_name(width: int, separable: bool, hidden_units: list[int]) -> str | None:
    arch = ts.presets.StudentPreset(int(width), bool(separable), tuple(hidden_units))
    return next((name for name, p in ts.STUDENT_PRESETS.items() if p == arch), None)


def check_args(args: argparse.Namespace) -> str | None:
    """The first bad argument, as a one-line message (None if all are usable)."""
    resolve_student(args)
    low, high = args.snr_train
    checks = [
        (args.epochs is None or args.epochs >= 1, f"--epochs must be >= 1; got {args.epochs}"),
        (args.n_symbols >= 1, f"--n-symbols must be >= 1; got {args.n_symbols}"),
        (args.width >= 1, f"--width must be >= 1; got {args.width}"),
        (min(args.hidden_units) >= 1, f"--hidden-units must be >= 1; got {args.hidden_units}"),
        (np.isfinite([low, high]).all() and low <= high,
         f"--snr-train needs finite LOW <= HIGH; got {low} {high}"),
        (0 < args.labelled_fraction <= 1,
         f"--labelled-fraction must lie in (0, 1]; got {args.labelled_fraction}"),
        (args.alpha is None or 0 <= args.alpha <= 1,
         f"--alpha must lie in [0, 1]; got {args.alpha}"),
        (not (args.no_teacher and args.alpha is not None),
         "--no-teacher trains on labels only (alpha = 1): do not give --alpha with it"),
        (not (args.no_teacher and args.online_teacher),
         "--no-teacher trains without a teacher: do not give --online-teacher with it"),
        (args.online_teacher is None or Path(args.online_teacher).is_dir(),
         f"--online-teacher {args.online_teacher}: no such directory (give a teacher saved "
         "with save_pretrained, the one the cache was extracted with)"),
        (args.feature_weight is None or (args.feature_weight >= 0
                                         and np.isfinite(args.feature_weight)),
         f"--feature-weight must be >= 0; got {args.feature_weight}"),
        (args.feature_weight is None or not (args.no_teacher or args.online_teacher),
         "--feature-weight distils the cached teacher's features: not with --no-teacher or "
         "--online-teacher"),
        (args.temperature > 0 and np.isfinite(args.temperature),
         f"--temperature must be > 0; got {args.temperature}"),
        (args.beta is None or (args.beta >= 0 and np.isfinite(args.beta)),
         f"--beta must be >= 0; got {args.beta}"),
        (not (args.deterministic_encoder and args.beta is not None),
         "--deterministic-encoder has no rate term: do not give --beta with it"),
        (not (args.deterministic_encoder and args.sample_encoder),
         "--deterministic-encoder has no sampling encoder to evaluate: drop --sample-encoder"),
        (args.draws is None or args.draws >= 1, f"--draws must be >= 1; got {args.draws}"),
        (args.downsample >= 1, f"--downsample must be >= 1; got {args.downsample}"),
        (args.seed is None or args.seeds is None, "give --seed or --seeds, not both"),
        (args.combine is None or (args.seed is None and args.seeds is None),
         "--combine joins finished runs: do not give --seed or --seeds with it"),
        (args.seeds is None or len(set(args.seeds)) == len(args.seeds),
         f"--seeds must differ; got {args.seeds}"),
        (args.val_fraction is None or (args.val_fraction >= 0 and np.isfinite(args.val_fraction)),
         f"--val-fraction must be >= 0; got {args.val_fraction}"),
        (np.isfinite(args.val_snrs).all(), f"--val-snrs must be finite; got {args.val_snrs}"),
    ]
    return next((message for ok, message in checks if not ok), None)


def build_link(args: argparse.Namespace, num_classes: int, seed: int | None = None
               ) -> ts.TaskOrientedLink:
    """The student the job trains (``args`` checked by :func:`check_args`)."""
    return ts.make_link(CHANNELS[args.channel](), num_symbols=args.n_symbols,
                        num_classes=num_classes, width=args.width, separable=args.separable,
                        hidden_units=tuple(args.hidden_units),
                        stochastic=not args.deterministic_encoder,
                        snr_train_db=tuple(args.snr_train), seed=seed,
                        downsample=args.downsample)


def train_and_evaluate(args: argparse.Namespace, seed: int, data: TeacherCacheDataset,
                       evaluation: dict[str, Any], teacher: Any) -> tuple[dict, dict]:
    # the architecture is args.width/separable/hidden_units (resolve_student filled them)
    """Train one student (training seed ``seed``) and sweep it: (results, test sweep)."""
    epochs, draws, snrs = evaluation["epochs"], evaluation["draws"], evaluation["snrs"]
    x_test, y_test = evaluation["test"]
    x_val, y_val = evaluation["val"]
    cache = evaluation["cache"]
    steps = min(len(data), 300) if args.quick else len(data)
    spec = data.cache.spec
    ts.set_seed(seed)
    if teacher is not None:
        teacher.seconds, teacher.images = 0.0, 0
    link = build_link(args, spec.num_classes, seed)
    trainer = ts.make_trainer(
        link, steps_per_epoch=steps, epochs=epochs, alpha=args.alpha,
        temperature=args.temperature, beta=args.beta,
        feature_dim=spec.feature_dim if args.feature_weight is not None else 0,
        feature_weight=args.feature_weight or 0.0)
    verbose = 1 if sys.stdout.isatty() else 2
    start = time.time()
    trainer.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=verbose)
    train_seconds = time.time() - start

    validation = None
    if len(y_val):  # the numbers to choose settings on; the test split is for final ones
        validation = accuracy_vs_snr(link, x_val, y_val, args.val_snrs, draws=draws,
                                     sample_encoder=args.sample_encoder)
        print("validation (held-out training images): " + ", ".join(
            f"{a:.4f} at {s:g} dB" for s, a in zip(validation["snr_db"],
                                                  validation["accuracy"], strict=True)))
    sweep = accuracy_vs_snr(link, x_test, y_test, snrs, draws=draws,
                            sample_encoder=args.sample_encoder)
    teacher_accuracy = float(data.cache.attrs.get("teacher_test_accuracy", float("nan")))
    tx = link.encoder.count_params() + link.tx_cam.count_params()
    rx = link.rx_cam.count_params() + link.decoder.count_params()
    print(f"\nstudent over {args.channel}, n = {args.n_symbols} symbols/image, "
          f"{len(y_test)} test images x {draws} channel draws per SNR")
    print(format_table(sweep, reference=teacher_accuracy))
    print(f"student {tx + rx:,} parameters (tx {tx:,}, rx {rx:,}); teacher "
          f"{spec.teacher_params:,}; training {train_seconds:.1f} s")
    if teacher is not None:
        print(f"online teacher: {teacher.seconds:.1f} s of the training time in its forward, "
              f"{teacher.images} images ({1e3 * teacher.seconds / max(teacher.images, 1):.2f} "
              f"ms per image, {teacher.threads} torch threads)")

    results = {
        "snr_db": sweep["snr_db"], "accuracy": sweep["accuracy"],
        "accuracy_std": sweep["accuracy_std"], "accuracy_se": sweep["accuracy_se"],
        "accuracy_ci95": sweep["accuracy_ci95"], "accuracy_draws": sweep["accuracy_draws"],
        "error_bars": sweep["error_bars"], "sample_encoder": sweep["sample_encoder"],
        "draws": draws,
        "test_images": len(y_test), "teacher_accuracy": teacher_accuracy,
        "channel": args.channel, "n_symbols": args.n_symbols,
        "student_params": tx + rx, "student_tx_params": tx, "student_rx_params": rx,
        "teacher_params": int(spec.teacher_params), "train_seconds": train_seconds,
        "epochs": epochs, "steps_per_epoch": steps, "student": args.student,
        "width": args.width,
        "separable": args.separable, "hidden_units": list(args.hidden_units),
        "snr_train_db": args.snr_train,
        "labelled_fraction": args.labelled_fraction, "teacher_free": args.no_teacher,
        "alpha": args.alpha, "feature_weight": args.feature_weight,
        "temperature": args.temperature, "beta": args.beta,
        "stochastic": not args.deterministic_encoder, "seed": seed,
        "quick": args.quick, "cache": str(cache), "dataset": spec.dataset,
        "train_images": len(data.rows), "val_images": int(len(y_val)),
        "val_seed": args.val_seed,
        "validation": None if validation is None else {
            "snr_db": validation["snr_db"], "accuracy": validation["accuracy"],
            "accuracy_ci95": validation["accuracy_ci95"]},
        "input_shape": list(data.input_shape), "downsample": args.downsample,
        # online distillation: the teacher ran during training (None: read from the cache);
        # its images include the first two batches, which Keras reads twice
        "online_teacher": None if teacher is None else str(args.online_teacher),
        "teacher_forward_seconds": None if teacher is None else teacher.seconds,
        "teacher_forward_images": None if teacher is None else teacher.images,
        "teacher_threads": None if teacher is None else teacher.threads,
    }
    return results, sweep


def across_seeds(runs: list[dict]) -> dict:
    """One results dict for several training seeds: the accuracies are the mean over
    seeds, with their standard deviation (ddof=1) and every seed's full results."""
    accuracy = np.array([r["accuracy"] for r in runs])
    summary = {**runs[0], "seed": None, "seeds": [r["seed"] for r in runs],
               "accuracy": accuracy.mean(0).tolist(),
               "accuracy_seed_std": accuracy.std(0, ddof=1).tolist(),
               "train_seconds": float(sum(r["train_seconds"] for r in runs)),
               "per_seed": runs}
    for key in ("teacher_forward_seconds", "teacher_forward_images"):  # online: all seeds
        if runs[0][key] is not None:
            summary[key] = sum(r[key] for r in runs)
    for key in ("accuracy_std", "accuracy_se", "accuracy_ci95", "accuracy_draws", "error_bars"):
        summary.pop(key)  # per draw and per test set: see each seed's entry
    if runs[0]["validation"] is not None:
        val = np.array([r["validation"]["accuracy"] for r in runs])
        summary["validation"] = {"snr_db": runs[0]["validation"]["snr_db"],
                                 "accuracy": val.mean(0).tolist(),
                                 "accuracy_seed_std": val.std(0, ddof=1).tolist()}
    return summary


#: results fields added after a release, as runs written before them had them
ADDED = {"stochastic": True}


def _added(run: dict) -> dict:
    """A run's results with the fields added later filled in as it had them (before
    ``student`` was recorded, the architecture fields say which preset ran)."""
    run = {**ADDED, **run}
    if "student" not in run:
        run["student"] = _preset_name(run["width"], run["separable"], run["hidden_units"])
    return run
#: results fields that may differ between the seeds of one configuration
PER_SEED = {"seed", "train_seconds", "accuracy", "accuracy_std", "accuracy_se",
            "accuracy_ci95", "accuracy_draws", "validation", "teacher_forward_seconds",
            "teacher_forward_images", "teacher_threads", "cache", "provenance"}


def combine(paths: list[str]) -> dict:
    """The results of several runs of one configuration (``results.json`` files of one or
    more seeds each) joined as :func:`across_seeds` would have written them.

    Raises ``ValueError`` if a seed repeats, fewer than two seeds are given, or the runs'
    settings differ (the cache may sit at another path, not under another name).
    """
    runs, sources = [], []
    for path in paths:
        results = json.loads(Path(path).read_text())
        found = results.get("per_seed") or [results] if isinstance(results, dict) else []
        if not found or not all({"accuracy", "seed", "cache"} <= set(r) for r in found):
            raise ValueError(f"{path}: not a results.json written by kd_awgn.py")
        # where each file came from goes to the joined file's "combined_from"
        sources.append({"path": str(path), "provenance": results.get("provenance")})
        runs.extend(_added({k: v for k, v in r.items() if k != "provenance"}) for r in found)
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"--combine needs two or more different seeds; got {seeds}")
    first = runs[0]
    for run in runs[1:]:
        differ = sorted(k for k in set(first) | set(run)
                        if k not in PER_SEED and first.get(k) != run.get(k))
        if Path(first["cache"]).name != Path(run["cache"]).name:
            differ.append("cache")
        if differ:
            raise ValueError(f"seeds {first['seed']} and {run['seed']} are different "
                             f"configurations (these differ: {', '.join(differ)})")
    return {**across_seeds(sorted(runs, key=lambda r: r["seed"])), "combined_from": sources}


def provenance(argv: list[str] | None) -> dict:
    """Commit (the one this run started from), command, versions, machine and date of this
    run, as every benchmark records them."""
    return run_provenance(argv, "examples/kd_awgn.py")


def write_results(results: dict, sweeps: dict, out: Path, argv: list[str] | None = None) -> None:
    """``results.json`` (with the provenance of the command ``argv``) and
    ``accuracy_vs_snr.png`` (one curve per sweep) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "provenance": provenance(argv)}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot_accuracy_vs_snr(sweeps, out / "accuracy_vs_snr.png",
                         reference=results["teacher_accuracy"])
    print(f"wrote {out / 'results.json'} and {out / 'accuracy_vs_snr.png'}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    problem = check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.combine:
        try:
            results = combine(args.combine)
        except (OSError, ValueError, KeyError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        write_results(results, {f"student ({r['channel']}), seed {r['seed']}": r
                                for r in results["per_seed"]}, Path(args.out), argv)
        return 0
    recipe = ts.training  # the recipe's defaults (make_trainer's)
    args.alpha = (1.0 if args.no_teacher else recipe.DEFAULT_ALPHA if args.alpha is None
                  else args.alpha)
    args.beta = (0.0 if args.deterministic_encoder else recipe.DEFAULT_BETA if args.beta is None
                 else args.beta)
    epochs = args.epochs or (1 if args.quick else 30)
    draws = args.draws or (1 if args.quick else 3)
    snrs = [-10.0, 0.0, 10.0, 20.0] if args.quick else list(np.arange(-10.0, 20.01, 2.5))
    try:
        cache = args.cache or default_teacher_cache()
        seeds = args.seeds or [0 if args.seed is None else args.seed]
        ts.set_seed(seeds[0])
        opened = TeacherCache(cache)
        held = (min(5000, opened.num_samples // 10) if args.val_fraction is None
                else args.val_fraction)
        train_rows, val_rows = (split_rows(opened.num_samples, held, args.val_seed)
                                if held else (None, np.zeros(0, np.int64)))
        teacher = None
        if args.online_teacher is not None:  # the teacher side (torch), only when asked for
            from cache_tools.online import OnlineTeacher

            teacher = OnlineTeacher(args.online_teacher, opened)

        def training_data(seed: int) -> TeacherCacheDataset:
            # same rows and split for every seed; its own order, views, labelled subset
            return TeacherCacheDataset(
                opened, DataSource(dataset=args.dataset, data_dir=args.data_dir),
                batch_size=ts.training.DEFAULT_BATCH_SIZE, seed=seed, rows=train_rows,
                labelling=LabelPolicy(args.labelled_fraction, only=args.no_teacher),
                online=None if teacher is None else OnlineDistillation(teacher),
                features=args.feature_weight is not None)

        data = training_data(seeds[0])
        x_test, y_test = evaluation_split(data, args)
        x_val, y_val = validation_split(data, val_rows[:2000] if args.quick else val_rows)
    except (OSError, DatasetNotFoundError, CacheError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    evaluation = {"epochs": epochs, "draws": draws, "snrs": snrs, "test": (x_test, y_test),
                  "val": (x_val, y_val), "cache": cache}
    runs, sweeps = [], {}
    for seed in seeds:
        if seed != seeds[0]:
            data = training_data(seed)
        results, sweeps[f"student ({args.channel}), seed {seed}"] = train_and_evaluate(
            args, seed, data, evaluation, teacher)
        runs.append(results)
    results = runs[0] if len(runs) == 1 else across_seeds(runs)
    if len(runs) == 1:
        sweeps = {f"student ({args.channel})": next(iter(sweeps.values()))}
    write_results(results, sweeps, Path(args.out), argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
