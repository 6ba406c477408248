# EfficientNet-Lite as a transformers image classifier: configuration, network and head.
#
# The network (``EfficientNet``, ``MBConvBlock``, ``Conv2dStaticSamePadding`` and the
# helpers) is derived from ``efficientnet-lite-pytorch`` 0.1.0 (model.py, utils.py),
# https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch, itself a modified
# version of https://github.com/lukemelas/EfficientNet-PyTorch:
#
#   Author: lukemelas (github username)
#   Github repo: https://github.com/lukemelas/EfficientNet-PyTorch
#   With adjustments and added comments by workingcoder (github username).
#   Lite variants: ML Illustrated (gerald@ml-illustrated.com).
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
#
# Modified by the tosc-sionna authors: reduced to the Lite variants (ReLU6, no
# squeeze-and-excitation, fixed stem and head, static "SAME" padding from the
# variant's image size), type hints, and wrapped in transformers classes. Module
# and parameter names are unchanged, so the state dicts of both are the same and
# the arithmetic is the same operations in the same order.
#
# This file is the one definition of the model: ``cache_tools.efficientnet_lite``
# imports it, and ``save_pretrained`` copies it into every model directory it
# writes (with ``auto_map`` in config.json), so a directory also loads in a
# fresh interpreter with
# ``AutoModelForImageClassification.from_pretrained(dir, trust_remote_code=True)``.
# It imports only torch and transformers.
"""EfficientNet-Lite (Lite0-Lite4) for transformers: model type ``efficientnet_lite``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

#: (width coefficient, depth coefficient, resolution, dropout rate), from the
#: official efficientnet_lite_builder.py
LITE_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}
#: (repeats, kernel, stride, expansion, input filters, output filters) per stage,
#: 'r1_k3_s11_e1_i32_o16', ... in the original notation
LITE_BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BATCH_NORM_MOMENTUM = 1 - 0.99  # torch's convention, from TensorFlow's 0.99
BATCH_NORM_EPSILON = 1e-3
DROP_CONNECT_RATE = 0.2
DEPTH_DIVISOR = 8


class EfficientNetLiteConfig(PretrainedConfig):
    model_type = "efficientnet_lite"

    def __init__(self, variant: str = "lite0", dropout_rate: float | None = None,
                 **kwargs: Any) -> None:
        if variant not in LITE_PARAMS:
            raise ValueError(f"variant must be one of {tuple(LITE_PARAMS)}; got {variant!r}.")
        self.variant = variant
        self.dropout_rate = dropout_rate
        super().__init__(**kwargs)


def round_filters(filters: int, width: float) -> int:
    """Channels scaled by the width coefficient, rounded to a multiple of 8."""
    scaled = filters * width
    new_filters = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR
                      * DEPTH_DIVISOR)
    if new_filters < 0.9 * scaled:  # prevent rounding by more than 10%
        new_filters += DEPTH_DIVISOR
    return int(new_filters)


def output_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


def drop_connect(inputs: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop whole examples of a residual branch with probability p."""
    if not training:
        return inputs
    keep_prob = 1 - p
    random_tensor = keep_prob + torch.rand(
        [inputs.shape[0], 1, 1, 1], dtype=inputs.dtype, device=inputs.device
    )
    return inputs / keep_prob * torch.floor(random_tensor)


