"""Hugging Face teachers behind one interface (torch + transformers, imported lazily).

``load_teacher(model)`` loads a local directory (offline) or a hub id with the
transformers Auto classes and returns a :class:`Teacher`: a callable from a
batch of uint8 images ``[B, H, W]`` (grey) or ``[B, H, W, 3]`` to float32
logits ``[B, C]`` and pooled features ``[B, D]``.

Kinds:

* ``classifier`` — ``AutoModelForImageClassification``; logits over the
  model's labels; features are the input of its final linear layer.
* ``clip`` — a CLIP-style model; zero-shot logits ``logit_scale * cos`` between
  the image embedding and the embeddings of one prompt per class
  (``"a photo of a {name}."``); features are the image embeddings.
* ``encoder`` — ``AutoModel`` without a task head: pooled embeddings as
  features; logits come from a linear head fitted on the train split
  (see :mod:`cache_tools.head`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("auto", "classifier", "clip", "encoder")
DEFAULT_PROMPT = "a photo of a {}."


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "The teacher side needs torch and transformers: pip install torch==2.13.0 "
            "&& pip install 'tosc-sionna[cache]'."
        ) from err
    return torch


def weights_digest(model: Any) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes, bytes), in name order."""
    torch = _torch()
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


#: PIL's resampling filters (``PIL.Image.Resampling`` numbers), all reproduced exactly.
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

#: Image processor classes whose image path (resize, centre crop, rescale, normalize)
#: is reproduced, by how they resize. "standard": transformers' base rule (size
#: ``{height, width}`` warps, ``{shortest_edge}`` keeps the aspect ratio).
_PROCESSOR_RULES = {
    **dict.fromkeys(
        ("ViTImageProcessor", "DeiTImageProcessor", "BitImageProcessor", "CLIPImageProcessor",
         "ChineseCLIPImageProcessor", "SiglipImageProcessor", "BlipImageProcessor",
         "MobileNetV1ImageProcessor", "MobileNetV2ImageProcessor", "BeitImageProcessor",
         "PvtImageProcessor", "MobileViTImageProcessor", "EfficientNetImageProcessor"),
        "standard",
    ),
    "ConvNextImageProcessor": "convnext",  # shortest_edge / crop_pct, then crop (below 384)
    "LevitImageProcessor": "levit",  # shortest_edge * 256 / 224, then crop
    "PoolFormerImageProcessor": "poolformer",  # size / crop_pct, then crop
}
#: Processor methods that, left as transformers' base class has them, make a class "standard".
_PIPELINE_METHODS = ("preprocess", "_preprocess", "resize", "center_crop", "rescale", "normalize")
_PRECISION = 22  # PIL's fixed-point coefficient bits for 8-bit images (Resample.c)


def _processor_rule(processor: Any) -> tuple[str, str]:
    """(class name without backend suffix, resize rule) or a ValueError for an unknown class."""
    cls = type(processor)
    name = cls.__name__
    for suffix in ("Pil", "Fast"):
        if name.endswith(suffix) and name[: -len(suffix)] in _PROCESSOR_RULES:
            name = name[: -len(suffix)]
    if name in _PROCESSOR_RULES:
        return name, _PROCESSOR_RULES[name]
    # Another class is reproduced when it inherits its whole image path from
    # transformers' base backend (the PIL one, which is the reference).
    try:
        import transformers
        from transformers.image_processing_backends import PilBackend, TorchvisionBackend
    except ImportError:  # transformers 4: no backend classes to compare with
        overridden = list(_PIPELINE_METHODS)
    else:
        pil = cls if issubclass(cls, PilBackend) else getattr(transformers, f"{name}Pil", None)
        if pil is None and issubclass(cls, TorchvisionBackend):
            pil = getattr(transformers, f"{name.removesuffix('Fast')}Pil", None)
        if pil is None or not issubclass(pil, PilBackend):
            overridden = list(_PIPELINE_METHODS)
        else:
            overridden = [m for m in _PIPELINE_METHODS
                          if getattr(pil, m, None) is not getattr(PilBackend, m, None)]
    if overridden:
        raise ValueError(
            f"Image processor {cls.__name__} is not supported: its {', '.join(overridden)} "
            f"differ from transformers' standard image path and are not reproduced here. "
            f"Supported: {', '.join(sorted(_PROCESSOR_RULES))} and classes that keep the "
            f"standard path."
        )
    return name, "standard"


