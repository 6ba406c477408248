"""The augmented views of a batch: image by image (``tosc_cache.augment.augment``, a generator
and an ``np.pad`` per image: what ``augment_batch`` did before) against the batch path
(``augment_batch``: the draws replayed for all seeds at once, one padded batch sliced per
view).

Both arms give the same views (checked bit-identical); the per-image arm is the reference the
batch path replaced in the reader (``TeacherCacheDataset``) and the extractor. Per image size:
a batch of seeds drawn like a cache's (non-zero, ``view_seeds``), interleaved repeats, best
reported with the spread. Also the reader's batch (``TeacherCacheDataset[i]`` over the
shipped Fashion-MNIST cache) with either way of making its views. Writes
``benchmarks/results/augment_views.json`` (``--quick``: the 28x28 size, 2 repeats,
``augment_views_quick.json``).

    python -m benchmarks.augment_views [--batch 128] [--repeats 5] [--quick] [--out FILE|DIR]
"""

from __future__ import annotations

import json

import numpy as np

from benchmarks import common
from tosc_cache.augment import augment, augment_batch, default_pad, view_seeds

#: (name, image shape, calls per timing) of each size: the shipped dataset's, and ImageNet's
SIZES = (("28x28x1", (28, 28), 20), ("224x224x3", (224, 224, 3), 2))


def per_image(images: np.ndarray, seeds: np.ndarray, config: dict) -> np.ndarray:
    """The reference: one view at a time."""
    return np.stack([augment(image, seed, config) for image, seed in
                     zip(images, seeds, strict=True)])


def reader_ms_per_batch(repeats: int, batches: int = 20) -> dict:
    """``TeacherCacheDataset[i]`` over the shipped cache, ms per batch, with the reader's views
    made image by image (:func:`per_image`, what the reader did before) and by the batch path:
    best and spread of each, their ratio; the batches are checked equal."""
    from tosc_sionna.data import TeacherCacheDataset, default_teacher_cache
    from tosc_sionna.data import reader as reader_module

    data = TeacherCacheDataset(default_teacher_cache(), seed=0)
    served = {}

    def arm(name, views):
        def run():
            saved, reader_module.augment_batch = reader_module.augment_batch, views
            try:
                served[name] = [data[i] for i in range(1, batches + 1)]
            finally:
                reader_module.augment_batch = saved
        return run

    seconds = common.time_interleaved(
        {"per_image": arm("per_image", per_image), "batch": arm("batch", augment_batch)},
        repeats, warmup=1)
    first, second = served["per_image"], served["batch"]
    if not all(np.array_equal(a[0], b[0]) for a, b in zip(first, second, strict=True)):
        raise SystemExit("the reader's views differ between the arms")
    best = {k: 1e3 * t["best"] / batches for k, t in seconds.items()}
    return {"ms_best": best, "spread": {k: t["spread"] for k, t in seconds.items()},
            "per_image_over_batch": best["per_image"] / best["batch"],
            "batches_per_timing": batches, "batch": data.batch_size}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__.splitlines()[0], quick="smoke run: the 28x28 size, 2 repeats",
                           out=common.RESULTS,
                           out_help="results folder, or a .json results file")
    parser.add_argument("--batch", type=int, default=128, help="views per batch (default 128)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved repeats (default 5)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        parser.error("--batch and --repeats must be >= 1")
    sizes = SIZES[:1] if args.quick else SIZES
    if args.quick:
        args.repeats = 2

    rng = np.random.default_rng(0)
    seeds = view_seeds(0, np.arange(args.batch), 2)[:, 1]
    results = {}
    for name, shape, calls in sizes:
        images = rng.integers(0, 256, (args.batch, *shape), dtype=np.uint8)
        config = {"name": "crop_flip", "pad": default_pad(shape[:2]), "flip": True}
        outputs = {}

        def arm(label, fn, images=images, config=config, outputs=outputs):
            def run():
                outputs[label] = fn(images, seeds, config)
            return run

        times = common.time_interleaved(
            {"per_image": arm("per_image", per_image), "batch": arm("batch", augment_batch)},
            args.repeats, calls=calls, warmup=1)
        identical = bool(np.array_equal(outputs["per_image"], outputs["batch"]))
        if not identical:
            raise SystemExit(f"augment_batch differs from augment at {name}")
        results[name] = {
            "pad": config["pad"],
            "ms_best": {k: 1e3 * t["best"] for k, t in times.items()},
            "ms_all": {k: [1e3 * x for x in t["all"]] for k, t in times.items()},
            "spread": {k: t["spread"] for k, t in times.items()},
            "per_image_over_batch": times["per_image"]["best"] / times["batch"]["best"],
            "bit_identical": identical,
        }
        print(f"{name}: per image {results[name]['ms_best']['per_image']:.2f} ms, batch "
              f"{results[name]['ms_best']['batch']:.2f} ms, "
              f"{results[name]['per_image_over_batch']:.1f}x", flush=True)
    result = {
        "what": "augmented views of a batch: augment image by image vs augment_batch",
        "batch": args.batch,
        "repeats": args.repeats,
        "sizes": results,
        "reader": reader_ms_per_batch(args.repeats),
    }
    common.write_results(common.results_file(args.out, "augment_views", args.quick), result,
                         argv, __name__)
    print(json.dumps({"reader_ms_best": result["reader"]["ms_best"]}))


if __name__ == "__main__":
    main()
