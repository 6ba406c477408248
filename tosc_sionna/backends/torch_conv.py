"""The encoder's convolution stack on Keras' torch backend, in ``torch.nn.functional``.

:class:`~tosc_sionna.SemanticEncoder` runs its convolutions, batch
normalizations and ReLUs through this module on the torch line (float32,
the layers as the encoder builds them); everywhere else, and as the
reference, through the Keras layers. Same weights, same arithmetic, other
kernels:

* Keras' torch convolution permutes each NHWC input to NCHW and copies it
  twice (``contiguous()``, then back to channels-last memory), and pads
  stride-2 "same" inputs with a third copy; here the activations stay one
  channels-last tensor throughout (NHWC memory seen as NCHW: a view), and
  only the stride-2 padding copies; the 1x1 (pointwise) convolutions of the
  separable stages are matrix products of that memory (oneDNN's 1x1
  convolution backward is slower than two GEMMs).
* Keras' batch normalization computes its moments as
  ``mean(x**2) - mean(x)**2`` in separate ops whose backward passes (a
  ``pow`` backward among them) cost more than the convolutions'; here it is
  torch's fused kernel (``batch_norm``, forward and backward). The moving
  statistics follow Keras' rule, ``moving * momentum + batch * (1 - momentum)``
  with the biased batch variance (torch's own update would use the unbiased
  one).

The results equal the Keras layers' to float32 rounding (the variance is
computed another way); ``tests/test_layers.py`` compares outputs, gradients
and moving statistics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    # TensorFlow's "same": the output has ceil(size / stride) positions, the extra pad after
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(h: torch.Tensor, weight: torch.Tensor, stride: int, groups: int = 1) -> torch.Tensor:
    # h: [batch, c, height, width] (channels-last memory); "same" padding, 3x3 or 1x1
    k = weight.shape[-1]
    top, bottom = _same_padding(h.shape[2], k, stride)
    left, right = _same_padding(h.shape[3], k, stride)
    if top == bottom and left == right:
        return F.conv2d(h, weight, stride=stride, padding=(top, left), groups=groups)
    return F.conv2d(F.pad(h, (left, right, top, bottom)), weight, stride=stride, groups=groups)


def _pointwise(h: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    # a 1x1 convolution of channels-last memory is a matrix product
    b, c, height, width = h.shape
    nhwc = h.permute(0, 2, 3, 1)
    if not nhwc.is_contiguous():
        nhwc = nhwc.contiguous()
    out = nhwc.reshape(-1, c) @ kernel.reshape(c, -1)
    return out.reshape(b, height, width, -1).permute(0, 3, 1, 2)


def _hwio_to_oihw(kernel: torch.Tensor) -> torch.Tensor:
    return kernel.permute(3, 2, 0, 1)


#: Off: the Keras layers everywhere (A/B measurements, tests).
ENABLED = True
#: Off: the 1x1 convolutions through ``conv2d`` rather than a matrix product (A/B).
POINTWISE_MATMUL = True


def supported(images: Any, convs: list, norms: list, training: bool | None) -> bool:
    """Whether :func:`conv_stack` computes what the Keras layers would."""
    if not ENABLED or not isinstance(images, torch.Tensor) or images.dtype != torch.float32 \
            or images.ndim != 4:
        return False
    if training:  # torch's batch norm needs two values per channel (Keras reads variance 0)
        stride = 1
        for conv in convs:
            stride *= int(conv.strides[0])
        if images.shape[0] * -(-images.shape[1] // stride) * -(-images.shape[2] // stride) < 2:
            return False
    for conv, norm in zip(convs, norms, strict=True):
        if conv.compute_dtype != "float32" or norm.compute_dtype != "float32":
            return False
        if conv.padding != "same" or conv.data_format != "channels_last" or conv.use_bias \
                or conv.activation.__name__ != "linear" or tuple(conv.dilation_rate) != (1, 1) \
                or len(set(conv.strides)) != 1:
            return False
        if norm.axis != -1 and norm.axis != 3 or not (norm.center and norm.scale) \
                or norm.renorm or norm.synchronized:
            return False
    return True


def conv_stack(images: torch.Tensor, convs: list, norms: list,
               training: bool | None) -> torch.Tensor:
    """``relu(norm(conv(h)))`` through the stages: NHWC images -> NHWC features (a view
    of channels-last memory)."""
    h = images.permute(0, 3, 1, 2)  # NCHW view of NHWC memory
    for conv, norm in zip(convs, norms, strict=True):
        stride = int(conv.strides[0])
        if hasattr(conv, "depthwise_kernel"):  # SeparableConv2D
            depthwise = conv.depthwise_kernel.value  # [3, 3, c_in, 1]
            c_in = depthwise.shape[2]
            dw = depthwise.permute(2, 3, 0, 1)  # [c_in, 1, 3, 3]
            h = _conv(h, dw, stride, groups=c_in)
            pointwise = conv.pointwise_kernel.value
            h = (_pointwise(h, pointwise) if POINTWISE_MATMUL
                 else _conv(h, _hwio_to_oihw(pointwise), 1))
        else:
            h = _conv(h, _hwio_to_oihw(conv.kernel.value), stride)
        if h.shape[1] > 1 and not h.is_contiguous(memory_format=torch.channels_last):
            h = h.contiguous(memory_format=torch.channels_last)
        h = F.relu(_batch_norm(h, norm, training), inplace=True)
    return h.permute(0, 2, 3, 1)


def _batch_norm(h: torch.Tensor, norm: Any, training: bool | None) -> torch.Tensor:
    gamma, beta = norm.gamma.value, norm.beta.value
    moving_mean, moving_variance = norm.moving_mean.value, norm.moving_variance.value
    if not (training and norm.trainable):
        return F.batch_norm(h, moving_mean, moving_variance, gamma, beta, training=False,
                            eps=norm.epsilon)
    # torch updates running statistics with the unbiased variance; Keras with the biased:
    # let torch update copies at momentum 1 (they become the batch's mean and unbiased
    # variance), then apply Keras' rule
    batch_mean = torch.zeros_like(moving_mean)
    batch_variance = torch.ones_like(moving_variance)
    out = F.batch_norm(h, batch_mean, batch_variance, gamma, beta, training=True,
                       momentum=1.0, eps=norm.epsilon)
    count = h.shape[0] * h.shape[2] * h.shape[3]
    batch_variance = batch_variance * ((count - 1) / count)
    momentum = norm.momentum
    norm.moving_mean.assign(moving_mean * momentum + batch_mean * (1.0 - momentum))
    norm.moving_variance.assign(moving_variance * momentum + batch_variance * (1.0 - momentum))
    return out