def _resize_shape(height: int, width: int, size: dict[str, int], rule: str,
                  crop_pct: float | None) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """(resized height and width, the crop the resize step itself applies or None)."""

    def shortest(edge: int) -> tuple[int, int]:  # transformers' get_resize_output_image_size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(edge * long / short)
        return (edge, new_long) if height <= width else (new_long, edge)

    keys = set(size)
    if rule == "convnext":
        if keys != {"shortest_edge"}:
            raise ValueError(
                f"ConvNextImageProcessor needs size {{'shortest_edge': N}}; got {size}."
            )
        edge = int(size["shortest_edge"])
        if edge < 384:  # keep the aspect ratio at edge / crop_pct, then crop edge x edge
            return shortest(int(edge / crop_pct)), (edge, edge)
        return (edge, edge), None  # warped, uncropped, at 384 and above
    if rule == "poolformer" and crop_pct is not None:
        if keys == {"shortest_edge"}:
            return shortest(int(size["shortest_edge"] / crop_pct)), None
        if keys == {"height", "width"}:
            h, w = int(size["height"]), int(size["width"])
            if h == w:
                return shortest(int(h / crop_pct)), None
            return (int(h / crop_pct), int(w / crop_pct)), None
    if keys == {"height", "width"}:
        return (int(size["height"]), int(size["width"])), None
    if keys == {"shortest_edge"}:
        edge = int(size["shortest_edge"])
        return shortest(int((256 / 224) * edge) if rule == "levit" else edge), None
    raise ValueError(
        f"Unsupported image processor size {size!r}: {{'height', 'width'}} or "
        f"{{'shortest_edge'}} are reproduced; pass --image-size."
    )


def _crop_map(positions: np.ndarray, length: int) -> np.ndarray:
    """Centre crop of one axis as numpy's processors do it (zeros where the crop overhangs)."""
    offset = (len(positions) - length) // 2
    source = np.arange(length) + offset
    inside = (source >= 0) & (source < len(positions))
    return np.where(inside, positions[np.clip(source, 0, len(positions) - 1)], -1)


def _pil_filter(resample: int) -> tuple[Any, float]:
    import math

    def box(x: float) -> float:
        return 1.0 if -0.5 < x <= 0.5 else 0.0

    def triangle(x: float) -> float:
        x = abs(x)
        return 1.0 - x if x < 1.0 else 0.0

    def hamming(x: float) -> float:
        x = abs(x)
        if x == 0.0:
            return 1.0
        if x >= 1.0:
            return 0.0
        x *= math.pi
        return math.sin(x) / x * (0.54 + 0.46 * math.cos(x))

    def bicubic(x: float, a: float = -0.5) -> float:
        x = abs(x)
        if x < 1.0:
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
        if x < 2.0:
            return (((x - 5) * x + 8) * x - 4) * a
        return 0.0

    def sinc(x: float) -> float:
        if x == 0.0:
            return 1.0
        x *= math.pi
        return math.sin(x) / x

    def lanczos(x: float) -> float:
        return sinc(x) * sinc(x / 3) if -3.0 <= x < 3.0 else 0.0

    return {1: (lanczos, 3.0), 2: (triangle, 1.0), 3: (bicubic, 2.0), 4: (box, 0.5),
            5: (hamming, 1.0)}[resample]


