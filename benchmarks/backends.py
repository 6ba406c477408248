"""Speed on both Sionna lines: the default student's training step and serving latency,
TensorFlow (Sionna 1.2) against torch (Sionna 2.x), side by side.

Keras' backend is fixed per process, so this benchmark runs a worker
(``python -m benchmarks.backends --worker ...``) under each line's
interpreter, interleaved: TensorFlow, torch, TensorFlow, torch, ... one
worker process per line and round, so a slow phase of a shared machine hits
both lines alike. A line's number is the best of its rounds, with the spread
(slowest / best) and every round's value.

Each worker, on ``--threads`` CPU threads (TensorFlow's intra- and inter-op
pools, torch's pool), for the default student (``tosc_sionna.make_link``)
and its training recipe (``tosc_sionna.make_trainer``), over AWGN and over
OFDM TDL-A (``tosc_sionna.OFDMChannel("tdl-a")``, as in the step; the main
job's ``--channel ofdm-tdl-a`` also asks it for the effective noise):

* the training step at batch 128, fed random images and the cache-free dict
  targets ``{"label", "labelled", "teacher"}`` (``fit``; the time between the
  ends of the warm-up steps and of the last of ``--steps`` further steps, per
  step), and the first step (on TensorFlow it traces the step);
* two timed epochs on the main job's data (``examples/kd_awgn.py``'s
  defaults: the shipped Fashion-MNIST teacher cache read by
  ``TeacherCacheDataset``, its 55,000 training rows, 430 steps of batch 128,
  ``fit``): the first epoch (on TensorFlow it traces the step) and the
  second, steady one, each from the start to the end of the epoch, data
  loading included (``first_epoch_ms``, ``epoch_ms``; ``--epoch-steps``
  shortens them). Keras reads a ``PyDataset`` differently on the two lines:
  on TensorFlow through ``tf.data`` with prefetching, on threads of its own
  that ``--threads`` does not bound (reading overlaps the step, and the
  epoch varies more on a small machine); on torch in the training loop,
  between steps;
* the encoder alone (forward in training mode and its weights' gradient, a
  ``tf.function`` on TensorFlow, eager on torch) at batch 128: the
  convolution stack, whose kernels differ between the lines, without the
  trainer, the channel or the decoder (``encoder_ms_per_step``);
* the traced transmitter and receiver (``tosc_sionna.serving.traced``: a
  ``tf.function`` on TensorFlow, the eager ends under
  ``torch.no_grad`` on torch) of the AWGN link, per call at batch 1
  and 256 (the ends hold no channel: the OFDM link's are the same layers).

The results also give an epoch estimate per line: the training step times the
430 steps of a 55,000-image epoch at batch 128 (no data loading, no tracing),
beside the timed epochs. ``torch_over_tensorflow`` is the ratio of the two
lines' best per measurement (above 1: torch is slower).
Writes ``benchmarks/results/backends.json`` (``--quick``: 2 rounds of 3
steps and epochs of 3 steps, ``backends_quick.json``) with both lines'
versions and provenance.

On a machine that other jobs share, ``--threads`` equal to its cores
oversubscribes torch's OpenMP pool (an op waits on a descheduled thread:
10x slower steps were seen on 2 busy cores), far more than TensorFlow's;
there compare the lines at ``--threads 1`` too
(``benchmarks/results/backends_threads1.json``), or set ``OMP_WAIT_POLICY=PASSIVE``.
The workers inherit the environment, and each line's record holds the two
process-wide settings of the torch line: OpenMP's wait policy
(``OMP_WAIT_POLICY=PASSIVE python -m benchmarks.backends`` wrote
``backends_omp_passive.json``) and whether ``tosc_sionna`` tuned glibc's
allocator (``TOSC_SIONNA_TUNE_MALLOC=0 python -m benchmarks.backends`` wrote
``backends_malloc_default.json``).

    python -m benchmarks.backends [--python-tensorflow PATH] [--python-torch PATH]
        [--rounds 3] [--steps 20] [--epoch-steps 430] [--threads 2] [--quick]
        [--out FILE|DIR]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import common

ROOT = Path(__file__).resolve().parents[1]
#: the two lines, in the order a round runs them
LINES = ("tensorflow", "torch")
#: each line's interpreter by default (CI's environments), relative to the repository root
DEFAULT_PYTHON = {"tensorflow": ".venv-test-tf/bin/python", "torch": ".venv-test/bin/python"}
FLAGS = {"tensorflow": "--python-tensorflow", "torch": "--python-torch"}
CHANNELS = ("awgn", "ofdm-tdl-a")
BATCH = 128
LATENCY_BATCHES = (1, 256)
#: the epoch of the estimate: Fashion-MNIST's 60,000 training images less 5,000 held out
EPOCH_IMAGES = 55_000
EPOCH_STEPS = math.ceil(EPOCH_IMAGES / BATCH)
#: the rows the main job holds out for validation (``examples/kd_awgn.py``'s default)
HELD_OUT_ROWS, SPLIT_SEED = 5000, 0
#: the line of a worker's stdout that holds its record (JSON after the prefix)
RESULT_PREFIX = "BACKENDS-WORKER-RESULT "
WORKER_TIMEOUT_S = 1800


def measurement_keys() -> list[str]:
    """The measurements of a round, in order: ``train_ms_per_step/<channel>``,
    ``train_first_step_ms/<channel>``, ``epoch_ms/<channel>``, ``first_epoch_ms/<channel>``,
    ``encoder_ms_per_step``, ``{transmitter,receiver}_traced_ms/batch<b>``."""
    return ([f"{what}/{c}" for c in CHANNELS
             for what in ("train_ms_per_step", "train_first_step_ms")]
            + [f"{what}/{c}" for c in CHANNELS for what in ("epoch_ms", "first_epoch_ms")]
            + ["encoder_ms_per_step"]
            + [f"{end}_traced_ms/batch{b}" for b in LATENCY_BATCHES
               for end in ("transmitter", "receiver")])


class BenchmarkError(RuntimeError):
    """What stops the benchmark, in one line."""


class MissingInterpreter(BenchmarkError):
    """A line's Python is not there (exit status 2: the command is wrong, not the run)."""


