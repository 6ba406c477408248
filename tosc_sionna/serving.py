"""The transmitter and the receiver as they run on a device: deterministic, traced, exportable.

A trained :class:`~tosc_sionna.link.TaskOrientedLink` splits into its two
ends. :func:`transmitter` and :func:`receiver` give plain callables over
the link's own ``transmit`` and ``receive`` (inference: a stochastic
encoder sends its mean); :func:`traced` compiles one for a fixed input signature, so a
call costs one graph execution instead of a Python walk over the layers
(at batch 1 the difference is most of the latency); :func:`export_link`
writes both ends as endpoints of one SavedModel (Keras ``ExportArchive``)
that TensorFlow Serving, TFLite conversion or ``tf.saved_model.load`` run
without this package.

The tracing and export are the TensorFlow backend's (the backend this
package runs on with Sionna 1.2.x); everything else is ``keras.ops``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras

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
    ``input_shape`` is one image's ``(H, W, C)``. Same outputs as the eager ones."""
    import tensorflow as tf

    signatures = _signatures(link, input_shape)
    return (tf.function(transmitter(link), input_signature=signatures["transmit"]),
            tf.function(receiver(link), input_signature=signatures["receive"]))


def export_link(link: TaskOrientedLink, path: str | os.PathLike,
                input_shape: Sequence[int]) -> Path:
    """Write a SavedModel with endpoints ``transmit(images, snr_db)`` and
    ``receive(y, snr_db[, noise])`` (float32, any batch size) to ``path``.

    Load it anywhere TensorFlow runs: ``m = tf.saved_model.load(path);
    symbols = m.transmit(images, snr_db)``.
    """
    archive = keras.export.ExportArchive()
    archive.track(link)
    signatures = _signatures(link, input_shape)
    archive.add_endpoint("transmit", transmitter(link), input_signature=signatures["transmit"])
    archive.add_endpoint("receive", receiver(link), input_signature=signatures["receive"])
    archive.write_out(str(path), verbose=False)
    return Path(path)


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