def _pil_coefficients(n_in: int, n_out: int, resample: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's resampling of one axis, ``n_in -> n_out``: source indices and fixed-point weights.

    A port of Pillow's ``precompute_coeffs`` and ``normalize_coeffs_8bpc``
    (``Resample.c``; nearest: ``ImagingScaleAffine``), so that the integer
    sums below give PIL's 8-bit results exactly. Shapes ``[n_out, taps]``.
    """
    import math

    one = 1 << _PRECISION
    if n_in == n_out:
        return np.arange(n_out)[:, None], np.full((n_out, 1), one, np.int64)
    scale = n_in / n_out
    if resample == 0:
        index, position = [], scale * 0.5
        for _ in range(n_out):
            index.append(int(position))
            position += scale
        return np.array(index)[:, None], np.full((n_out, 1), one, np.int64)
    kernel, support = _pil_filter(resample)
    filterscale = max(scale, 1.0)
    support *= filterscale
    taps = int(math.ceil(support)) * 2 + 1
    index = np.zeros((n_out, taps), np.int64)
    weight = np.zeros((n_out, taps), np.int64)
    for out in range(n_out):
        center = (out + 0.5) * scale
        low = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), n_in) - low
        w = [kernel((x + low - center + 0.5) / filterscale) for x in range(count)]
        total = sum(w)
        for x, v in enumerate(w):
            v = v / total if total != 0.0 else v
            index[out, x] = low + x
            weight[out, x] = int(-0.5 + v * one) if v < 0 else int(0.5 + v * one)
    return index, weight


def _axis_matrix(n_in: int, n_resized: int, positions: np.ndarray,
                 resample: int) -> np.ndarray | slice:
    """One axis of the resize and crops: a slice where it only crops, else the fixed-point
    weights ``[len(positions), n_in]`` from the input axis to the kept ``positions``
    of the resized axis (-1: a zero of the crop's padding)."""
    if n_in == n_resized and len(positions) and positions[0] >= 0 and np.array_equal(
        positions, np.arange(positions[0], positions[0] + len(positions))
    ):
        return slice(int(positions[0]), int(positions[0]) + len(positions))
    index, weight = _pil_coefficients(n_in, n_resized, resample)
    rows = np.clip(positions, 0, n_resized - 1)
    weight = np.where((positions >= 0)[:, None], weight[rows], 0)
    matrix = np.zeros((len(positions), n_in))
    np.add.at(matrix, (np.arange(len(positions))[:, None], index[rows]), weight)
    return matrix


def _banded(matrix: np.ndarray, device: Any, block: int = 64) -> list[tuple[int, int, Any]]:
    """A resize matrix as blocks of ``block`` output pixels, each with the input range it
    reads (``lo, hi, weights [block, hi - lo]``): the product skips the zeros outside
    the band (a few times less work when downscaling photos)."""
    torch = _torch()
    blocks = []
    for start in range(0, len(matrix), block):
        part = matrix[start : start + block]
        used = np.flatnonzero(part.any(axis=0))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
        blocks.append((lo, hi, torch.from_numpy(np.ascontiguousarray(part[:, lo:hi])).to(device)))
    return blocks


@dataclass
class Preprocess:
    """The model's image processor (resize, centre crop, rescale, normalize) as batched torch ops.

    Read from the model's own image processor configuration and class, and
    equal to its PIL path: the resize reproduces Pillow's 8-bit resampling
    exactly (all six filters, fixed-point weights, horizontal pass first,
    rounded in between), the crop is numpy's centre crop, and rescale and
    normalize are float32 like the processor's. What is not reproduced
    (another processor class with its own image path, another size rule,
    padding) is a ValueError, never a substitute. Grey images ``[B, H, W]``
    are expanded to 3 channels (as ``do_convert_rgb`` does); RGB
    ``[B, H, W, 3]`` uint8 of any size. Output: float32 ``[B, 3, h, w]``
    stored channels-last.
    """

    size: dict[str, int] | None  # None: no resize (do_resize false)
    resample: str
    crop: tuple[int, int] | None
    rescale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    processor: str = ""
    rule: str = "standard"  # standard | convnext | levit | poolformer | square (--image-size)
    crop_pct: float | None = None
    rescale_offset: bool = False  # EfficientNet: x * rescale - 1 before normalizing
    include_top: tuple[float, ...] | None = None  # EfficientNet: then divided by this std
    flip_channel_order: bool = False  # MobileViT: RGB -> BGR
    #: "pil": Pillow's 8-bit resize, exactly (the processor's own); "torch": torch's
    #: antialiased interpolate rounded once (what teachers fine-tuned by cache_tools.finetune
    #: before the PIL resampler were trained and cached with, the shipped one included)
    resampler: str = "pil"
    _plans: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_processor(cls, processor: Any, image_size: int | None = None,
                       resampler: str = "pil") -> Preprocess:
        cfg = processor.to_dict()
        name, rule = _processor_rule(processor)
        if cfg.get("do_pad"):
            raise ValueError(f"{name}: do_pad is not supported.")
        resample = cfg.get("resample")
        resample = 2 if resample is None else resample  # the base processors' default
        if resampler not in ("pil", "torch"):
            raise ValueError(f"resampler must be 'pil' or 'torch'; got {resampler!r}.")
        try:
            resample = _RESAMPLE[int(resample)]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{name}: resample={resample!r} is not supported (PIL's 0-5 are)."
            ) from None
        crop_pct = cfg.get("crop_pct") if rule in ("convnext", "poolformer") else None
        if rule == "convnext" and not crop_pct:
            crop_pct = 224 / 256  # the class default, when the config leaves it out
        size = cfg.get("size")
        if image_size:  # --image-size: warp to a square, no crop (an explicit override)
            size = {"height": int(image_size), "width": int(image_size)}
            rule, crop_pct = "square", None
        elif not cfg.get("do_resize", True):
            size = None
        elif not isinstance(size, dict):
            raise ValueError(f"{name}: unsupported size {size!r}; pass --image-size.")
        else:
            size = {k: int(v) for k, v in size.items() if v is not None}
            _resize_shape(224, 224, size, rule, crop_pct)  # an unsupported size fails here
        crop = None
        if cfg.get("do_center_crop") and cfg.get("crop_size") and not image_size:
            crop = (int(cfg["crop_size"]["height"]), int(cfg["crop_size"]["width"]))
        normalize = cfg.get("do_normalize", True)
        flip = bool(cfg.get("do_flip_channel_order")) and name == "MobileViTImageProcessor"
        if name == "MobileViTImageProcessor":
            normalize = False  # its image path has no normalize step
        mean = cfg.get("image_mean") if normalize else None
        std = cfg.get("image_std") if normalize else None
        efficientnet = name == "EfficientNetImageProcessor"
        if resampler == "torch" and resample not in ("bilinear", "bicubic"):
            raise ValueError(f"{name}: resample={resample!r} has no torch resampler; use 'pil'.")
        return cls(
            size=size, resample=resample, crop=crop,
            rescale=(
                float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
            ),
            mean=tuple(float(m) for m in _per_channel(mean or 0.0)),
            std=tuple(float(s) for s in _per_channel(std or 1.0)),
            processor=type(processor).__name__, rule=rule, crop_pct=crop_pct,
            rescale_offset=efficientnet and bool(cfg.get("rescale_offset"))
            and bool(cfg.get("do_rescale", True)),
            include_top=(
                tuple(float(s) for s in _per_channel(cfg.get("image_std") or 1.0))
                if efficientnet and cfg.get("include_top", True) else None
            ),
            flip_channel_order=flip, resampler=resampler,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "processor": self.processor, "rule": self.rule,
            "resize": None if self.size is None else dict(self.size),
            "crop_pct": self.crop_pct, "resample": self.resample,
            "crop": None if self.crop is None else list(self.crop), "rescale": self.rescale,
            "rescale_offset": self.rescale_offset,
            "mean": list(self.mean), "std": list(self.std),
            "include_top": None if self.include_top is None else list(self.include_top),
            "flip_channel_order": self.flip_channel_order, "grey_to_rgb": True,
            "resampler": "pil-8bit-exact" if self.resampler == "pil" else "torch-antialias",
        }

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of the pixels for input images of this size."""
        rows, cols = self._plan(height, width)[:2]
        return len(rows), len(cols)

    def _plan(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Per axis, which resized pixel each output pixel is (-1: zero padding)."""
        if (height, width) not in self._plans:
            if self.size is None:
                resized, inner = (height, width), None
            else:
                resized, inner = _resize_shape(height, width, self.size, self.rule, self.crop_pct)
            rows, cols = np.arange(resized[0]), np.arange(resized[1])
            for crop in (inner, self.crop):
                if crop is not None:
                    rows, cols = _crop_map(rows, crop[0]), _crop_map(cols, crop[1])
            self._plans[height, width] = (rows, cols, resized)
        return self._plans[height, width]

    def _resize_torch(self, x: Any, height: int, width: int) -> Any:
        """The ``torch`` resampler: one antialiased interpolate, rounded, then the crops."""
        torch = _torch()
        rows, cols, resized = self._plan(height, width)
        x = x.float()
        if tuple(resized) != (height, width):
            x = torch.nn.functional.interpolate(
                x, size=tuple(resized), mode=self.resample, align_corners=False, antialias=True
            ).round().clamp(0, 255)
        if not (len(rows) == resized[0] and len(cols) == resized[1]):  # the crops (0: padding)
            x = torch.nn.functional.pad(x, (1, 0, 1, 0))
            x = x[..., torch.from_numpy(rows + 1).to(x.device), :]
            x = x[..., torch.from_numpy(cols + 1).to(x.device)]
        return x

    def _resize(self, x: Any, height: int, width: int) -> Any:
        """uint8 ``[B, C, H, W]`` -> float32 ``[B, C, h, w]`` of 8-bit values: PIL's resize
        (horizontal pass first, each pass rounded and clipped to 8 bits), then the crops.

        Each pass is a float64 matrix product with PIL's integer weights: the
        sums are exact integers (below 2**53), so the results are PIL's own.
        """
        torch = _torch()
        key = (height, width, str(x.device))
        if key not in self._plans:
            rows, cols, resized = self._plan(height, width)
            resample = next(k for k, v in _RESAMPLE.items() if v == self.resample)
            self._plans[key] = [
                m if isinstance(m, slice) else _banded(m, x.device)
                for m in (_axis_matrix(width, resized[1], cols, resample),
                          _axis_matrix(height, resized[0], rows, resample))
            ]
        horizontal, vertical = self._plans[key]
        half, unit = float(1 << (_PRECISION - 1)), 2.0**-_PRECISION
        # a chunk of images at a time bounds the float64 intermediates (about 256 MB)
        chunk = max(1, 2**25 // (x.shape[1] * height * width))
        out = []
        for start in range(0, x.shape[0], chunk):
            # rows first ([H, B, C, W]): each pass is then one plain matrix product
            y = x[start : start + chunk].permute(2, 0, 1, 3).contiguous()
            if isinstance(horizontal, slice):
                y = y[..., horizontal].to(torch.float64)
            else:  # each block reads (and converts) only its band of columns
                y = torch.cat([y[..., lo:hi].to(torch.float64) @ m.T
                               for lo, hi, m in horizontal], dim=-1)
                y = ((y + half) * unit).floor_().clamp_(0, 255)
            if isinstance(vertical, slice):
                y = y[vertical]
            else:
                flat_shape, flat = y.shape[1:], y.reshape(y.shape[0], -1)
                y = torch.cat([m @ flat[lo:hi] for lo, hi, m in vertical])
                y = ((y + half) * unit).floor_().clamp_(0, 255).reshape(-1, *flat_shape)
            out.append(y.permute(1, 2, 0, 3).float())  # [B, C, h, w]
        return out[0] if len(out) == 1 else torch.cat(out)

    def __call__(self, images: np.ndarray, device: str = "cpu") -> Any:
        torch = _torch()
        images = np.asarray(images)
        if images.dtype != np.uint8:
            if not np.issubdtype(images.dtype, np.integer) or (
                images.size and (images.min() < 0 or images.max() > 255)
            ):
                raise ValueError(f"Images must be uint8 (0-255); got {images.dtype}.")
            images = images.astype(np.uint8)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if not images.flags.writeable:  # torch wants writable memory (read-only: a copy)
            images = images.copy()
        if images.ndim == 3:
            x = torch.from_numpy(np.ascontiguousarray(images)).to(device)[:, None]
        elif images.ndim == 4 and images.shape[-1] == 3:
            x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)
        else:
            raise ValueError(
                f"Images must be [B, H, W] (grey) or [B, H, W, 3] (RGB); got {images.shape}."
            )
        height, width = x.shape[-2:]
        rows, cols, resized = self._plan(height, width)
        if not (len(rows) == height and len(cols) == width and (rows == np.arange(height)).all()
                and (cols == np.arange(width)).all()):
            x = (self._resize if self.resampler == "pil" else self._resize_torch)(x, height, width)
        # grey -> 3 channels after the resize: the same values for a third of the work
        x = x.float().expand(-1, 3, -1, -1) if x.shape[1] == 1 else x.float()
        mean = torch.tensor(self.mean, device=device)[:, None, None]
        std = torch.tensor(self.std, device=device)[:, None, None]
        # NCHW shape, NHWC memory (channels-last): what the models are converted to, so
        # convolutions skip a layout change (about 1.6x faster forward, 2x training on CPU).
        if self.rescale_offset:
            x = (x * self.rescale - 1 - mean) / std
        else:
            x = (x * self.rescale - mean) / std
        if self.include_top is not None:
            x = x / torch.tensor(self.include_top, device=device)[:, None, None]
        if self.flip_channel_order:
            x = x.flip(1)
        return x.contiguous(memory_format=torch.channels_last)


def _per_channel(value: Any) -> list[float]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return values * 3 if len(values) == 1 else values


@dataclass
class Teacher:
    """A loaded teacher: ``teacher(images) -> (logits [B, C], features [B, D])`` as float32."""

    model: Any
    kind: str
    model_id: str
    class_names: list[str]
    preprocess: Preprocess
    device: str = "cpu"
    digest: str = ""
    text_inputs: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    head: tuple[np.ndarray, np.ndarray] | None = None
    _features: list[Any] = field(default_factory=list)

    @property
    def num_params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, pixel_values: Any) -> tuple[Any, Any]:
        """Logits (None for an encoder without head) and features, as torch tensors."""
        torch = _torch()
        with torch.inference_mode():
            if self.kind == "clip":
                out = self.model(pixel_values=pixel_values, **self.text_inputs)
                return out.logits_per_image, out.image_embeds
            if self.kind == "classifier":
                self._features.clear()
                # the model's own logits (a two-head model averages its heads)
                logits = self.model(pixel_values=pixel_values).logits
                inputs = [t for _, t in sorted(self._features, key=lambda item: item[0])]
                self._features.clear()
                return logits, inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)
            out = self.model(pixel_values=pixel_values)
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                hidden = out.last_hidden_state
                pooled = hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)
            pooled = pooled.reshape(pooled.shape[0], -1)
            return None, pooled

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.forward(self.preprocess(images, self.device))
        features = features.float().cpu().numpy()
        if logits is None:
            if self.head is None:
                raise ValueError("This encoder teacher has no head yet (fit_head first).")
            weight, bias = self.head
            logits_np = features @ weight.T + bias
        else:
            logits_np = logits.float().cpu().numpy()
        return logits_np.astype(np.float32), features.astype(np.float32)

    @property
    def feature_dim(self) -> int:
        dummy = np.zeros((1, 28, 28), np.uint8)
        return int(self.forward(self.preprocess(dummy, self.device))[1].shape[-1])


