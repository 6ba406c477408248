"""Per-example latency and size of the student's two ends against the teacher's forward.

The main job's default student (n = 16, depthwise-separable encoder of width 48,
one hidden layer of 128; stochastic encoder sending its mean at inference; the
previous default with ``--width 32 --no-separable --hidden-units 256``) and
the shipped teacher (EfficientNet-Lite0 fine-tuned on Fashion-MNIST), on the
same CPU threads (TensorFlow intra/inter-op, torch and ONNX Runtime set to
``--threads``). Per example, at batch 1 and 256:

* transmitter and receiver called eagerly (a Python walk over Keras layers),
  traced (``tosc_sionna.serving.traced``: one graph call, fixed signature, on
  the TensorFlow line; on the torch line, where Keras runs eagerly, the eager
  ends under ``torch.no_grad``), and exported: on the TensorFlow line
  the SavedModel (``serving.export_link``, reloaded with ``tf.saved_model.load``),
  on the torch line (no SavedModel there) both ends as ONNX models
  (``serving.export_onnx``) run by ONNX Runtime; the whole link (transmitter,
  AWGN, receiver) traced (``tf.function``; on torch, under ``torch.no_grad``);
* the teacher: its torch forward on inputs preprocessed as its processor says
  (model only; the shipped teacher runs at 64 x 64), and its preprocessing
  (resize, normalize) separately.

The result keys are the same on both lines: the exported ends keep the
``*_savedmodel`` keys, and each run says what they were (``exported_ends``)
and which line measured (its provenance's ``line``: Keras' backend, Sionna's
version). Repeats are interleaved (every variant once per round); best, median and
spread per variant. Multiply-accumulates: convolutions and dense layers
(student: analytic from the layers' shapes; teacher: forward hooks on
Conv2d/Linear). Every run is appended to the student's results file,
``benchmarks/results/latency_<student>.json`` (``<student>`` as
``sep-w48-h128``: encoder convolutions, width, hidden units), each run with
its provenance; the sizes and multiply-accumulates are the student's, once.

    python -m benchmarks.latency [--threads 2] [--rounds 15] [--width W] [--[no-]separable]
        [--hidden-units U ...] [--quick] [--out FILE|DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 256)


def teacher_macs(model, pixel_values) -> int:
    import torch

    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, torch.nn.Linear):
            total[0] += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(pixel_values[:1])
    for h in handles:
        h.remove()
    return int(total[0])


def student_name(width: int, separable: bool, hidden_units: list[int]) -> str:
    """``sep-w48-h128``, ``conv-w32-h256``: the name of a student's results file."""
    return (f"{'sep' if separable else 'conv'}-w{width}-h"
            + "-".join(str(u) for u in hidden_units))