# --- the worker: one line, one round, in its own process --------------------------------------

def make_channel(name: str):
    import tosc_sionna as ts

    if name == "awgn":
        return ts.AWGNChannel()
    if name == "ofdm-tdl-a":
        return ts.OFDMChannel("tdl-a")
    raise ValueError(f"unknown channel {name!r}")


def random_data(n: int, seed: int = 0, classes: int = 10):
    """``n`` random images and the trainer's cache-free dict targets."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.int32)
    targets = {"label": labels, "labelled": np.ones(n, np.float32),
               "teacher": rng.dirichlet(np.ones(classes), n).astype(np.float32)}
    return rng.uniform(size=(n, 28, 28, 1)).astype(np.float32), targets


def time_training(channel: str, warmup: int, steps: int):
    """``(link, ms per steady step, ms of the first step)`` of the default student trained
    over ``channel`` with the recipe, at batch :data:`BATCH`."""
    import keras

    import tosc_sionna as ts

    ts.set_seed(0)
    link = ts.make_link(make_channel(channel), seed=0)
    trainer = ts.make_trainer(link, steps_per_epoch=EPOCH_STEPS, epochs=1)
    x, y = random_data((warmup + steps) * BATCH)
    ends: list[float] = []
    clock = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: ends.append(time.perf_counter()),
        on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    trainer.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    if len(ends) != warmup + steps + 1:
        raise BenchmarkError(f"expected {warmup + steps} steps, timed {len(ends) - 1}")
    return link, 1e3 * (ends[-1] - ends[warmup]) / steps, 1e3 * (ends[1] - ends[0])


def time_epochs(channel: str, steps: int | None) -> tuple[float, float]:
    """``(ms of the first epoch, ms of the second)`` of the default student's training over
    ``channel`` (:func:`make_channel`) on the main job's data: the shipped teacher cache
    and Fashion-MNIST read by ``TeacherCacheDataset`` (its training rows, batch
    :data:`BATCH`), the recipe, ``fit``; each epoch from its start to its end, data loading
    included. ``steps``: steps per epoch (None: the whole epoch, :data:`EPOCH_STEPS`)."""
    import keras

    import tosc_sionna as ts
    from tosc_sionna.data import (
        TeacherCache,
        TeacherCacheDataset,
        default_teacher_cache,
        split_rows,
    )

    ts.set_seed(0)
    cache = TeacherCache(default_teacher_cache())
    rows, _ = split_rows(cache.num_samples, HELD_OUT_ROWS, SPLIT_SEED)
    data = TeacherCacheDataset(cache, batch_size=BATCH, seed=0, rows=rows)
    steps = len(data) if steps is None else steps
    if not 1 <= steps <= len(data):
        raise BenchmarkError(f"an epoch has 1 to {len(data)} steps; asked for {steps}")
    link = ts.make_link(make_channel(channel), seed=0)
    trainer = ts.make_trainer(link, steps_per_epoch=steps, epochs=2)
    begins: list[float] = []
    ends: list[float] = []
    clock = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: begins.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()))
    trainer.fit(data, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    if len(begins) != 2 or len(ends) != 2:
        raise BenchmarkError(f"expected 2 epochs, timed {len(ends)}")
    return 1e3 * (ends[0] - begins[0]), 1e3 * (ends[1] - begins[1])


def time_encoder(link, repeats: int, calls: int) -> float:
    """Best ms of the default student's encoder alone, forward (training mode) and the
    gradient of its weights, at batch :data:`BATCH`: the convolution stack, where the
    kernels of the two lines differ, without Keras' trainer, the channel or the decoder."""
    from keras import ops

    from benchmarks.common import backend

    images = backend.tensor(random_data(BATCH, seed=2)[0])

    def loss():
        _, mu, log_var = link.encode(images, training=True, sample=False)
        value = ops.mean(ops.square(mu))
        return value if log_var is None else value + ops.mean(ops.square(log_var))

    step = backend.weights_gradient_step(loss, link.encoder.trainable_weights)
    seconds = common.time_interleaved({"encoder": step}, repeats, warmup=1, calls=calls)
    return 1e3 * seconds["encoder"]["best"]


