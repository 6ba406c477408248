"""What the benchmarks do differently on the two Sionna lines, written once.

Sionna 1.2 runs on TensorFlow (Keras' ``tensorflow`` backend), Sionna 2.x on
PyTorch (Keras' ``torch`` backend); ``import tosc_sionna`` picks the backend
from the installed Sionna (:mod:`tosc_sionna.line`), so this module imports it
before Keras. Unlike the rest of :mod:`benchmarks.common` it imports Keras (and,
inside its functions, TensorFlow or torch): a benchmark imports it as
``from benchmarks.common import backend``.

* :func:`compiled`: a function as the line runs it fastest (``tf.function`` on
  TensorFlow; the function itself on torch, where Keras runs eagerly);
* :func:`inference`: the same without autograd bookkeeping on torch
  (``torch.no_grad``), as :func:`tosc_sionna.serving.traced` does;
* :func:`gradient_step`: forward and gradient with respect to one variable
  (``tf.function`` + ``GradientTape``; torch autograd);
* :func:`exported_ends`: a link's two ends exported and reloaded (SavedModel on
  TensorFlow; ONNX models in ONNX Runtime on torch, where there is no SavedModel);
* :func:`tensor`, :func:`variable`, :func:`to_numpy`, :func:`set_threads`;
* :func:`line`: the line this process runs (Keras backend, Sionna and the
  backend's versions), for a results file.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import tosc_sionna  # noqa: F401  (before Keras: it picks Keras' backend from the Sionna line)

# isort: split
import keras
import numpy as np

#: Keras' backend in this process: ``"tensorflow"`` or ``"torch"``
BACKEND = keras.backend.backend()
TENSORFLOW = BACKEND == "tensorflow"


def _version(*distributions: str) -> str | None:
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def line() -> dict[str, Any]:
    """``{"keras_backend", "sionna", "keras", <backend>, "omp_wait_policy", "malloc_tuned"}``:
    the line this process runs, with the versions that make it (``<backend>`` is
    ``tensorflow`` or ``torch``), OpenMP's wait policy (``"unset"``: torch's default, its
    threads spin briefly) and whether ``tosc_sionna`` tuned glibc's allocator (torch line,
    :mod:`tosc_sionna.backends.torch_malloc`)."""
    from tosc_sionna.backends import torch_malloc

    return {"keras_backend": BACKEND, "sionna": _version("sionna-no-rt", "sionna"),
            "keras": keras.__version__, BACKEND: _version(BACKEND),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or "unset",
            "malloc_tuned": torch_malloc.TUNED}


def compiled(fn: Callable, input_signature: Sequence | None = None) -> Callable:
    """``fn`` compiled as this line runs it fastest: ``tf.function`` on TensorFlow (with
    ``input_signature``, a list of ``(shape, dtype)`` pairs, if given); ``fn`` itself on
    torch (Keras' torch backend runs eagerly)."""
    if not TENSORFLOW:
        return fn
    import tensorflow as tf

    signature = None if input_signature is None else [
        tf.TensorSpec(shape, dtype) for shape, dtype in input_signature]
    return tf.function(fn, input_signature=signature)


def inference(fn: Callable, input_signature: Sequence | None = None) -> Callable:
    """``fn`` for inference: :func:`compiled` on TensorFlow; under ``torch.no_grad``
    on torch (no autograd bookkeeping), as :func:`tosc_sionna.serving.traced`."""
    if TENSORFLOW:
        return compiled(fn, input_signature)
    import torch

    return torch.no_grad()(fn)


def tensor(x: Any, dtype: str = "float32") -> Any:
    """``x`` as a tensor of this line (on Keras' device)."""
    return keras.ops.convert_to_tensor(np.asarray(x), dtype=dtype)


def variable(x: Any) -> Any:
    """A trainable tensor holding ``x`` (float32), to differentiate with respect to."""
    x = np.asarray(x, np.float32)
    if TENSORFLOW:
        import tensorflow as tf

        return tf.Variable(x)
    import torch

    return torch.tensor(x, requires_grad=True)


def gradient_step(loss: Callable[[Any], Any], x: Any) -> Callable[[], Any]:
    """A step returning ``d loss(x) / dx`` (``x`` from :func:`variable`): ``tf.function``
    over a ``GradientTape`` on TensorFlow, torch autograd on torch."""
    if TENSORFLOW:
        import tensorflow as tf

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                value = loss(x)
            return tape.gradient(value, x)

        return step
    import torch

    def step():
        (grad,) = torch.autograd.grad(loss(x), x)
        return grad

    return step


def weights_gradient_step(loss: Callable[[], Any], weights: Sequence[Any]) -> Callable[[], Any]:
    """A step returning the gradients of ``loss()`` with respect to Keras ``weights``:
    ``tf.function`` over a ``GradientTape`` on TensorFlow, torch autograd on torch."""
    if TENSORFLOW:
        import tensorflow as tf

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                value = loss()
            return tape.gradient(value, list(weights))

        return step
    import torch

    values = [w.value for w in weights]

    def step():
        return torch.autograd.grad(loss(), values)

    return step


def to_numpy(x: Any) -> np.ndarray:
    """A tensor of either line (or an array) as a NumPy array, detached."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return keras.ops.convert_to_numpy(x)


def set_threads(threads: int) -> bool:
    """Run this line's ops on ``threads`` CPU threads (TensorFlow's intra- and inter-op
    pools, torch's pool; torch also on the TensorFlow line, where a teacher runs on it).
    False where TensorFlow had already started and kept its own (main called in-process)."""
    import torch

    torch.set_num_threads(threads)
    if not TENSORFLOW:
        return True
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already runs in this process
        return False
    return True


class Exported(NamedTuple):
    """A link's two ends exported and reloaded (:func:`exported_ends`)."""

    #: ``transmit(images, snr_db) -> symbols``, on inputs made by :attr:`inputs`
    transmit: Callable
    #: ``receive(y, snr_db) -> logits``, on inputs made by :attr:`inputs`
    receive: Callable
    #: what the ends take, made once from this line's tensors (or arrays)
    inputs: Callable[[Any], Any]
    #: which export, for a results file
    what: str


def exported_ends(link: Any, directory: str | Path, input_shape: Sequence[int],
                  threads: int) -> Exported:
    """A link's two ends exported and reloaded. TensorFlow: the SavedModel of
    :func:`tosc_sionna.serving.export_link`, loaded with ``tf.saved_model.load``, called on
    tensors; torch (no SavedModel there): the ONNX models of
    :func:`tosc_sionna.serving.export_onnx` in ONNX Runtime sessions on ``threads``
    threads, called on NumPy arrays. A receiver without a noise input only."""
    from tosc_sionna import serving

    if link.rx_cam.use_noise:
        raise NotImplementedError("exported_ends: a receiver with a noise input")
    directory = Path(directory)
    if TENSORFLOW:
        import tensorflow as tf

        model = tf.saved_model.load(str(serving.export_link(link, directory, input_shape)))
        # the closures keep the loaded model (and its variables) alive
        return Exported(lambda images, snr_db: model.transmit(images, snr_db),
                        lambda y, snr_db: model.receive(y, snr_db), lambda x: tensor(x),
                        "SavedModel (serving.export_link, tf.saved_model.load)")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    paths = serving.export_onnx(link, directory / "onnx", input_shape)
    tx, rx = (ort.InferenceSession(str(paths[end]), options, providers=["CPUExecutionProvider"])
              for end in ("transmitter", "receiver"))
    return Exported(lambda images, snr_db: tx.run(None, {"images": images, "snr_db": snr_db})[0],
                    lambda y, snr_db: rx.run(None, {"y": y, "snr_db": snr_db})[0],
                    lambda x: np.ascontiguousarray(to_numpy(x), np.float32),
                    f"ONNX (serving.export_onnx, onnxruntime {ort.__version__}, "
                    f"{threads} threads)")