def detect_kind(config: Any) -> str:
    if getattr(config, "model_type", "") in ("clip", "siglip", "chinese_clip") or (
        hasattr(config, "text_config") and hasattr(config, "vision_config")
    ):
        return "clip"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForImageClassification", "ForImageClassificationWithTeacher"))
           for a in architectures):
        return "classifier"
    return "encoder"


#: Two-head classifiers (DeiT distilled, LeViT): their logits average these two heads.
_TWO_HEADS = (("cls_classifier", "distillation_classifier"), ("classifier", "classifier_distill"))


def _classifier_class(config: Any) -> Any:
    """The class a two-head checkpoint names (the Auto class would load one head), else Auto."""
    import transformers

    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith("ForImageClassificationWithTeacher") and hasattr(transformers, arch):
            return getattr(transformers, arch)
    return transformers.AutoModelForImageClassification


def _head_linears(model: Any, out_features: int) -> list[Any]:
    """The final linear layer of each head the logits come from (two for a two-head model)."""
    torch = _torch()
    for names in _TWO_HEADS:
        heads = [getattr(model, name, None) for name in names]
        if all(isinstance(h, torch.nn.Module) and not isinstance(h, torch.nn.Identity)
               for h in heads):
            return [h if isinstance(h, torch.nn.Linear) else _last_linear(h, out_features)
                    for h in heads]
    return [_last_linear(model, out_features)]


