"""Fast distillation, measured: cached KD against CE-only and against online KD.

The claim under test: with the teacher's outputs pre-stored, distillation
costs (almost) nothing over training on labels alone, while distilling with
the teacher in the loop pays its forward on every view of every epoch. In one
run, on one machine, the ``conv-w32-h256`` student (the previous default: n = 16, width 32,
stochastic encoder, AWGN, SNR drawn in [-10, 20] dB, IB loss with alpha 0.5,
tau 4, beta 1e-4; 5,000 training images held out for validation) trained by

* ``ce-only``: labels only (alpha = 1, the ``--no-teacher`` baseline);
* ``cached-v1`` / ``cached-v2`` / ``cached-v4``: the shipped cache's teacher
  outputs, reading only its first V stored views per image (view 0 is the
  unaugmented image, so V = 1 means no augmentation);
* ``online``: the shipped teacher (``teachers/fashion-mnist-lite0``, torch)
  run on a freshly augmented view of every image of every epoch
  (:class:`cache_tools.online.OnlineTeacher`), with the cache's rows, order,
  view choice and labels: same student, loss and steps.

**Epoch time**: each variant's own link trained ``--timing-steps`` steps per
round after a warm-up, rounds interleaved (every variant once per round),
best and median per step (from the first to the last batch end of a round:
steps with their data loading, without fit's set-up); an epoch is that times the steps of one epoch.
Ratios are of the best times (this CPU has a slow state in which a step takes
about 1.5x longer: the spread says how much of it a round saw). Also the
reader's time per batch and the teacher's forward per image, measured inside
the online runs.

**Accuracy**: every variant trained ``--epochs`` epochs (default 4, shorter
than kd_awgn's 30: the same for every variant) for each of ``--seeds``;
validation (held-out training images) then test at 0 and 10 dB over AWGN,
2 channel draws; mean +- std over the seeds, per-seed values kept.

**Projection** for a ViT-B/16-size teacher: its forward is *measured* on
this CPU (``transformers`` ViT-B/16 built from its default config, random
weights: the cost does not depend on them) at 224 x 224, and the online
epoch is projected as the cached epoch plus that forward for every training
image. Clearly a projection: no ViT-B/16 student run is made.

The accuracy runs come first and the timing rounds last (on a machine that
the long runs have left quiet). Results are written as they are measured and
accumulate: a rerun into the same file skips the accuracy runs it holds
(``--phases`` picks accuracy and/or timing): ``benchmarks/results/fast_distillation.json``.

    python -m benchmarks.fast_distillation [--epochs 4] [--seeds 0 1 2] [--rounds 5]
        [--timing-steps 60] [--variants ...] [--phases accuracy timing] [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common, harness  # noqa: E402
from tosc_sionna.data import (  # noqa: E402
    LabelPolicy,
    OnlineDistillation,
    TeacherCache,
    TeacherCacheDataset,
    default_teacher_cache,
)

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "teachers" / "fashion-mnist-lite0"
VARIANTS = ("ce-only", "cached-v1", "cached-v2", "cached-v4", "online")
EVAL_SNRS = [0.0, 10.0]


class StepTimes(keras.callbacks.Callback):
    """Seconds per step between the first and the last batch end of a fit: the
    steady steps with their data loading, without fit's set-up and tear-down."""

    def on_train_begin(self, logs=None):
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    @property
    def per_step(self) -> float:
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)


