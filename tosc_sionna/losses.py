"""The information-bottleneck distillation loss (``keras.ops`` only).

    alpha * CE(y, q) + (1 - alpha) * tau^2 * KL(p_T^tau || q^tau)
    + beta * KL(N(mu, sigma^2) || N(0, I))

The first two terms are :class:`IBDistillationLoss`; the rate term
:func:`gaussian_rate` needs the stochastic encoder's ``(mu, log_var)``.
The derivation is in ``docs/theory.md``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# Floor on probabilities before a log: cached top-k reconstructions are
# strictly positive, but a label-smoothed or clipped one may hold zeros.
_PROB_FLOOR = 1e-12


def temper(probs: Any, temperature: float) -> Any:
    """``p^tau``: the distribution at temperature tau, from probabilities.

    For ``p = softmax(z)``, ``softmax(z / tau) = p^(1/tau) / sum p^(1/tau)``, so
    the cached (reconstructed) teacher probabilities suffice: no logits needed.
    """
    log_p = ops.log(ops.maximum(probs, _PROB_FLOOR)) / temperature
    return ops.softmax(log_p, axis=-1)


def label_cross_entropy(labels: Any, logits: Any) -> Any:
    """Per-example ``CE(y, softmax(logits))``; 0 where the label is negative (unlabelled)."""
    labels = ops.cast(labels, "int32")
    known = labels >= 0
    safe = ops.where(known, labels, ops.zeros_like(labels))
    ce = keras.losses.sparse_categorical_crossentropy(safe, logits, from_logits=True)
    return ops.where(known, ce, ops.zeros_like(ce))


def distillation_kl(teacher_probs: Any, logits: Any, temperature: float) -> Any:
    """Per-example ``tau^2 * KL(p_T^tau || softmax(logits / tau))``."""
    logits = ops.convert_to_tensor(logits)
    p = temper(ops.cast(teacher_probs, logits.dtype), temperature)
    log_q = ops.log_softmax(logits / temperature, axis=-1)
    log_p = ops.log(ops.maximum(p, _PROB_FLOOR))
    return temperature**2 * ops.sum(p * (log_p - log_q), axis=-1)


def gaussian_rate(mu: Any, log_var: Any) -> Any:
    """Per-example ``KL(N(mu, exp(log_var)) || N(0, I))`` in nats (the I(X;Z) bound)."""
    return 0.5 * ops.sum(ops.square(mu) + ops.exp(log_var) - 1.0 - log_var, axis=-1)


@keras.saving.register_keras_serializable(package="tosc_sionna")
class IBDistillationLoss(keras.losses.Loss):
    r"""``alpha * CE(y, q) + (1 - alpha) * tau^2 * KL(p_T^tau || q^tau)`` per example.

    Parameters
    ----------
    alpha : float, (default 0.5)
        Weight of the label term; ``1 - alpha`` weighs the distillation term.
    temperature : float, (default 4.0)
        Distillation temperature tau (> 0).

    Input
    -----
    y_true : [batch, 1 + C], float
        Column 0 the label (negative: unlabelled, only distillation counts),
        columns 1..C the teacher distribution, as
        :class:`~tosc_sionna.data.TeacherCacheDataset` yields them.
    y_pred : [batch, C], float
        Student logits.

    Output
    ------
    : scalar (mean over the batch, Keras' default reduction)
    """

    def __init__(self, alpha: float = 0.5, temperature: float = 4.0,
                 name: str = "ib_distillation", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1]; got {alpha}.")
        if not float(temperature) > 0.0:
            raise ValueError(f"temperature must be > 0; got {temperature}.")
        self.alpha = float(alpha)
        self.temperature = float(temperature)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if y_true.shape[-1] is not None and y_pred.shape[-1] is not None and (
            y_true.shape[-1] != y_pred.shape[-1] + 1
        ):
            raise ValueError(
                f"y_true must be [batch, 1 + C] (label, teacher distribution) for logits "
                f"[batch, C]; got {tuple(y_true.shape)} and {tuple(y_pred.shape)}."
            )
        ce = label_cross_entropy(y_true[:, 0], y_pred)
        kd = distillation_kl(y_true[:, 1:], y_pred, self.temperature)
        return self.alpha * ce + (1.0 - self.alpha) * kd

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="tosc_sionna")
def label_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Per-example top-1 correctness against column 0 of ``[label, teacher...]`` targets."""
    labels = ops.cast(y_true[:, 0], "int32")
    return ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels), "float32")


@keras.saving.register_keras_serializable(package="tosc_sionna")
def ce_term(y_true: Any, y_pred: Any) -> Any:
    """The label term of :class:`IBDistillationLoss`, per example (0 if unlabelled)."""
    return label_cross_entropy(y_true[:, 0], y_pred)


@keras.saving.register_keras_serializable(package="tosc_sionna")
def kd_term(y_true: Any, y_pred: Any, temperature: float = 4.0) -> Any:
    """The distillation term of :class:`IBDistillationLoss`, per example."""
    return distillation_kl(y_true[:, 1:], y_pred, temperature)


def ib_metrics(loss: IBDistillationLoss) -> list[Any]:
    """Metrics reporting each term of ``loss`` during ``fit``: ``ce``, ``kd``, ``accuracy``.

    Pass them to ``compile(metrics=...)``; ``ce`` counts unlabelled rows as 0.
    (The ``rate`` term is reported by :class:`~tosc_sionna.TaskOrientedLink` itself.)
    """
    return [
        keras.metrics.MeanMetricWrapper(ce_term, name="ce"),
        keras.metrics.MeanMetricWrapper(kd_term, name="kd", temperature=loss.temperature),
        keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy"),
    ]
