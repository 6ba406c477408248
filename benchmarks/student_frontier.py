"""The accuracy-size frontier of the student, with and without the teacher.

Student sizes from about 1/220 to 1/20 of the shipped teacher's parameters
(3,383,818): the default encoder at widths 32, 16 and 8, and a
depthwise-separable one (``SemanticEncoder(separable=True)``) at widths 48
and 8 with a smaller decoder. Each is trained from the shipped cache (IB
distillation, alpha 0.5, tau 4) and without the teacher (labels only,
alpha 1, the ``--no-teacher`` baseline), over AWGN (n = 16, training SNR
uniform in [-10, 20] dB, stochastic encoder with beta 1e-4, Adam with cosine
decay from 2e-3), with a schedule shorter than kd_awgn's 30 epochs
(``--epochs``, default 5; the same for every point). 5,000 training images
are held out: every choice is made on their accuracy (0 and 10 dB, 2 channel
draws); the test split is evaluated only with ``--test`` (final
configurations). Parameters and multiply-accumulates of each end are counted
analytically (:func:`tosc_sionna.serving.multiply_accumulates`).

Two experiments on what moves the frontier: mode ``feat`` distils the
teacher's pooled features as well (``--feature-cache``: the shipped cache's
rows and views extracted again with ``--features``; ``--feature-weight``
gamma), and ``--cache`` trains from another teacher's cache of the same rows
and views (a stronger teacher, or the shipped one's outputs compressed); the
plot shows the shipped cache's kd and ce runs only.

Runs accumulate in the results file (keyed by student, mode, seed, epochs,
feature weight and storage, teacher and soft-label storage; a save merges with
what other processes wrote),
so seeds and final test runs can be added later without repeating the sweep:

    python -m benchmarks.student_frontier [--epochs 5] [--seeds 0] [--students NAME ...]
        [--modes kd ce feat] [--test] [--quick] [--cache FILE]
        [--feature-cache FILE] [--feature-weight G]

writes ``benchmarks/results/student_frontier.json`` and ``.png``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tosc_sionna as ts  # noqa: E402
from benchmarks import common, harness  # noqa: E402
from tosc_sionna import serving  # noqa: E402
from tosc_sionna.data import (  # noqa: E402
    LabelPolicy,
    TeacherCache,
    TeacherCacheDataset,
    default_teacher_cache,
)

ROOT = Path(__file__).resolve().parents[1]
#: the frontier's name of each point (the results' keys) -> its student preset
STUDENTS = {
    "conv-w32": "conv-w32-h256",
    "conv-w16": "conv-w16-h256",
    "sep-w48-h128": "sep-w48-h128",
    "sep-w36-h128": "sep-w36-h128",
    "conv-w8": "conv-w8-h256",
    "sep-w8-h64": "sep-w8-h64",
}
MODES = {"kd": 0.5, "ce": 1.0, "feat": 0.5}  # alpha of each mode
SNRS = [0.0, 10.0]


#: Soft-label storage of every run recorded before this key existed: float16 logits.
LOGITS = "logits topk=0 rank=0 bits=0"


def soft_labels(cache: TeacherCache) -> str:
    """How ``cache`` stores the teacher's outputs: a compressed cache is another measurement
    (``ce`` runs read none of it, but are keyed by it too: one key for every mode)."""
    spec = cache.spec
    return f"{spec.probs} topk={spec.topk} rank={spec.rank} bits={spec.bits}"


def run_key(run: dict) -> tuple:
    """What makes two runs the same measurement."""
    return (run["mode"], run["seed"], run["epochs"], run.get("feature_weight"),
            run.get("teacher"), run.get("feature_storage"), run.get("soft_labels", LOGITS))


def same_rows_and_views(cache: TeacherCache, reference: TeacherCache,
                        teacher: bool = True) -> str | None:
    """Why ``cache`` does not hold ``reference``'s rows, labels and views (and, with
    ``teacher``, its teacher), or None. Compared directly, not by digests: those changed
    between format versions."""
    a, b = cache.spec, reference.spec
    checks = [("teacher", a.teacher_digest == b.teacher_digest or not teacher),
              ("views", (a.num_views, a.seed, a.augmentation)
               == (b.num_views, b.seed, b.augmentation)),
              ("rows", (a.dataset, a.split, a.num_samples) == (b.dataset, b.split, b.num_samples)
               and np.array_equal(cache.sample_index, reference.sample_index)
               and np.array_equal(cache.labels, reference.labels)
               and np.array_equal(cache.view_seeds, reference.view_seeds))]
    bad = [name for name, ok in checks if not ok]
    return f"these differ: {', '.join(bad)}" if bad else None


def build(name: str, num_classes: int, seed: int) -> ts.TaskOrientedLink:
    return harness.student(ts.AWGNChannel(), num_classes, seed, STUDENTS[name])


def size(name: str, num_classes: int, input_shape: tuple[int, ...]) -> dict:
    link = build(name, num_classes, 0)
    link(np.zeros((1, *input_shape), np.float32), snr_db=10.0)
    tx = link.encoder.count_params() + link.tx_cam.count_params()
    rx = link.rx_cam.count_params() + link.decoder.count_params()
    return {"params": {"transmitter": tx, "receiver": rx, "link": tx + rx},
            "macs": serving.multiply_accumulates(link, input_shape),
            **ts.student_preset(STUDENTS[name]).as_dict(), "preset": STUDENTS[name],
            "hidden_units": list(ts.student_preset(STUDENTS[name]).hidden_units)}


def plot(results: dict, path: Path, epochs: int) -> None:
    with common.figure(path, ncols=2, figsize=(12, 4.6), sharey=True) as (fig, axes):
        draw(results, epochs, fig, axes)


def draw(results: dict, epochs: int, fig, axes) -> None:
    teacher = results["teacher_params"]
    for ax, key, label in ((axes[0], "params", "parameters (transmitter + receiver)"),
                           (axes[1], "macs", "multiply-accumulates per image")):
        for mode, color in (("kd", "C0"), ("ce", "C3")):
            for snr, style in ((10.0, "-o"), (0.0, "--s")):
                pts = []
                for student in results["students"].values():
                    runs = [r for r in student["runs"]
                            if r["mode"] == mode and r["epochs"] == epochs
                            and r.get("teacher", results["teacher"]) == results["teacher"]
                            and r.get("soft_labels", LOGITS) == LOGITS]
                    if runs:
                        acc = np.mean([r["val_accuracy"][SNRS.index(snr)] for r in runs])
                        pts.append((student[key]["link"], acc))
                if pts:
                    pts.sort()
                    ax.plot(*zip(*pts, strict=True), style, color=color,
                            label=f"{'distilled' if mode == 'kd' else 'labels only'}, "
                                  f"{snr:g} dB")
        if key == "params":
            ax.axvline(teacher / 50, color="grey", lw=0.8, ls=":", label="1/50 of the teacher")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (mean over seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Student accuracy-size frontier (AWGN, n = 16, {epochs} epochs; validation)")


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, quick="smoke run: 30 steps, 500 images, to a _quick "
                           "results file", seeds=[0], epochs=5, out=common.RESULTS)
    parser.add_argument("--students", nargs="+", choices=sorted(STUDENTS), default=list(STUDENTS))
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["kd", "ce"])
    parser.add_argument("--cache", default=None, metavar="FILE",
                        help="train from another teacher's cache of the same rows and views "
                             "(default: the shipped Lite0 cache); runs are keyed by teacher "
                             "and by how the cache stores its outputs")
    parser.add_argument("--feature-cache", default=None, metavar="FILE",
                        help="mode feat: the training cache's teacher, rows and views "
                             "extracted again with pooled features (tosc-cache extract ... "
                             "--features)")
    parser.add_argument("--feature-weight", type=float, default=1.0, metavar="G",
                        help="mode feat: weight of the 1 - cos feature term (default 1)")
    parser.add_argument("--test", action="store_true",
                        help="also evaluate the test split (final configurations only)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        print(f"error: --epochs must be >= 1; got {args.epochs}", file=sys.stderr)
        return 2
    if "feat" in args.modes and not args.feature_cache:
        print("error: mode feat needs --feature-cache FILE", file=sys.stderr)
        return 2
    if not (args.feature_weight >= 0 and np.isfinite(args.feature_weight)):
        print(f"error: --feature-weight must be >= 0; got {args.feature_weight}",
              file=sys.stderr)
        return 2
    for given in (args.cache, args.feature_cache):
        if given and not Path(given).is_file():
            print(f"error: {given}: no such cache file", file=sys.stderr)
            return 2

    shipped = TeacherCache(default_teacher_cache())
    cache = TeacherCache(args.cache) if args.cache else shipped
    teacher = cache.spec.teacher_digest[:12]
    feature_cache = None
    if "feat" in args.modes:
        feature_cache = TeacherCache(args.feature_cache)
        problem = same_rows_and_views(feature_cache, cache)
        if problem or feature_cache.spec.features is None:
            print(f"error: {args.feature_cache} must be the training cache's teacher, rows and "
                  f"views with features ({problem or 'it stores no features'})", file=sys.stderr)
            return 2
    problem = args.cache and same_rows_and_views(cache, shipped, teacher=False)
    if problem:
        print(f"error: {args.cache}: {problem}", file=sys.stderr)
        return 2
    split = harness.splits(shipped, test=args.test, limit=500 if args.quick else None)
    train_rows = split["train_rows"]
    steps, draws = split["steps"], 2
    if args.quick:
        steps, draws, args.epochs = 30, 1, 1

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("student_frontier_quick.json" if args.quick else "student_frontier.json")
    shipped_teacher = shipped.spec.teacher_digest[:12]
    results = {
        "benchmark": "student_frontier", "channel": "awgn", "num_symbols": 16,
        "teacher_params": int(shipped.spec.teacher_params),
        "teacher_test_accuracy": float(shipped.attrs.get("teacher_test_accuracy", float("nan"))),
        "snr_db": SNRS, "val_images": len(split["y_val"]), "draws": draws, "students": {},
        **(json.loads(path.read_text()) if path.exists() else {})}
    results["teacher"] = shipped_teacher  # the frontier's teacher; others are experiments
    teachers = results.setdefault("teachers", {})
    for c in {shipped_teacher: shipped, teacher: cache}.values():
        teachers[c.spec.teacher_digest[:12]] = {
            "teacher": c.spec.teacher_id, "params": int(c.spec.teacher_params),
            "test_accuracy": float(c.attrs.get("teacher_test_accuracy", float("nan")))}
    for entry in results["students"].values():  # runs from before other teachers
        for run in entry["runs"]:
            run.setdefault("teacher", shipped_teacher)

    written: set[tuple] = set()  # (student, run key) of the runs this process measured

    def save() -> None:
        def merge(on_disk: dict) -> None:
            for name, entry in on_disk.get("students", {}).items():
                for run in entry["runs"]:
                    run.setdefault("teacher", shipped_teacher)
                mine = results["students"].setdefault(name, {**entry, "runs": []})
                mine["runs"] = common.merge_runs(mine["runs"], entry["runs"], written,
                                                 lambda r, name=name: (name, run_key(r)))
            results["teachers"] = {**on_disk.get("teachers", {}), **results["teachers"]}

        common.save_merged(path, results, merge, common.run_provenance(argv, __name__))

    for name in args.students:
        entry = results["students"].setdefault(name, {"runs": []})
        entry.update(size(name, cache.num_classes, split["input_shape"]))
        entry["fraction_of_teacher"] = entry["params"]["link"] / results["teacher_params"]
        save()
    for seed in args.seeds:
        for name in args.students:
            for mode in args.modes:
                runs = results["students"][name]["runs"]
                weight = args.feature_weight if mode == "feat" else None
                storage = feature_cache.spec.features if mode == "feat" else None
                stored = soft_labels(feature_cache if mode == "feat" else cache)
                done = next((r for r in runs if run_key(r) == (
                    mode, seed, args.epochs, weight, teacher, storage, stored)), None)
                if done is not None and (done.get("test_accuracy") or not args.test):
                    continue
                features = {}
                if mode == "feat":
                    features = {"feature_dim": feature_cache.spec.feature_dim,
                                "feature_weight": weight}
                data = TeacherCacheDataset(feature_cache if mode == "feat" else cache,
                                           seed=seed, rows=train_rows,
                                           labelling=LabelPolicy(only=mode == "ce"),
                                           features=mode == "feat")
                link = build(name, cache.num_classes, seed)
                seconds = harness.fit(link, data, args.epochs, steps, alpha=MODES[mode],
                                      **features)
                val, test_accuracy = harness.evaluate(link, split, SNRS, draws, seed, args.test)
                run = {"mode": mode, "seed": seed, "epochs": args.epochs,
                       "steps_per_epoch": steps, "train_seconds": seconds,
                       "val_accuracy": val, "test_accuracy": test_accuracy,
                       "feature_weight": weight, "teacher": teacher,
                       "feature_storage": storage, "soft_labels": stored}
                if done is not None:
                    runs.remove(done)
                runs.append(run)
                written.add((name, run_key(run)))
                save()
                plot(results, path.with_suffix(".png"), args.epochs)
                print(f"{name:<14} {mode} seed {seed}: val {val}"
                      + (f" test {run['test_accuracy']}" if args.test else "")
                      + f" ({seconds:.0f} s)", flush=True)
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