class EpochTimes(keras.callbacks.Callback):
    """Wall time of every epoch of a fit."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def data_source(variant: str, cache: TeacherCache, rows: np.ndarray, seed: int,
                teacher=None) -> TeacherCacheDataset:
    if variant == "ce-only":
        return TeacherCacheDataset(cache, seed=seed, rows=rows, labelling=LabelPolicy(only=True))
    if variant == "online":
        return TeacherCacheDataset(cache, seed=seed, rows=rows,
                                   online=OnlineDistillation(teacher))
    return TeacherCacheDataset(cache, seed=seed, rows=rows, num_views=int(variant[-1]))


def alpha(variant: str) -> float:
    return 1.0 if variant == "ce-only" else 0.5


def timing_link(variant: str, num_classes: int, steps: int) -> ts.DistillationTrainer:
    """A student's trainer compiled once for many short fits (the step cost, not the
    schedule: ``steps`` only sets the length of the cosine decay)."""
    link = harness.student(ts.AWGNChannel(), num_classes, 0, harness.PREVIOUS_STUDENT)
    return ts.make_trainer(link, steps_per_epoch=steps, epochs=1, alpha=alpha(variant))


def reader_ms_per_batch(data: TeacherCacheDataset, batches: int) -> float:
    start = time.perf_counter()
    for i in range(batches):
        data[i]
    return 1e3 * (time.perf_counter() - start) / batches


def vit_b16_forward_ms(threads: int, batch: int = 8, repeats: int = 3) -> dict:
    """Per-image forward of a ViT-B/16 (224 x 224, 1000 classes) built from its config."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(num_labels=1000)).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        model(pixel_values=x[:2])  # warm-up
        t = common.time_interleaved({"vit": lambda: model(pixel_values=x)}, repeats)["vit"]
    params = sum(p.numel() for p in model.parameters())
    return {"best_ms_per_image": 1e3 * t["best"] / batch,
            "median_ms_per_image": 1e3 * t["median"] / batch, "batch": batch,
            "repeats": repeats, "params": int(params), "threads": threads, "image_size": 224}


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(
        __doc__, quick="smoke run: 1 round of 8 steps, 1 seed of 20 steps, 500 images",
        seeds=[0, 1, 2], epochs=4, out=common.RESULTS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timing-steps", type=int, default=60)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--phases", nargs="+", choices=("accuracy", "timing"),
                        default=["accuracy", "timing"],
                        help="accuracy runs (those already in the results file are kept) "
                             "and/or the timing rounds (then the summary)")
    args = parser.parse_args(argv)
    if min(args.epochs, args.rounds) < 1 or args.timing_steps < 2:
        print("error: --epochs and --rounds must be >= 1, --timing-steps >= 2", file=sys.stderr)
        return 2

    from cache_tools.online import OnlineTeacher  # torch: imported only here

    cache = TeacherCache(default_teacher_cache())
    split = harness.splits(cache, limit=500 if args.quick else None)
    train_rows, steps, draws = split["train_rows"], split["steps"], 2
    if args.quick:
        args.rounds, args.timing_steps, args.seeds, args.epochs = 1, 8, args.seeds[:1], 1
        steps, draws = 20, 1
    teacher = OnlineTeacher(TEACHER, cache)
    threads = teacher.threads

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("fast_distillation_quick.json" if args.quick else "fast_distillation.json")
    results: dict = json.loads(path.read_text()) if path.exists() else {
        "benchmark": "fast_distillation", "quick": args.quick, "variants": list(VARIANTS),
        "torch_threads": threads,
        "student": f"{harness.PREVIOUS_STUDENT} (the previous default), AWGN, n=16, "
                   "stochastic, beta=1e-4, SNR [-10, 20] dB",
        "batch_size": 128, "steps_per_epoch": steps, "train_images": len(train_rows),
        "val_images": len(split["y_val"]), "test_images": len(split["y_test"]),
        "teacher": str(TEACHER.relative_to(ROOT)), "teacher_params": int(cache.spec.teacher_params),
        "timing": None, "accuracy": {}, "summary": None,
    }

    written: set[tuple] = set()  # (variant, seed, epochs) of the runs measured here

    def merge(on_disk: dict) -> None:  # keep the accuracy runs other processes wrote
        for v, theirs in on_disk.get("accuracy", {}).items():
            results["accuracy"][v] = common.merge_runs(
                results["accuracy"].get(v, []), theirs, written,
                lambda r, v=v: (v, r["seed"], r["epochs"]))

    def save() -> None:
        common.save_merged(path, results, merge, common.run_provenance(argv, __name__))

    # -------------------------------------------------------------- accuracy
    for seed in args.seeds if "accuracy" in args.phases else []:
        for v in args.variants:
            if any((r["seed"], r["epochs"]) == (seed, args.epochs)
                   for r in results["accuracy"].get(v, [])):
                continue  # measured by an earlier run into this file
            data = data_source(v, cache, train_rows, seed, teacher)
            link = harness.student(ts.AWGNChannel(), cache.num_classes, seed,
                                   harness.PREVIOUS_STUDENT)
            epochs = EpochTimes()
            teacher.seconds, teacher.images = 0.0, 0
            harness.fit(link, data, args.epochs, steps, alpha=alpha(v), callbacks=[epochs])
            val, test = harness.evaluate(link, split, EVAL_SNRS, draws, seed, test=True)
            results["accuracy"].setdefault(v, []).append({
                "seed": seed, "epochs": args.epochs, "epoch_seconds": epochs.seconds,
                "teacher_forward_seconds": teacher.seconds if v == "online" else None,
                "val_accuracy": val, "test_accuracy": test})
            written.add((v, seed, args.epochs))
            save()
            print(f"seed {seed} {v:<10} epochs {[round(s) for s in epochs.seconds]} s  "
                  f"val {val}  test {test}", flush=True)

    # ---------------------------------------------------------------- timing
    if "timing" not in args.phases:
        print(f"wrote {path} (accuracy only)")
        return 0
    links, sources = {}, {}
    for v in args.variants:
        sources[v] = data_source(v, cache, train_rows, 0, teacher)
        links[v] = timing_link(v, cache.num_classes, 5 + args.timing_steps)
        links[v].fit(sources[v], epochs=1, steps_per_epoch=5, verbose=0)  # trace + warm-up
    reader = {v: [] for v in args.variants}

    def round_of(v: str):
        def measure() -> float:  # seconds per step of one round's fit (and the reader's time)
            clock = StepTimes()
            links[v].fit(sources[v], epochs=1, steps_per_epoch=args.timing_steps, verbose=0,
                         callbacks=[clock])
            reader[v].append(reader_ms_per_batch(sources[v], min(10, args.timing_steps)))
            return clock.per_step
        return measure

    teacher.seconds, teacher.images = 0.0, 0
    per_step = common.interleaved({v: round_of(v) for v in args.variants}, args.rounds)
    teacher_ms = 1e3 * teacher.seconds / max(teacher.images, 1)
    timing = {v: {"best_ms_per_step": 1e3 * t["best"], "median_ms_per_step": 1e3 * t["median"],
                  "spread": t["spread"], "ms_per_step_rounds": [1e3 * s for s in t["all"]],
                  "epoch_seconds_best": t["best"] * steps,
                  "reader_ms_per_batch_best": min(reader[v])}
              for v, t in per_step.items()}
    results["timing"] = {"rounds": args.rounds, "steps_per_round": args.timing_steps,
                         "variants": timing,
                         "teacher_forward_ms_per_image": teacher_ms}
    save()
    print(json.dumps(results["timing"], indent=1), flush=True)

    # --------------------------------------------------------------- summary
    def stats(v: str, key: str) -> dict:
        runs = np.array([r[key] for r in results["accuracy"].get(v, [])
                         if r["epochs"] == args.epochs])  # one schedule per summary
        return {f"{snr:g} dB": {"mean": float(runs[:, i].mean()), "std": float(
            runs[:, i].std(ddof=1)) if len(runs) > 1 else None, "seeds": len(runs)}
            for i, snr in enumerate(EVAL_SNRS)} if len(runs) else {}

    best = {v: timing[v]["best_ms_per_step"] for v in args.variants}
    summary: dict = {"accuracy": {v: {"validation": stats(v, "val_accuracy"),
                                      "test": stats(v, "test_accuracy")}
                                  for v in VARIANTS if v in results["accuracy"]}}
    if "ce-only" in best:
        summary["epoch_ratio_cached_over_ce_only"] = {
            v: best[v] / best["ce-only"] for v in args.variants if v.startswith("cached")}
    if "online" in best and "cached-v4" in best:
        summary["epoch_ratio_online_over_cached_v4"] = best["online"] / best["cached-v4"]
        if not args.quick:
            vit = vit_b16_forward_ms(threads)
            cached_epoch = timing["cached-v4"]["epoch_seconds_best"]
            online_epoch = cached_epoch + vit["best_ms_per_image"] * 1e-3 * len(train_rows)
            summary["projection_vit_b16"] = {
                "what": "PROJECTION, not a run: online epoch = measured cached-v4 epoch + the "
                        "measured ViT-B/16 forward per image x training images (this CPU)",
                "vit_b16_forward": vit, "cached_epoch_seconds": cached_epoch,
                "online_epoch_seconds_projected": online_epoch,
                "online_over_cached_projected": online_epoch / cached_epoch}
    results["summary"] = summary
    save()
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