def time_latency(link, repeats: int, calls: Mapping[int, int]) -> dict[str, float]:
    """Best ms per call of the traced transmitter and receiver at each batch size."""
    import numpy as np

    from benchmarks.common import backend
    from tosc_sionna import serving

    images, _ = random_data(max(LATENCY_BATCHES), seed=1)
    ttx, trx = serving.traced(link, images.shape[1:])
    candidates = {}
    for b in LATENCY_BATCHES:
        x = backend.tensor(images[:b])
        snr = backend.tensor(np.full(b, 10.0, np.float32))
        y = backend.tensor(backend.to_numpy(ttx(x, snr)))
        candidates[f"transmitter_traced_ms/batch{b}"] = (
            lambda x=x, snr=snr: backend.to_numpy(ttx(x, snr)))
        candidates[f"receiver_traced_ms/batch{b}"] = (
            lambda y=y, snr=snr: backend.to_numpy(trx(y, snr)))
    seconds = common.time_interleaved(
        candidates, repeats, warmup=1,
        calls={key: calls[int(key.rpartition("batch")[2])] for key in candidates})
    return {key: 1e3 * s["best"] for key, s in seconds.items()}


def worker(warmup: int, steps: int, threads: int, latency_repeats: int,
           latency_calls: Mapping[int, int], epoch_steps: int | None = None) -> dict[str, Any]:
    """One round on this process' line: its record (:func:`parse_worker_output` reads it)."""
    from benchmarks.common import backend

    backend.set_threads(threads)
    start = time.perf_counter()
    measurements: dict[str, float] = {}
    links = {}
    for channel in CHANNELS:
        links[channel], per_step, first = time_training(channel, warmup, steps)
        measurements[f"train_ms_per_step/{channel}"] = per_step
        measurements[f"train_first_step_ms/{channel}"] = first
        first_epoch, epoch = time_epochs(channel, epoch_steps)
        measurements[f"first_epoch_ms/{channel}"] = first_epoch
        measurements[f"epoch_ms/{channel}"] = epoch
    measurements["encoder_ms_per_step"] = time_encoder(links["awgn"], latency_repeats,
                                                       max(1, steps // 2))
    measurements.update(time_latency(links["awgn"], latency_repeats, latency_calls))
    measurements = {k: measurements[k] for k in measurement_keys()}
    return {"line": backend.line(), "python": sys.version.split()[0],
            "executable": sys.executable, "threads": threads,
            "worker_s": time.perf_counter() - start, "measurements": measurements}


def parse_worker_output(stdout: str) -> dict[str, Any]:
    """The record a worker printed: the JSON after :data:`RESULT_PREFIX` on its last such
    line. Raises :class:`BenchmarkError` where there is none (or it is not a record)."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise BenchmarkError("the worker printed no result line")
    try:
        record = json.loads(lines[-1][len(RESULT_PREFIX):])
    except json.JSONDecodeError as err:
        raise BenchmarkError(f"the worker's result line is not JSON: {err}") from err
    if not isinstance(record, dict) or not isinstance(record.get("measurements"), dict) \
            or not isinstance(record.get("line"), dict):
        raise BenchmarkError("the worker's result has no measurements or line")
    return record


# --- the parent: interleaved rounds, one worker process per line and round ---------------------

def interpreters(given: Mapping[str, str | None], root: Path = ROOT) -> dict[str, Path]:
    """Each line's interpreter: the one given, else :data:`DEFAULT_PYTHON` under ``root``.
    Raises :class:`BenchmarkError` (one line naming the flags) where one does not exist."""
    found, missing = {}, []
    for line in LINES:
        path = Path(given.get(line) or root / DEFAULT_PYTHON[line])
        if path.is_file():
            found[line] = path
        else:
            how = "given" if given.get(line) else "default"
            missing.append(f"{FLAGS[line]} PATH ({how} {path}: missing)")
    if missing:
        raise MissingInterpreter("benchmarks.backends runs both Sionna lines and needs each line's "
                             "Python: " + "; ".join(missing))
    return found


def worker_command(python: Path, args: Any) -> list[str]:
    calls = [str(args.latency_calls[b]) for b in LATENCY_BATCHES]
    return [str(python), "-m", "benchmarks.backends", "--worker", "--warmup", str(args.warmup),
            "--steps", str(args.steps), "--threads", str(args.threads),
            "--latency-repeats", str(args.latency_repeats), "--latency-calls", *calls,
            *([] if args.epoch_steps is None else ["--epoch-steps", str(args.epoch_steps)])]


def run_worker(line: str, python: Path, args: Any) -> dict[str, Any]:
    """One round of ``line``: the worker's record. Raises :class:`BenchmarkError` where the
    worker fails or runs another line."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}  # each line picks its own
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        done = subprocess.run(worker_command(python, args), cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise BenchmarkError(f"the {line} worker ({python}) ran over {WORKER_TIMEOUT_S} s") \
            from err
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-15:]
        print("\n".join(tail), file=sys.stderr)
        raise BenchmarkError(f"the {line} worker ({python}) exited with {done.returncode}: "
                             f"{tail[-1] if tail else 'no output'}")
    record = parse_worker_output(done.stdout)
    ran = record["line"].get("keras_backend")
    if ran != line:
        raise BenchmarkError(f"{FLAGS[line]} {python} runs the {ran} line, not the {line} line")
    return record


def summarize(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Per line, over its rounds (``records[line]``: the workers' records): best, median,
    spread and every value of each measurement; the torch / TensorFlow ratio of the bests;
    the epoch estimate; each line's versions."""
    out: dict[str, Any] = {"lines": {}, "best_ms": {}, "median_ms": {}, "spread": {},
                           "all_ms": {}, "epoch_s_estimate": {}}
    for line in LINES:
        rounds = records[line]
        if not rounds:
            raise BenchmarkError(f"no round of the {line} line")
        keys = list(rounds[0]["measurements"])
        values = {k: [float(r["measurements"][k]) for r in rounds] for k in keys}
        stats = {k: common.stats(v) for k, v in values.items()}
        first = rounds[0]
        out["lines"][line] = {**first["line"], "python": first["python"],
                              "executable": first["executable"], "threads": first["threads"],
                              "rounds": len(rounds),
                              "worker_s": [float(r["worker_s"]) for r in rounds]}
        out["best_ms"][line] = {k: s["best"] for k, s in stats.items()}
        out["median_ms"][line] = {k: s["median"] for k, s in stats.items()}
        out["spread"][line] = {k: s["spread"] for k, s in stats.items()}
        out["all_ms"][line] = {k: s["all"] for k, s in stats.items()}
        out["epoch_s_estimate"][line] = {
            k.partition("/")[2]: 1e-3 * best * EPOCH_STEPS
            for k, best in out["best_ms"][line].items() if k.startswith("train_ms_per_step/")}
    tf_best, torch_best = out["best_ms"]["tensorflow"], out["best_ms"]["torch"]
    out["torch_over_tensorflow"] = {k: torch_best[k] / tf_best[k] if tf_best[k] > 0 else None
                                    for k in tf_best if k in torch_best}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, quick="smoke run: 2 rounds of 2 warm-up and 3 timed steps, "
                           "epochs of 3 steps, 2 latency repeats", out=common.RESULTS,
                           out_help="results folder (there backends.json, backends_quick.json "
                                    "for --quick), or a .json results file")
    parser.add_argument("--python-tensorflow", default=None, metavar="PATH",
                        help=f"the TensorFlow line's Python (default "
                             f"{DEFAULT_PYTHON['tensorflow']} in the repository)")
    parser.add_argument("--python-torch", default=None, metavar="PATH",
                        help=f"the torch line's Python (default {DEFAULT_PYTHON['torch']} in "
                             "the repository)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds, one worker process per line each (default 3)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    parser.add_argument("--epoch-steps", type=int, default=None, metavar="N",
                        help=f"steps of each timed epoch (default: the whole epoch, "
                             f"{EPOCH_STEPS} steps)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="training steps before the timed ones (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--latency-repeats", type=int, default=5,
                        help="interleaved latency repeats in a worker (default 5)")
    parser.add_argument("--latency-calls", type=int, nargs=2, default=[20, 2], metavar=("B1",
                        "B256"), help="calls a latency measurement at batch 1 and 256 "
                                      "(default 20 2)")
    parser.add_argument("--note", default="", help="a caveat kept in the results (e.g. "
                                                   "'other jobs were running')")
    parser.add_argument("--worker", action="store_true",
                        help="(internal) run one round on this interpreter's line and print "
                             "its record")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.steps, args.epoch_steps = 2, 2, 3, 3
        args.latency_repeats, args.latency_calls = 2, [5, 1]
    args.latency_calls = dict(zip(LATENCY_BATCHES, args.latency_calls, strict=True))
    for flag in ("rounds", "warmup", "steps", "threads", "latency_repeats", "epoch_steps"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            print(f"error: --{flag.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if args.epoch_steps is not None and args.epoch_steps > EPOCH_STEPS:
        print(f"error: --epoch-steps must be <= {EPOCH_STEPS} (an epoch's steps)",
              file=sys.stderr)
        return 2
    if args.worker:
        record = worker(args.warmup, args.steps, args.threads, args.latency_repeats,
                        args.latency_calls, args.epoch_steps)
        print(RESULT_PREFIX + json.dumps(record), flush=True)
        return 0
    try:
        pythons = interpreters({"tensorflow": args.python_tensorflow,
                                "torch": args.python_torch})
        records: dict[str, list[dict]] = {line: [] for line in LINES}
        for r in range(args.rounds):
            for line in LINES:
                start = time.perf_counter()
                record = run_worker(line, pythons[line], args)
                records[line].append(record)
                m = {k: record["measurements"].get(k, math.nan) for k in measurement_keys()}
                print(f"round {r + 1}/{args.rounds} {line:10s} train ms/step: " + ", ".join(
                    f"{c} {m[f'train_ms_per_step/{c}']:.1f}" for c in CHANNELS)
                    + " | epoch s: " + ", ".join(
                    f"{c} {1e-3 * m[f'epoch_ms/{c}']:.1f}" for c in CHANNELS)
                    + f" | traced tx/rx ms at batch 1: {m['transmitter_traced_ms/batch1']:.2f}"
                    f"/{m['receiver_traced_ms/batch1']:.2f} "
                    f"({time.perf_counter() - start:.0f} s)", flush=True)
        summary = summarize(records)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, MissingInterpreter) else 1
    results = {
        "what": "default student: training step at batch 128 (fit, recipe of make_trainer, "
                "random images and dict targets) over AWGN and OFDM TDL-A, the first and the "
                "second timed epoch of the main job's training from the shipped cache, the "
                "encoder alone "
                "(forward and its weights' gradient), and the traced transmitter / receiver "
                "per call at batch 1 and 256, on each Sionna line",
        "student": "default (tosc_sionna.DEFAULT_STUDENT via make_link)",
        "channels": list(CHANNELS), "batch": BATCH, "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "epoch_steps": EPOCH_STEPS if args.epoch_steps is None else args.epoch_steps,
        "latency_batches": list(LATENCY_BATCHES),
        "latency_repeats": args.latency_repeats,
        "latency_calls": {str(b): n for b, n in args.latency_calls.items()},
        "latency_link": "awgn (the ends hold no channel)",
        "rounds": args.rounds, "order": "interleaved: " + ", ".join(LINES) + " in each round",
        "threads": args.threads, "quick": args.quick,
        "epoch_estimate": f"best train ms/step x {EPOCH_STEPS} steps ({EPOCH_IMAGES:,} images "
                          f"at batch {BATCH}); no data loading or tracing (the timed epochs are "
                          "epoch_ms and first_epoch_ms)",
        "ratio": "torch_over_tensorflow: torch best / TensorFlow best (above 1: torch slower)",
        "note": args.note,
        **summary,
    }
    line = {name: {"keras_backend": info["keras_backend"], "sionna": info["sionna"]}
            for name, info in summary["lines"].items()}
    out = common.write_results(common.results_file(args.out, "backends", args.quick), results,
                               argv, __name__, line=line)
    for key, ratio in summary["torch_over_tensorflow"].items():
        print(f"{key:32s} tensorflow {summary['best_ms']['tensorflow'][key]:9.3f} ms  "
              f"torch {summary['best_ms']['torch'][key]:9.3f} ms  torch/tf {ratio:.2f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