def trained_resampler(model_dir: str | Path) -> str:
    """How a teacher fine-tuned by :mod:`cache_tools.finetune` was preprocessed in training.

    Its ``training.json`` names the resampler; teachers fine-tuned before it did
    (the shipped one) were trained and cached with ``"torch"``. Any other model: ``"pil"``.
    """
    import json

    record = Path(model_dir).expanduser() / "training.json"
    try:
        recipe = json.loads(record.read_text()).get("recipe")
    except (OSError, ValueError, AttributeError):
        return "pil"
    if not isinstance(recipe, dict):
        return "pil"
    return str(recipe.get("resampler", "torch"))


def _last_linear(model: Any, out_features: int) -> Any:
    torch = _torch()
    found = None
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == out_features:
            found = module
    if found is None:
        raise ValueError(f"No final linear layer with {out_features} outputs found.")
    return found


def load_teacher(
    model: str | Path,
    kind: str = "auto",
    device: str = "cpu",
    image_size: int | None = None,
    class_names: list[str] | None = None,
    prompt: str = DEFAULT_PROMPT,
) -> Teacher:
    """Load a Hugging Face teacher from a local directory or a hub id.

    ``class_names`` (the dataset's) name the prompts of a CLIP teacher and
    the classes of an encoder's fitted head; a classifier uses its own labels.
    """
    torch = _torch()  # a clear error if the [cache] extra is missing
    import transformers

    try:  # registers EfficientNet-Lite with the Auto classes (the shipped teacher)
        from . import efficientnet_lite  # noqa: F401
    except ImportError:
        pass

    # Our CLI shows its own progress; keep transformers' bars and notices out of it.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    model_id = str(model)
    local = Path(model_id).expanduser()
    source = str(local) if local.exists() else model_id
    try:
        config = transformers.AutoConfig.from_pretrained(source)
    except OSError as err:
        raise FileNotFoundError(
            f"Cannot load a model from {model_id!r}: it is not a local model directory and "
            f"could not be fetched ({err}). Pass a directory saved with save_pretrained()."
        ) from err
    if kind == "auto":
        kind = detect_kind(config)
    processor = transformers.AutoImageProcessor.from_pretrained(source)
    preprocess = Preprocess.from_processor(processor, image_size,
                                           resampler=trained_resampler(source))
    text_inputs: dict[str, Any] = {}
    if kind == "classifier":
        # float32 on every device: the shipped teacher is stored in float16
        net = _classifier_class(config).from_pretrained(source, dtype=torch.float32)
        labels = [net.config.id2label[i] for i in range(len(net.config.id2label))]
    else:
        net = transformers.AutoModel.from_pretrained(source, dtype=torch.float32)
        if not class_names:
            raise ValueError(f"A {kind} teacher needs the dataset's class names.")
        labels = list(class_names)
        if kind == "clip":
            tokenizer = transformers.AutoTokenizer.from_pretrained(source)
            tokens = tokenizer(
                [prompt.format(name) for name in labels], padding=True, return_tensors="pt"
            )
            text_inputs = {k: v.to(device) for k, v in tokens.items()
                           if k in ("input_ids", "attention_mask")}
    # channels-last like Preprocess's output; the digest does not depend on the layout
    net = net.to(device, memory_format=torch.channels_last).eval()
    teacher = Teacher(
        model=net, kind=kind, model_id=model_id, class_names=labels,
        preprocess=preprocess, device=device, digest=weights_digest(net),
        text_inputs=text_inputs, prompt=prompt if kind == "clip" else None,
    )
    if kind == "classifier":
        # The pooled features are what the final linear layer sees (a two-head model:
        # both heads' inputs, concatenated; its logits are linear in them).
        for index, head in enumerate(_head_linears(net, len(labels))):
            head.register_forward_hook(
                lambda module, args, output, index=index: teacher._features.append(
                    (index, args[0].reshape(args[0].shape[0], -1))
                )
            )
    return teacher


def teacher_description(teacher: Teacher) -> dict[str, Any]:
    """Provenance of a teacher, for the cache's attributes."""
    return {
        "teacher_id": teacher.model_id,
        "teacher_digest": teacher.digest,
        "teacher_kind": teacher.kind,
        "teacher_params": teacher.num_params,
        "preprocessing": teacher.preprocess.to_dict(),
        "prompt": teacher.prompt,
    }
