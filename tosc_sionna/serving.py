"""The transmitter and the receiver as they run on a device: deterministic, traced, exportable.

A trained :class:`~tosc_sionna.link.TaskOrientedLink` splits into its two
ends. :func:`transmitter` and :func:`receiver` give plain callables over
the link's own ``transmit`` and ``receive`` (inference: a stochastic
encoder sends its mean); :func:`traced` compiles one for a fixed input signature, so a
call costs one graph execution instead of a Python walk over the layers
(at batch 1 the difference is most of the latency); :func:`export_onnx`
writes each end as an ONNX model that ONNX Runtime runs without Python
training code, on both Sionna lines; :func:`export_link` writes both ends as
endpoints of one SavedModel (Keras ``ExportArchive``) for TensorFlow
Serving, TFLite conversion or ``tf.saved_model.load`` (TensorFlow line).

Neither end contains the channel: both are real-valued Keras layers, which
is why they export on either backend (ONNX export goes through Keras'
``Model.export(format="onnx")``: ``torch.onnx`` on torch, ``tf2onnx`` on
TensorFlow).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .link import TaskOrientedLink


def transmitter(link: TaskOrientedLink) -> Callable[[Any, Any], Any]:
    """``(images [B, H, W, C], snr_db [B]) -> symbols [B, 2n]`` (power-normalized)."""

    def transmit(images: Any, snr_db: Any) -> Any:
        return link.transmit(images, snr_db, training=False, sample=False)

    return transmit


def receiver(link: TaskOrientedLink) -> Callable[..., Any]:
    """``(y [B, 2n], snr_db [B](, noise [B, n])) -> logits [B, classes]``; ``noise``
    (the equalizer's effective noise per symbol) only when the link's receiver
    uses it (``link.rx_cam.use_noise``)."""

    def receive(y: Any, snr_db: Any, noise: Any = None) -> Any:
        return link.receive(y, snr_db, noise, training=False)

    return receive


def _require_tensorflow(what: str) -> None:
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            f"{what} is TensorFlow's (the Sionna 1.2 line); on the {keras.backend.backend()} "
            "line use tosc_sionna.serving.export_onnx (both ends as ONNX models) or the eager "
            "transmitter()/receiver()."
        )


def _signatures(link: TaskOrientedLink, input_shape: Sequence[int]) -> dict[str, list]:
    import tensorflow as tf

    symbols = 2 * int(link.encoder.num_symbols)
    receive = [tf.TensorSpec((None, symbols), tf.float32, name="y"),
               tf.TensorSpec((None,), tf.float32, name="snr_db")]
    if link.rx_cam.use_noise:
        receive.append(tf.TensorSpec((None, symbols // 2), tf.float32, name="noise"))
    return {
        "transmit": [tf.TensorSpec((None, *map(int, input_shape)), tf.float32, name="images"),
                     tf.TensorSpec((None,), tf.float32, name="snr_db")],
        "receive": receive,
    }


def traced(link: TaskOrientedLink, input_shape: Sequence[int]) -> tuple[Callable, Callable]:
    """The transmitter and receiver compiled for a fixed signature (any batch size):
    ``input_shape`` is one image's ``(H, W, C)``. Same outputs as the eager ones.

    On the torch line the ends stay eager (Keras' torch backend runs eagerly)
    and run without autograd bookkeeping (``torch.no_grad``; not
    ``inference_mode``, whose tensors cannot enter an autograd-recording call
    later, e.g. the eager receiver).
    """
    if keras.backend.backend() == "torch":
        import torch

        tx, rx = transmitter(link), receiver(link)
        return torch.no_grad()(tx), torch.no_grad()(rx)
    import tensorflow as tf

    signatures = _signatures(link, input_shape)
    return (tf.function(transmitter(link), input_signature=signatures["transmit"]),
            tf.function(receiver(link), input_signature=signatures["receive"]))


def export_link(link: TaskOrientedLink, path: str | os.PathLike,
                input_shape: Sequence[int]) -> Path:
    """Write a SavedModel with endpoints ``transmit(images, snr_db)`` and
    ``receive(y, snr_db[, noise])`` (float32, any batch size) to ``path``.

    Load it anywhere TensorFlow runs: ``m = tf.saved_model.load(path);
    symbols = m.transmit(images, snr_db)``. TensorFlow line only (see
    :func:`export_onnx` for both lines).
    """
    _require_tensorflow("export_link (a SavedModel)")
    archive = keras.export.ExportArchive()
    archive.track(link)
    signatures = _signatures(link, input_shape)
    archive.add_endpoint("transmit", transmitter(link), input_signature=signatures["transmit"])
    archive.add_endpoint("receive", receiver(link), input_signature=signatures["receive"])
    archive.write_out(str(path), verbose=False)
    return Path(path)


class _End(keras.layers.Layer):
    """One end of a link as a layer (tracking the link's weights), for a functional model."""

    def __init__(self, link: TaskOrientedLink, end: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.link = link
        self.end = end

    def call(self, *inputs: Any) -> Any:
        if self.end == "transmitter":
            return self.link.transmit(*inputs, training=False, sample=False)
        return self.link.receive(*inputs, training=False)


def end_models(link: TaskOrientedLink, input_shape: Sequence[int]) -> dict[str, keras.Model]:
    """The transmitter and the receiver as functional Keras models (inference mode).

    ``"transmitter"``: inputs ``images [B, H, W, C]`` and ``snr_db [B]``, output
    the power-normalized symbols ``[B, 2n]``. ``"receiver"``: inputs
    ``y [B, 2n]``, ``snr_db [B]`` (and ``noise [B, n]`` when
    ``link.rx_cam.use_noise``), output the logits. Their weights are the link's.
    """
    symbols = 2 * int(link.encoder.num_symbols)
    images = keras.Input(tuple(int(d) for d in input_shape), name="images")
    tx_snr = keras.Input((), name="snr_db")
    y = keras.Input((symbols,), name="y")
    rx_snr = keras.Input((), name="snr_db")
    rx_inputs = [y, rx_snr]
    if link.rx_cam.use_noise:
        rx_inputs.append(keras.Input((symbols // 2,), name="noise"))
    tx = _End(link, "transmitter", name="transmitter")
    rx = _End(link, "receiver", name="receiver")
    return {
        "transmitter": keras.Model([images, tx_snr], tx(images, tx_snr), name="transmitter"),
        "receiver": keras.Model(rx_inputs, rx(*rx_inputs), name="receiver"),
    }


def export_onnx(link: TaskOrientedLink, directory: str | os.PathLike,
                input_shape: Sequence[int]) -> dict[str, Path]:
    """Write ``transmitter.onnx`` and ``receiver.onnx`` (float32, any batch size).

    Inputs are named as in :func:`end_models`. Run them with ONNX Runtime::

        import onnxruntime as ort
        tx = ort.InferenceSession("transmitter.onnx")
        symbols = tx.run(None, {"images": images, "snr_db": snr_db})[0]

    Needs ``onnx`` and ``onnxruntime`` (and ``tf2onnx`` on the TensorFlow
    line): ``pip install 'tosc-sionna[onnx]'``. Returns the two paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for end, model in end_models(link, input_shape).items():
        # Keras exports only a model that has run once
        model([np.zeros((1, *map(int, i.shape[1:])), np.float32) for i in model.inputs])
        path = directory / f"{end}.onnx"
        try:
            model.export(str(path), format="onnx", verbose=False)
        except ImportError as err:
            raise ImportError(
                f"ONNX export needs onnx and onnxruntime (and tf2onnx on TensorFlow): "
                f"pip install 'tosc-sionna[onnx]' ({err})"
            ) from err
        paths[end] = path
    return paths


def multiply_accumulates(link: TaskOrientedLink, input_shape: Sequence[int]) -> dict[str, int]:
    """Multiply-accumulates per example of each end of a link (the student's cost).

    Counted analytically from the layers' shapes: every convolution of the
    encoder (a depthwise-separable one as its 3x3 depthwise filter plus its
    1x1 pointwise mix) at its output resolution, and every dense layer of
    the encoder, the channel-adaptive modules and the decoder (``inputs x
    outputs``). Normalization, activations, pooling and the channel are
    left out (a few operations per value, not per weight).

    Parameters
    ----------
    link : TaskOrientedLink
        A built link whose encoder is a :class:`~tosc_sionna.SemanticEncoder`.
    input_shape : (H, W, C)
        One example's image shape.

    Output
    ------
    dict
        ``transmitter``, ``receiver`` and ``link`` (their sum), ints.
    """

    def dense(layer: keras.layers.Layer) -> int:
        return sum(int(math.prod(d.kernel.shape)) for d in layer._flatten_layers()
                   if isinstance(d, keras.layers.Dense))

    shape = (1, *tuple(input_shape))
    encoder = link.encoder
    if getattr(encoder, "pre_pool", None) is not None:
        shape = encoder.pre_pool.compute_output_shape(shape)
    conv = 0
    for layer in encoder.convs:
        out = layer.compute_output_shape(shape)
        pixels = int(out[1] * out[2])
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw, cin, multiplier = layer.depthwise_kernel.shape
            conv += pixels * (kh * kw * cin * multiplier + int(math.prod(
                layer.pointwise_kernel.shape)))
        else:
            conv += pixels * int(math.prod(layer.kernel.shape))
        shape = out
    tx = conv + dense(encoder) + dense(link.tx_cam)
    rx = dense(link.rx_cam) + dense(link.decoder)
    return {"transmitter": tx, "receiver": rx, "link": tx + rx}
