"""``tosc-cache``: extract, inspect and verify teacher caches.

Extraction runs in one process, or in several launched by ``torchrun
--nproc_per_node N -m cache_tools extract ...`` (see ``cache_tools.extract``).

Exit codes: 0 success; 1 the cache is invalid, incomplete, corrupted or does
not match the data; 2 bad usage or missing input (model, dataset, file). Any
other exception is a bug: it propagates with its traceback (the interpreter
exits 1), never reported as bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

from tosc_cache import __version__
from tosc_cache.errors import ResumedEnvironmentWarning

from .labels import LabelsByIndexWarning
from .preprocessing import CACHE_INSTALL

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _Progress:
    """A progress bar on a terminal; plain periodic lines when piped; silent with --quiet."""

    def __init__(self, quiet: bool, label: str) -> None:
        self.quiet = quiet
        self.label = label
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=0, desc=self.label, unit="sample")
            self.bar.update(done - self.bar.n)
        elif time.monotonic() - self.last > 10 or done == total:
            self.last = time.monotonic()
            print(f"{self.label}: {done}/{total} samples", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tosc-cache",
        description="Run a Hugging Face teacher once over a dataset and keep its compressed "
        "outputs in an HDF5 cache; inspect and verify such caches.",
        epilog="Exit codes: 0 ok; 1 invalid, incomplete, corrupted or mismatched cache; "
        "2 bad usage or missing input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("extract", help="run the teacher over a dataset split and write a cache")
    ex.add_argument("--model", required=True, help="local model directory or hub id")
    ex.add_argument("--dataset", default="fashion-mnist",
                    help="fashion-mnist (built in), a Hugging Face hub id, a folder saved with "
                    "save_to_disk, or an image folder (one sub-folder per class)")
    ex.add_argument("--split", default="train", help="split name (default train)")
    _data_options(ex)
    ex.add_argument("--pad", type=int,
                    help="crop padding of the augmented views (default: 1/14 of the image side)")
    ex.add_argument("--no-flip", action="store_true",
                    help="never mirror the augmented views (digits, text)")
    ex.add_argument("--label-map", metavar="FILE",
                    help="JSON object teacher class -> dataset class, for a classifier "
                    "trained on other classes (several may map to one), or one with "
                    "transformers' default names LABEL_0, LABEL_1, ... in another order than "
                    "the dataset's (without a map such names are taken by index, with a note)")
    ex.add_argument("--out", required=True,
                    help="cache file to write (.h5); OUT.partial/ holds the work done until "
                    "it is complete, OUT.lock the lock of the extraction running (a second "
                    "one into OUT is refused)")
    ex.add_argument("--limit", type=int, help="only the first N samples")
    ex.add_argument("--views", type=int, default=1,
                    help="views per sample; view 0 unaugmented (default 1)")
    ex.add_argument("--seed", type=int, default=0, help="seed of the augmented views")
    group = ex.add_mutually_exclusive_group()
    group.add_argument("--topk", type=int, default=None,
                       help="store the top-k probabilities (default 5; a K above the "
                       "number of classes keeps every class)")
    group.add_argument("--logits", action="store_true", help="store all logits as float16")
    ex.add_argument("--basis", type=int, metavar="RANK",
                    help="store a rank-RANK basis of the logits fitted per cache (once), RANK "
                    "int8 coefficients per view and 4-bit residuals for the --topk classes "
                    "it ranks highest: RANK + K/2 bytes per view, for many classes (e.g. "
                    "--basis 48 --topk 32 for 1000 classes: 64 bytes)")
    ex.add_argument("--tcq", type=int, metavar="BYTES",
                    help="store BYTES bytes per view: a basis fitted per cache (rank --basis, "
                    "default 256) and residuals of the --topk classes it ranks highest "
                    "(default 128, a multiple of 8), trellis-coded with codebooks fitted "
                    "per cache on the first 16,384 views (e.g. --tcq 64 for 1000 classes)")
    ex.add_argument("--features", nargs="?", const="float16", choices=["float16", "int8"],
                    help="also store pooled teacher features (float16, or int8 + row scale)")
    ex.add_argument("--batch-size", type=int, default=64, help="images per teacher forward")
    ex.add_argument("--device", default="cpu",
                    help="cpu or cuda (under torchrun, cuda is each process's cuda:LOCAL_RANK)")
    ex.add_argument("--image-size", type=int, help="teacher input size (default: processor's)")
    ex.add_argument("--kind", default="auto", choices=["auto", "classifier", "clip", "encoder"])
    ex.add_argument("--head-from", help="train-split cache whose fitted head an encoder uses")
    ex.add_argument("--data-dir", help="folder with the dataset's files")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing cache")
    ex.add_argument("--test-accuracy", action="store_true",
                    help="also record the teacher's accuracy on the test split")
    ex.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    info = sub.add_parser("info", help="provenance, shapes, sizes and fidelity of a cache")
    info.add_argument("file")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--temperature", type=_positive_float, action="append", metavar="T",
                      help="report the reconstruction KL at distillation temperature T "
                      "(repeatable; default: 1 and 4)")

    verify = sub.add_parser("verify", help="check a cache's integrity and its match to the data")
    verify.add_argument("file")
    verify.add_argument("--dataset", help="the dataset (default: the one the cache names); "
                        "where it is now, if it moved")
    verify.add_argument("--split", help="the split (default: the one the cache names)")
    verify.add_argument("--data-dir")
    return parser


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-column", help="image column (default: image, img, ...)")
    parser.add_argument("--label-column",
                        help="label column (default: label, labels, fine_label, ...)")
    parser.add_argument("--resize", type=int, nargs=2, metavar=("H", "W"),
                        help="resize every image to H x W (needed when sizes differ)")
    parser.add_argument("--channels", type=int, choices=[1, 3],
                        help="read images as grey (1) or RGB (3) (default: as the first is)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}")
    return value


def _fidelity(cache: Any, temperatures: list[float]) -> dict[str, Any]:
    """Reconstruction KL at each temperature: as recorded at extraction, else a bound or None.

    The KL is ``KL(temper(teacher, T) || temper(stored, T))`` (what the
    distillation loss sees, before its ``T**2`` weight; ``scaled_*`` include it).
    """
    import numpy as np

    from tosc_cache.probability import format_temperature

    recorded = json.loads(cache.attrs.get("compression_fidelity", "{}"))
    out: dict[str, Any] = {}
    for tau in temperatures:
        key = format_temperature(tau)
        if key in recorded:
            out[key] = {**recorded[key], "source": "measured at extraction"}
        elif key == "1" and cache.attrs.get("compression_kl_mean") is not None:
            mean, top = cache.attrs["compression_kl_mean"], cache.attrs["compression_kl_max"]
            out[key] = {"kl_mean": mean, "kl_max": top, "scaled_kl_mean": mean,
                        "scaled_kl_max": top, "source": "measured at extraction"}
        elif (bound := cache.spec.codec.kl_bound(cache.arrays, tau)) is not None:
            mean, top = float(np.mean(bound)), float(np.max(bound))
            out[key] = {"kl_mean": mean, "kl_max": top, "scaled_kl_mean": tau**2 * mean,
                        "scaled_kl_max": tau**2 * top,
                        "source": "upper bound from float16 rounding (not measured)"}
        else:
            out[key] = None  # not recorded by the version that wrote the cache
    return out


def _info(path: str, temperatures: list[float] | None = None) -> dict[str, Any]:
    from tosc_cache.reader import TeacherCache

    cache = TeacherCache(path, check_integrity=False, resident_bytes=0)  # metadata only
    spec = cache.spec
    rows = spec.num_samples * spec.num_views
    arrays = {n: {"shape": list(shape), "dtype": str(dtype)}
              for n, (shape, dtype) in cache.layout.items()}
    teacher_bytes = cache.stored_bytes
    out = {
        "file": str(path),
        "format_version": cache.attrs["format_version"],
        "tool_version": cache.attrs.get("tool_version"),
        "complete": bool(cache.attrs.get("complete")),
        "teacher": {"id": spec.teacher_id, "kind": spec.teacher_kind,
                    "digest": spec.teacher_digest, "params": spec.teacher_params},
        "dataset": {"name": spec.dataset, "split": spec.split, "samples": spec.num_samples,
                    "digest": spec.dataset_digest},
        "views": spec.num_views, "seed": spec.seed, "augmentation": spec.augmentation,
        "preprocessing": spec.preprocessing,
        "compression": {"probs": spec.probs,
                        "topk": spec.topk if spec.codec.uses_topk else None,
                        "rank": spec.rank if spec.codec.uses_rank else None,
                        "features": spec.features, "feature_dim": spec.feature_dim,
                        **({"bits": spec.bits} if spec.codec.uses_bits else {})},
        "classes": spec.class_names,
        "arrays": arrays,
        "bytes_per_sample_per_view": teacher_bytes / rows,
        "file_bytes": os.path.getsize(path),
        "file_bytes_per_sample_per_view": os.path.getsize(path) / rows,
        "reconstruction_kl_mean": cache.attrs.get("compression_kl_mean"),
        "reconstruction_kl_max": cache.attrs.get("compression_kl_max"),
        "reconstruction_kl": _fidelity(cache, temperatures or [1.0, 4.0]),
    }
    for key in ("teacher_accuracy", "teacher_test_accuracy"):
        if key in cache.attrs:
            out[key] = cache.attrs[key]
    return out


def _print_info(info: dict[str, Any]) -> None:
    t, d, c = info["teacher"], info["dataset"], info["compression"]
    from types import SimpleNamespace

    from tosc_cache.codecs import get_codec

    probs = get_codec(c["probs"]).describe(
        SimpleNamespace(topk=c["topk"], rank=c["rank"], bits=c.get("bits")))
    lines = [
        f"file          {info['file']} ({info['file_bytes']:,} bytes)",
        f"format        v{info['format_version']} (tool {info['tool_version']}), "
        f"{'complete' if info['complete'] else 'INCOMPLETE'}",
        f"teacher       {t['id']} [{t['kind']}], {t['params']:,} parameters",
        f"              weights sha256 {t['digest']}",
        f"dataset       {d['name']} / {d['split']}, {d['samples']:,} samples",
        f"              samples sha256 {d['digest']}",
        f"views         {info['views']} per sample (view 0 unaugmented), seed {info['seed']}, "
        f"{json.dumps(info['augmentation'])}",
        f"preprocessing {json.dumps(info['preprocessing'])}",
        f"compression   {probs}"
        + (f" + {c['features']} features [{c['feature_dim']}]" if c["features"] else ""),
        f"size          {info['bytes_per_sample_per_view']:.1f} bytes per sample per view "
        f"(uncompressed arrays), {info['file_bytes_per_sample_per_view']:.1f} on disk",
    ]
    for tau, fid in info["reconstruction_kl"].items():
        head = f"fidelity T={tau:<4s}"
        if fid is None:
            lines.append(f"{head}not recorded in this cache (measure it with "
                         "benchmarks/compression_fidelity.py)")
            continue
        bound = fid["source"].startswith("upper bound")
        lines.append(
            f"{head}KL(teacher^T || stored^T) {'<= ' if bound else ''}mean "
            f"{fid['kl_mean']:.3g} nats, max {fid['kl_max']:.3g}; x T^2 (as the loss weighs "
            f"it) mean {fid['scaled_kl_mean']:.3g}" + (" (bound)" if bound else "")
        )
    for key, label in (("teacher_accuracy", "accuracy"), ("teacher_test_accuracy", "test acc.")):
        if key in info:
            where = "this split, view 0" if key == "teacher_accuracy" else "test split"
            lines.append(f"{label:13s} {info[key]:.4f} (teacher, {where})")
    lines.append("arrays        " + ", ".join(
        f"{n} {tuple(a['shape'])} {a['dtype']}" for n, a in info["arrays"].items()))
    print("\n".join(lines))


#: Warnings the command shows as one line, ``tosc-cache: note: ...`` (every time).
NOTES = (LabelsByIndexWarning, ResumedEnvironmentWarning)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def one_line(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, NOTES):
                print(f"tosc-cache: note: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = one_line
        for category in NOTES:
            warnings.simplefilter("always", category)
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    from tosc_cache.datasets import DatasetFormatError, DatasetNotFoundError
    from tosc_cache.errors import CacheError, MissingDependencyError, UsageError

    try:
        if args.command == "extract":
            missing = _missing_teacher_side()
            if missing:
                print(f"tosc-cache: extract needs the teacher side ({missing} is not "
                      f"installed): {CACHE_INSTALL}", file=sys.stderr)
                return EXIT_USAGE
            from .extract import ExtractionOptions, extract

            options = ExtractionOptions(
                model=args.model, out=args.out, dataset=args.dataset, split=args.split,
                limit=args.limit, views=args.views, seed=args.seed,
                topk=None if args.logits else ("auto" if args.topk is None else args.topk),
                basis_rank=args.basis, tcq_bytes=args.tcq, features=args.features,
                batch_size=args.batch_size, device=args.device, image_size=args.image_size,
                kind=args.kind, data_dir=args.data_dir, head_from=args.head_from,
                overwrite=args.overwrite, test_accuracy=args.test_accuracy,
                image_column=args.image_column, label_column=args.label_column,
                resize=args.resize, channels=args.channels, pad=args.pad,
                flip=not args.no_flip, label_map=args.label_map,
            )
            progress = _Progress(args.quiet, "extract")
            try:
                path = extract(options, progress=progress)
            finally:
                progress.close()
            if not args.quiet and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 writes
                print(f"wrote {path}", file=sys.stderr)
        elif args.command == "info":
            info = _info(args.file, args.temperature)
            print(json.dumps(info, indent=2)) if args.json else _print_info(info)
        else:
            from tosc_cache.pairing import Checks, DataSource, pair

            # --dataset may point to where the data moved: the row hashes check that it
            # holds the same images and labels as the split the cache names
            paired = pair(args.file, DataSource(dataset=args.dataset, split=args.split,
                                                data_dir=args.data_dir),
                          Checks(integrity="full", rows="all"))
            cache = paired.cache
            dataset = args.dataset or cache.spec.dataset
            split = args.split or cache.spec.split
            print(f"{args.file}: OK ({cache.num_samples:,} samples x {cache.num_views} views, "
                  f"integrity and {dataset}/{split} match verified)")
    except CacheError as err:
        print(f"tosc-cache: {err}", file=sys.stderr)
        return EXIT_INVALID
    except (FileNotFoundError, FileExistsError, DatasetNotFoundError, DatasetFormatError,
            UsageError, MissingDependencyError) as err:
        print(f"tosc-cache: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tosc-cache: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    return EXIT_OK


def _missing_teacher_side() -> str | None:
    """The first of torch and transformers (the ``cache`` extra) that cannot be imported."""
    import importlib

    for name in ("torch", "transformers"):
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


if __name__ == "__main__":
    sys.exit(main())