class Conv2dStaticSamePadding(nn.Conv2d):
    """Convolution with TensorFlow's "SAME" padding, fixed for the given image size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 image_size: tuple[int, int], stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, **kwargs)
        ih, iw = image_size
        kh, kw = self.weight.size()[-2:]
        sh, sw = self.stride
        oh, ow = math.ceil(ih / sh), math.ceil(iw / sw)
        pad_h = max((oh - 1) * sh + (kh - 1) * self.dilation[0] + 1 - ih, 0)
        pad_w = max((ow - 1) * sw + (kw - 1) * self.dilation[1] + 1 - iw, 0)
        self.static_padding: nn.Module = nn.Identity()
        if pad_h > 0 or pad_w > 0:
            self.static_padding = nn.ZeroPad2d(
                (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.static_padding(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class MBConvBlock(nn.Module):
    """Mobile inverted residual bottleneck (MobileNet v2), without squeeze-and-excitation."""

    def __init__(self, kernel_size: int, stride: int, expand_ratio: int, input_filters: int,
                 output_filters: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.expand_ratio = expand_ratio
        self.has_skip = stride == 1 and input_filters == output_filters
        mid = input_filters * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = Conv2dStaticSamePadding(input_filters, mid, 1, image_size,
                                                        bias=False)
            self._bn0 = nn.BatchNorm2d(mid, momentum=BATCH_NORM_MOMENTUM, eps=BATCH_NORM_EPSILON)
        self._depthwise_conv = Conv2dStaticSamePadding(mid, mid, kernel_size, image_size,
                                                       stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, momentum=BATCH_NORM_MOMENTUM, eps=BATCH_NORM_EPSILON)
        image_size = output_size(image_size, stride)
        self._project_conv = Conv2dStaticSamePadding(mid, output_filters, 1, image_size,
                                                     bias=False)
        self._bn2 = nn.BatchNorm2d(output_filters, momentum=BATCH_NORM_MOMENTUM,
                                   eps=BATCH_NORM_EPSILON)
        self._swish = nn.ReLU6()  # the original's attribute name; Lite uses ReLU6

    def forward(self, inputs: torch.Tensor, drop_connect_rate: float = 0.0) -> torch.Tensor:
        x = inputs
        if self.expand_ratio != 1:
            x = self._swish(self._bn0(self._expand_conv(inputs)))
        x = self._swish(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if self.has_skip:
            if drop_connect_rate:
                x = drop_connect(x, p=drop_connect_rate, training=self.training)
            x = x + inputs
        return x


class EfficientNet(nn.Module):
    """The EfficientNet-Lite network: stem, MBConv stages, 1x1 head, pooling, linear classifier."""

    def __init__(self, variant: str = "lite0", num_classes: int = 1000,
                 dropout_rate: float | None = None) -> None:
        super().__init__()
        width, depth, resolution, default_dropout = LITE_PARAMS[variant]
        self.drop_connect_rate = DROP_CONNECT_RATE
        image_size = (resolution, resolution)
        # stem, not scaled in the Lite variants
        self._conv_stem = Conv2dStaticSamePadding(3, 32, 3, image_size, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, momentum=BATCH_NORM_MOMENTUM, eps=BATCH_NORM_EPSILON)
        image_size = output_size(image_size, 2)
        self._blocks = nn.ModuleList()
        for i, (repeats, kernel, stride, expand, inp, out) in enumerate(LITE_BLOCKS):
            inp, out = round_filters(inp, width), round_filters(out, width)
            if i == 0:  # fixed stem: the first stage takes its 32 channels
                inp = 32
            if 0 < i < len(LITE_BLOCKS) - 1:  # first and last stages are not repeated more
                repeats = int(math.ceil(depth * repeats))
            self._blocks.append(MBConvBlock(kernel, stride, expand, inp, out, image_size))
            image_size = output_size(image_size, stride)
            for _ in range(repeats - 1):
                self._blocks.append(MBConvBlock(kernel, 1, expand, out, out, image_size))
        # head, not scaled in the Lite variants
        self._conv_head = Conv2dStaticSamePadding(out, 1280, 1, image_size, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, momentum=BATCH_NORM_MOMENTUM, eps=BATCH_NORM_EPSILON)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(default_dropout if dropout_rate is None else dropout_rate)
        self._fc = nn.Linear(1280, num_classes)
        self._swish = nn.ReLU6()

    def extract_features(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self._swish(self._bn0(self._conv_stem(inputs)))
        for idx, block in enumerate(self._blocks):
            x = block(x, drop_connect_rate=self.drop_connect_rate * float(idx) / len(self._blocks))
        return self._swish(self._bn1(self._conv_head(x)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self._avg_pooling(self.extract_features(inputs))
        x = self._dropout(x.view(inputs.size(0), -1))
        return self._fc(x)


class EfficientNetLiteForImageClassification(PreTrainedModel):
    """EfficientNet-Lite with a classification head (``num_labels`` classes)."""

    config_class = EfficientNetLiteConfig
    base_model_prefix = "net"
    main_input_name = "pixel_values"

    def __init__(self, config: EfficientNetLiteConfig) -> None:
        super().__init__(config)
        self.net = EfficientNet(config.variant, num_classes=config.num_labels,
                                dropout_rate=config.dropout_rate)
        self.post_init()

    def _init_weights(self, module: Any) -> None:
        # transformers calls this for weights missing from a checkpoint (e.g. a new
        # head): torch's default initialization, as the network's own constructor uses.
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.BatchNorm2d)):
            module.reset_parameters()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs: Any) -> ImageClassifierOutput:
        logits = self.net(pixel_values)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)
