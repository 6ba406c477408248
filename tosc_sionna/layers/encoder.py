"""The transmitter's semantic encoder: image -> 2n reals for the channel."""

from __future__ import annotations

import warnings
from typing import Any

import keras
from keras import layers, ops

from ..backends import torch_conv
from ..checks import check_bool, check_int

# (filters as a multiple of ``width``, stride) of each 3x3 convolution
_STAGES = ((1, 2), (1, 1), (2, 2), (2, 1), (4, 1))


@keras.saving.register_keras_serializable(package="tosc_sionna")
class SemanticEncoder(keras.layers.Layer):
    r"""Lightweight CNN that maps an image to ``n`` complex channel symbols.

    Five 3x3 convolutions, each followed by batch normalization and ReLU, with
    ``width``, ``width``, ``2*width``, ``2*width`` and ``4*width`` filters; the
    first and third have stride 2 (28x28 -> 14x14 -> 7x7; 32x32 -> 8x8). Global
    average pooling then feeds a dense projection to ``2n`` reals, so any input
    size and channel count works (grey or RGB). The receptive field of the
    last convolution is 27x27 input pixels (kernel 3 at input steps 1, 2, 2,
    4, 4): a whole 28x28 image, most of a 32x32 one; for larger images, ``downsample=k`` first
    averages k x k pixel blocks (receptive field and cost scale by k and
    1/k^2: ``k = 4`` at 96x96, ``k = 8`` at 224x224 sees what the default sees
    at 28x28). Pooling instead of
    flattening keeps the projection small (``4*width*2n`` weights rather than
    ``7*7*2*width*2n``), so the parameter budget goes to the convolutions.
    With ``separable=True`` the last four convolutions are depthwise-separable
    (a 3x3 depthwise filter per channel, then a 1x1 pointwise mix): about
    ``9 c_in + c_in c_out`` weights and multiply-accumulates per pixel instead
    of ``9 c_in c_out``, the MobileNet trade for a student several times smaller.

    With ``stochastic=True`` it is the variational encoder of the information
    bottleneck: a second dense head gives the log-variance of a Gaussian
    latent around the mean. The encoder never samples: it returns the
    distribution's parameters, and the link draws
    ``z = mu + exp(log_var / 2) * eps`` where it should (in training, or when
    asked to at evaluation; see :meth:`~tosc_sionna.TaskOrientedLink.transmit`).

    Parameters
    ----------
    num_symbols : int
        n, the number of complex channel uses per example.
    width : int, (default 32)
        Filters of the first convolution (148k parameters at 32, 16 symbols,
        stochastic).
    stochastic : bool, (default False)
        Variational output (see above).
    downsample : int, (default 1)
        Average-pool the input by this factor before the convolutions (large
        images).
    separable : bool, (default False)
        Depthwise-separable convolutions after the first (see above).

    Input
    -----
    images : [batch, height, width, channels] or [batch, height, width], float
        Images scaled to [0, 1].

    Output
    ------
    (mu, log_var) : ([batch, 2n], [batch, 2n] or None), float
        Always this pair: the latent's mean (the channel symbols before power
        normalization, when not sampled) and its log-variance, ``None`` for a
        deterministic encoder (``stochastic=False``).

    Example
    -------
    >>> encoder = SemanticEncoder(num_symbols=16, stochastic=True)
    >>> mu, log_var = encoder(np.zeros((2, 28, 28, 1), "float32"))
    >>> tuple(mu.shape), tuple(log_var.shape)
    ((2, 32), (2, 32))
    """

    def __init__(
        self,
        num_symbols: int,
        width: int = 32,
        stochastic: bool = False,
        downsample: int = 1,
        separable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.downsample = check_int("downsample", downsample, 1)
        self.pre_pool = (layers.AveragePooling2D(self.downsample)
                         if self.downsample > 1 else None)
        self.num_symbols = check_int("num_symbols", num_symbols, 1)
        self.width = check_int("width", width, 1)
        self.stochastic = check_bool("stochastic", stochastic)
        self.separable = check_bool("separable", separable)
        self.convs = [
            (layers.SeparableConv2D if self.separable and i > 0 else layers.Conv2D)(
                m * self.width, 3, strides=s, padding="same", use_bias=False)
            for i, (m, s) in enumerate(_STAGES)
        ]
        # momentum 0.9 (PyTorch's 0.1): with Keras' 0.99 the moving variance stays
        # near its initial 1, far above the first layer's true variance (~0.005),
        # for hundreds of steps, and short runs classified at chance in inference.
        # (Starting it at zero instead overflows float16 in an untrained model.)
        self.norms = [layers.BatchNormalization(momentum=0.9) for _ in _STAGES]
        self.pool = layers.GlobalAveragePooling2D()
        self.mean = layers.Dense(2 * self.num_symbols)
        self.log_var = layers.Dense(2 * self.num_symbols) if self.stochastic else None

    @staticmethod
    def _image_shape(shape: Any) -> tuple:
        shape = tuple(shape)
        if len(shape) == 3:
            shape = shape + (1,)
        if len(shape) != 4:
            raise ValueError(
                "SemanticEncoder expects images [batch, height, width, channels] or "
                f"[batch, height, width]; got shape {shape}."
            )
        return shape

    def build(self, input_shape: Any) -> None:
        shape = self._image_shape(input_shape)
        if self.pre_pool is not None:
            shape = self.pre_pool.compute_output_shape(shape)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)
        shape = self.pool.compute_output_shape(shape)
        self.mean.build(shape)
        if self.stochastic:
            self.log_var.build(shape)
        self.built = True

    def call(self, images: Any, training: bool | None = None) -> Any:
        self._image_shape(images.shape)
        if len(images.shape) == 3:
            images = ops.expand_dims(images, -1)
        h = images if self.pre_pool is None else self.pre_pool(images)
        if torch_conv is not None and torch_conv.supported(h, self.convs, self.norms, training):
            # the same layers in torch's own kernels: about half the step (torch_conv)
            h = torch_conv.conv_stack(h, self.convs, self.norms, training)
        else:
            for conv, norm in zip(self.convs, self.norms, strict=True):
                h = ops.relu(norm(conv(h), training=training))
        h = self.pool(h)
        return self.mean(h), (self.log_var(h) if self.stochastic else None)

    def compute_output_spec(self, images: Any, training: bool | None = None) -> Any:
        shape = (self._image_shape(images.shape)[0], 2 * self.num_symbols)
        spec = keras.KerasTensor(shape, dtype=self.compute_dtype)
        return spec, (keras.KerasTensor(shape, dtype=self.compute_dtype)
                      if self.stochastic else None)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_symbols": self.num_symbols,
            "width": self.width,
            "stochastic": self.stochastic,
            "downsample": self.downsample,
            "separable": self.separable,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SemanticEncoder:
        # 0.4 encoders sampled by themselves: their noise seed and inference flag now
        # belong to the link (TaskOrientedLink.transmit's ``sample``)
        config = dict(config)
        config.pop("seed", None)
        if config.pop("sample_at_inference", False):
            warnings.warn(
                "This SemanticEncoder was saved by tosc-sionna 0.4 with sample_at_inference="
                "True; since 0.5 the encoder returns (mu, log_var) and the link samples: call "
                "link(x, sample=True) (or accuracy_vs_snr(..., sample_encoder=True)) to "
                "evaluate the sampling encoder.", stacklevel=2)
        return cls(**config)
