"""Extraction throughput: ``tosc-cache extract`` vs a bare torch forward loop, in one run.

Both run the same model on the same inputs (N Fashion-MNIST images x V views)
with the same batch size on the same device. The bare loop gets its inputs
already augmented and preprocessed, so it times the model alone; the tool is
timed end to end (dataset, teacher and weight-digest loading, augmentation,
preprocessing, forward, compression, resumable shard writes and the final HDF5
file with digests). Target: the tool costs at most 10% over the bare loop.
Writes ``benchmarks/results/extraction_throughput.json`` (``--quick``: 16 images x 1
view of 32 pixels, one repeat, ``extraction_throughput_quick.json``).

The teacher is a ResNet-50-sized image classifier built from its config
(random weights: the cost does not depend on the values).

    python -m benchmarks.extraction_throughput [--limit N] [--views V] [--image-size PX] \\
        [--quick] [--out FILE]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from benchmarks import common
from cache_tools.extract import ExtractionOptions, extract
from cache_tools.teachers import load_teacher
from tosc_cache.augment import DEFAULT_AUGMENTATION, augment_batch, view_seeds
from tosc_cache.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist


def make_teacher(path: Path, image_size: int) -> None:
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    labels = dict(enumerate(FASHION_MNIST_CLASSES))
    config = transformers.ResNetConfig(  # ResNet-50 layout, 10 classes
        num_labels=10, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    transformers.ResNetForImageClassification(config).save_pretrained(path)
    processor = transformers.ViTImageProcessor(size={"height": image_size, "width": image_size})
    processor.save_pretrained(path)


def bare_loop(model_dir: Path, images: np.ndarray, views: int, batch_size: int) -> float:
    teacher = load_teacher(model_dir, class_names=list(FASHION_MNIST_CLASSES))
    seeds = view_seeds(0, np.arange(len(images)), views)
    rows = max(1, batch_size // views)
    batches = []
    for start in range(0, len(images), rows):
        stop = min(start + rows, len(images))
        views_uint8 = np.concatenate([
            augment_batch(images[start:stop], seeds[start:stop, v], DEFAULT_AUGMENTATION)
            for v in range(views)
        ])
        batches.append(teacher.preprocess(views_uint8))  # channels-last, like the tool's
    model = teacher.model
    begin = time.perf_counter()
    with torch.inference_mode():
        for pixels in batches:
            model(pixel_values=pixels).logits.float().cpu().numpy()
    return time.perf_counter() - begin


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="smoke run: 16 images x 1 view of 32 pixels, "
                           "1 repeat", out=common.RESULTS,
                           out_help="results folder, or a .json results file")
    parser.add_argument("--limit", type=int, default=512)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.views, args.batch_size, args.image_size, args.repeats = 16, 1, 16, 32, 1
    out = common.results_file(args.out, "extraction_throughput", args.quick)
    torch.set_num_threads(os.cpu_count() or 1)
    images, _ = load_fashion_mnist("train")
    images = images[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "teacher"
        make_teacher(model_dir, args.image_size)
        repeats = iter(range(args.repeats))

        def bare() -> float:  # the model alone (bare_loop times itself)
            return bare_loop(model_dir, images, args.views, args.batch_size)

        def tool() -> float:  # end to end
            begin = time.perf_counter()
            extract(ExtractionOptions(model_dir, Path(tmp) / f"cache{next(repeats)}.h5",
                                      limit=args.limit, views=args.views,
                                      batch_size=args.batch_size, features="float16"))
            return time.perf_counter() - begin

        # interleaved, so drift hits both alike
        seconds = common.interleaved({"bare": bare, "tool": tool}, args.repeats)
    images_done = args.limit * args.views
    bare_s, tool_s = seconds["bare"]["best"], seconds["tool"]["best"]
    result = {
        "device": "cpu", "torch_threads": torch.get_num_threads(),
        "teacher": "ResNet-50 layout (transformers ResNetConfig defaults), 10 classes",
        "image_size": args.image_size, "samples": args.limit, "views": args.views,
        "batch_size": args.batch_size,
        "bare_loop_s": bare_s, "tool_s": tool_s,
        "bare_loop_s_all": seconds["bare"]["all"], "tool_s_all": seconds["tool"]["all"],
        "bare_images_per_s": images_done / bare_s, "tool_images_per_s": images_done / tool_s,
        "tool_overhead": tool_s / bare_s - 1.0,
        "target_overhead": 0.10,
    }
    print(f"bare {result['bare_images_per_s']:.1f} img/s, tool {result['tool_images_per_s']:.1f} "
          f"img/s, overhead {100 * result['tool_overhead']:.1f}% (target <= 10%)")
    common.write_results(out, result, argv, __name__)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