def record(path: Path, static: dict, run: dict) -> dict:
    """Append ``run`` to the runs of the results file at ``path`` (under its lock, with the
    runs other processes appended meanwhile), ``static`` (the student's sizes) replacing its
    static part; the file as written."""
    results = {**static, "runs": []}

    def merge(on_disk: dict) -> None:
        results["runs"] = [*on_disk.get("runs", []), run]

    common.save_merged(path, results, merge, record=run["provenance"])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, quick="smoke run: 2 rounds",
                           out=common.RESULTS, out_help="results folder (there "
                           "latency_<student>.json, latency_<student>_quick.json for --quick), "
                           "or a .json results file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--teacher", default=str(ROOT / "teachers" / "fashion-mnist-lite0"))
    parser.add_argument("--student", default=None,
                        help="a preset of tosc_sionna.STUDENT_PRESETS (default: the default "
                             "student); --width, --[no-]separable, --hidden-units override it")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--separable", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--hidden-units", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    batches = BATCHES  # also --quick: the results keep their keys (batch1, batch256)
    rounds = 2 if args.quick else args.rounds

    import tosc_sionna as ts  # before Keras: it picks Keras' backend from the Sionna line
    from benchmarks.common import backend

    if not backend.set_threads(args.threads):  # TensorFlow already ran (main called in-process)
        if not args.quick:
            print("error: TensorFlow's threads were set before this run; run it as "
                  "python -m benchmarks.latency", file=sys.stderr)
            return 2
        print("warning: TensorFlow's threads were set before this smoke run", file=sys.stderr)
    import torch

    try:
        preset = ts.student_preset(args.student or ts.DEFAULT_STUDENT)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.width = preset.width if args.width is None else args.width
    args.separable = preset.separable if args.separable is None else args.separable
    args.hidden_units = list(preset.hidden_units if args.hidden_units is None
                             else args.hidden_units)
    name = student_name(args.width, args.separable, args.hidden_units)
    out = common.results_file(args.out, f"latency_{name}", args.quick)
    from cache_tools.teachers import load_teacher
    from tosc_sionna import serving
    from tosc_sionna.data import load_fashion_mnist

    images, _ = load_fashion_mnist("test")
    ts.set_seed(0)
    link = ts.make_link(ts.AWGNChannel(), num_symbols=16, num_classes=10, stochastic=True,
                        seed=0, width=args.width, separable=args.separable,
                        hidden_units=tuple(args.hidden_units))
    link(images[:2], snr_db=np.full(2, 10.0, np.float32))
    tx, rx = serving.transmitter(link), serving.receiver(link)
    ttx, trx = serving.traced(link, images.shape[1:])
    tlink = backend.inference(lambda x, s: link(x, snr_db=s),
                              input_signature=[((None, *images.shape[1:]), "float32"),
                                               ((None,), "float32")])
    # a scratch directory of this run's own (runs side by side must not share one): the
    # exported ends are loaded into memory
    with tempfile.TemporaryDirectory(prefix="tosc_latency_export_") as export_dir:
        exported = backend.exported_ends(link, export_dir, images.shape[1:], args.threads)

    teacher = load_teacher(args.teacher)
    raw = (images[:256, ..., 0] * 255).astype(np.uint8)
    pixel_values = teacher.preprocess(raw, "cpu")
    model = teacher.model.eval()

    inputs = {}
    for b in batches:
        x = backend.tensor(images[:b])
        snr = backend.tensor(np.full(b, 10.0, np.float32))
        # a plain tensor (on torch the traced end's output is an inference tensor, which the
        # eager receiver, recording autograd, cannot take)
        y = backend.tensor(backend.to_numpy(ttx(x, snr)))
        inputs[b] = (x, snr, y, pixel_values[:b].contiguous(), raw[:b],
                     tuple(map(exported.inputs, (x, snr, y))))

    def teacher_forward(pv):
        with torch.no_grad():
            return model(pv)

    variants = {
        "student_transmitter_eager": lambda b: tx(inputs[b][0], inputs[b][1]),
        "student_receiver_eager": lambda b: rx(inputs[b][2], inputs[b][1]),
        "student_transmitter_traced": lambda b: ttx(inputs[b][0], inputs[b][1]),
        "student_receiver_traced": lambda b: trx(inputs[b][2], inputs[b][1]),
        # the exported ends (SavedModel on TensorFlow, ONNX on torch) under the same keys
        "student_transmitter_savedmodel": lambda b: exported.transmit(inputs[b][5][0],
                                                                      inputs[b][5][1]),
        "student_receiver_savedmodel": lambda b: exported.receive(inputs[b][5][2],
                                                                  inputs[b][5][1]),
        "student_link_traced": lambda b: tlink(inputs[b][0], inputs[b][1]),
        "teacher_forward": lambda b: teacher_forward(inputs[b][3]),
        "teacher_preprocessing": lambda b: teacher.preprocess(inputs[b][4], "cpu"),
    }
    # every (variant, batch) once per round; at batch 1, 20 calls a measurement
    candidates = {(name, b): (lambda fn=fn, b=b: backend.to_numpy(fn(b)))
                  for b in batches for name, fn in variants.items()}
    seconds = common.time_interleaved(candidates, rounds, warmup=1,  # warm-up: tracing
                                      calls={key: 20 if key[1] == 1 else 1 for key in candidates})
    per_example = {name: {str(b): {"best_ms": 1e3 * seconds[name, b]["best"] / b,
                                   "median_ms": 1e3 * seconds[name, b]["median"] / b,
                                   "spread": seconds[name, b]["spread"]}
                          for b in batches} for name in variants}
    macs = serving.multiply_accumulates(link, images.shape[1:])
    t_macs = teacher_macs(model, pixel_values)
    params = {"transmitter": int(link.encoder.count_params() + link.tx_cam.count_params()),
              "receiver": int(link.rx_cam.count_params() + link.decoder.count_params()),
              "teacher": int(sum(p.numel() for p in model.parameters()))}
    ratios = {}
    for b in map(str, batches):
        teacher_ms = per_example["teacher_forward"][b]["best_ms"]
        for end in ("traced", "savedmodel"):
            both = (per_example[f"student_transmitter_{end}"][b]["best_ms"]
                    + per_example[f"student_receiver_{end}"][b]["best_ms"])
            ratios[f"teacher_over_student_{end}_batch{b}"] = teacher_ms / both
        both = (per_example["student_transmitter_eager"][b]["best_ms"]
                + per_example["student_receiver_eager"][b]["best_ms"])
        ratios[f"teacher_over_student_eager_batch{b}"] = teacher_ms / both
    small, large = batches
    static = {
        "student": {"name": name, "width": args.width, "separable": args.separable,
                    "hidden_units": list(args.hidden_units)},
        "teacher_input_shape": list(pixel_values.shape[1:]),
        "macs_per_example": {**macs, "teacher": t_macs,
                             "teacher_over_link": t_macs / macs["link"]},
        "params": params,
    }
    run = {
        "provenance": common.run_provenance(argv, __name__),
        "threads": args.threads, "rounds": rounds, "quick": args.quick,
        "exported_ends": exported.what,
        "per_example_latency": per_example,
        "ratios_best": ratios,
        "targets": {
            "macs_link_20x_fewer": t_macs / macs["link"] >= 20,
            f"latency_10x_at_batch{large}_traced":
                ratios[f"teacher_over_student_traced_batch{large}"] >= 10,
            f"latency_3x_at_batch{small}_traced":
                ratios[f"teacher_over_student_traced_batch{small}"] >= 3,
        },
    }
    results = record(out, static, run)
    for variant, by_batch in per_example.items():
        print(f"{variant:34s} " + "  ".join(
            f"b={b}: {s['best_ms']:.4f} ms (median {s['median_ms']:.4f})"
            for b, s in by_batch.items()))
    print(json.dumps({"macs": static["macs_per_example"], "ratios": ratios,
                      "targets": run["targets"]}, indent=2))
    print(f"wrote {out} ({len(results['runs'])} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
