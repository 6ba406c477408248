"""The information-bottleneck distillation loss (``keras.ops`` only).

    alpha * mean_labelled CE(y, q) + (1 - alpha) * mean_all tau^2 * KL(p_T^tau || q^tau)
    + beta * rate [+ gamma * mean_all (1 - cos(W h, f_T))]

The first two terms are :class:`IBDistillationLoss`; the rate term
:func:`gaussian_rate` (a scale-free upper bound on the encoder latent's
I(X;U), nats per example) needs the stochastic encoder's ``(mu, log_var)``;
the optional feature term :func:`feature_distance` matches a projection of
the receiver's last hidden layer to the teacher's pooled features. The
link adds the last two (:class:`~tosc_sionna.TaskOrientedLink`). The
derivation is in ``docs/theory.md``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# Floor on probabilities before a log: cached top-k reconstructions are
# strictly positive, but a label-smoothed or clipped one may hold zeros.
_PROB_FLOOR = 1e-12
# Floor on the prior variance before a log (float32's smallest normal is 1.2e-38).
_VAR_FLOOR = 1e-30
# Floor on a squared vector norm before normalizing (an all-zero vector reads cos = 0).
_NORM_FLOOR = 1e-12


def temper(probs: Any, temperature: float) -> Any:
    """``p^tau``: the distribution at temperature tau, from probabilities.

    For ``p = softmax(z)``, ``softmax(z / tau) = p^(1/tau) / sum p^(1/tau)``, so
    the cached (reconstructed) teacher probabilities suffice: no logits needed.
    """
    log_p = ops.log(ops.maximum(probs, _PROB_FLOOR)) / temperature
    return ops.softmax(log_p, axis=-1)


def is_labelled(labels: Any) -> Any:
    """Boolean ``[batch]``: which rows carry a label (unlabelled rows hold a negative one)."""
    return ops.cast(labels, "int32") >= 0


def label_cross_entropy(labels: Any, logits: Any) -> Any:
    """Per-example ``CE(y, softmax(logits))``; 0 where the label is negative (unlabelled)."""
    labels = ops.cast(labels, "int32")
    known = is_labelled(labels)
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


def feature_distance(student: Any, teacher: Any) -> Any:
    r"""Per-example ``1 - cos(s, t)``: half the squared distance of the unit vectors.

    .. math::
        \frac{1}{2} \left\| \frac{s}{\|s\|} - \frac{t}{\|t\|} \right\|^2
        = 1 - \frac{s \cdot t}{\|s\| \|t\|} \in [0, 2]

    Scale-free in both arguments, so neither the teacher's feature scale nor
    the student's projection scale sets the term's weight. Computed in float32.

    Input
    -----
    student : [batch, D], float
        The student's projected features.
    teacher : [batch, D], float
        The teacher's pooled features (the cache's ``teacher/features``).

    Output
    ------
    : [batch], float32
    """
    def unit(v: Any) -> Any:
        # each vector on its own, floored as keras.ops.normalize does: a zero vector
        # stays zero (cos reads 0) with a finite gradient
        v = ops.cast(v, "float32")
        return v * ops.rsqrt(ops.maximum(ops.sum(v * v, axis=-1, keepdims=True), _NORM_FLOOR))

    return 1.0 - ops.sum(unit(student) * unit(teacher), axis=-1)


def gaussian_rate(mu: Any, log_var: Any) -> Any:
    r"""Scale-free upper bound on ``I(X;U)`` of a diagonal Gaussian encoder, in nats per example.

    The encoder's latent ``U ~ N(mu(x), diag exp(log_var(x)))`` is bounded
    against the best diagonal Gaussian prior ``N(0, diag s^2)``, with
    ``s_j^2 = E_x[mu_j^2 + sigma_j^2]`` estimated over the batch:

    .. math::
        \frac{1}{2} \sum_{j=1}^{2n} \left[\ln E_x(\mu_j^2 + \sigma_j^2)
        - E_x \ln \sigma_j^2\right]

    It is invariant to a common scale ``c`` of ``(mu, sigma)`` (which the
    power normalization and the channel-adaptive module absorb), unlike
    ``KL(N(mu, sigma^2) || N(0, I))``, and it is >= 0 (Jensen). Computed in
    float32 whatever the inputs' dtype. See ``docs/theory.md``.

    Input
    -----
    mu : [batch, 2n], float
        Means of the encoder's latent (2n real dimensions = n complex symbols).
    log_var : [batch, 2n], float
        Log-variances ``ln sigma^2``.

    Output
    ------
    : scalar, float32
        The bound in nats per example (summed over the 2n real dimensions,
        averaged over the batch).
    """
    mu = ops.cast(mu, "float32")
    log_var = ops.cast(log_var, "float32")
    second_moment = ops.mean(ops.square(mu) + ops.exp(log_var), axis=0)  # s_j^2
    # floor: exp(log_var) may underflow to 0 in float32 for log_var < -87
    log_s2 = ops.log(ops.maximum(second_moment, _VAR_FLOOR))
    return 0.5 * ops.sum(log_s2 - ops.mean(log_var, axis=0))


def standard_normal_kl(mu: Any, log_var: Any) -> Any:
    """Per-example ``KL(N(mu, exp(log_var)) || N(0, I))`` in nats (not scale-free).

    The bound of the fixed prior ``N(0, I)``; kept for comparison with
    :func:`gaussian_rate`, which the link uses.
    """
    mu = ops.cast(mu, "float32")
    log_var = ops.cast(log_var, "float32")
    return 0.5 * ops.sum(ops.square(mu) + ops.exp(log_var) - 1.0 - log_var, axis=-1)


@keras.saving.register_keras_serializable(package="tosc_sionna")
class IBDistillationLoss(keras.losses.Loss):
    r"""``alpha * CE(y, q) + (1 - alpha) * tau^2 * KL(p_T^tau || q^tau)``, CE over labelled rows.

    With Keras' default reduction (the mean over the batch) the loss of a
    batch is

    .. math::
        \alpha \, \frac{1}{\max(L, 1)} \sum_{i \,\mathrm{labelled}} \mathrm{CE}_i
        + (1 - \alpha) \, \frac{1}{B} \sum_{i=1}^{B} \tau^2 \mathrm{KL}_i

    for ``L`` labelled rows among ``B``: the label term is averaged over the
    labelled rows only (a batch without labels contributes zero), so its
    weight does not shrink with the labelled fraction; the distillation
    term is averaged over all rows. To get this from a per-example loss,
    :meth:`call` scales each labelled row's CE by ``B / max(L, 1)``; its
    per-example values (``reduction=None``) are therefore not per-example
    losses on their own, and a ``sample_weight`` reweights them as given.

    Parameters
    ----------
    alpha : float, (default 0.5)
        Weight of the label term; ``1 - alpha`` weighs the distillation term
        (on labelled and unlabelled rows alike).
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
    : scalar (mean over the batch, Keras' default reduction), nats
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
        labelled = ops.cast(is_labelled(y_true[:, 0]), ce.dtype)
        batch = ops.cast(ops.shape(ce)[0], ce.dtype)
        scale = batch / ops.maximum(ops.sum(labelled), 1.0)
        return self.alpha * scale * ce + (1.0 - self.alpha) * kd

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="tosc_sionna")
def label_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Per-example top-1 correctness against column 0 of ``[label, teacher...]`` targets.

    Unlabelled rows (negative label) read 0 here; :class:`LabelledMean`
    leaves them out of the average.
    """
    labels = ops.cast(y_true[:, 0], "int32")
    return ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels), "float32")


@keras.saving.register_keras_serializable(package="tosc_sionna")
def ce_term(y_true: Any, y_pred: Any) -> Any:
    """Per-example ``CE(y, q)`` against column 0 of the targets (0 if unlabelled)."""
    return label_cross_entropy(y_true[:, 0], y_pred)


@keras.saving.register_keras_serializable(package="tosc_sionna")
def kd_term(y_true: Any, y_pred: Any, temperature: float = 4.0) -> Any:
    """The distillation term of :class:`IBDistillationLoss`, per example."""
    return distillation_kl(y_true[:, 1:], y_pred, temperature)


_LABELLED_FNS = {"accuracy": label_accuracy, "ce": ce_term}


@keras.saving.register_keras_serializable(package="tosc_sionna")
class LabelledMean(keras.metrics.Metric):
    r"""Mean of a per-example quantity over the labelled rows only.

    Accumulates the sum over labelled rows (label ``>= 0`` in column 0 of
    ``y_true``) and their count, across batches; a batch without labels
    leaves the result unchanged. Reads 0 before any labelled row is seen.

    Parameters
    ----------
    kind : "accuracy" | "ce"
        Top-1 accuracy, or the cross-entropy ``CE(y, q)`` (nats).
    name : str or None, (default None)
        Metric name; default ``kind``.

    Input
    -----
    y_true : [batch, 1 + C], float
        Column 0 the label (negative: unlabelled), then the teacher distribution.
    y_pred : [batch, C], float
        Student logits.
    sample_weight : None
        Not supported (the labelled rows are the weights).

    Output
    ------
    : scalar, float32
        ``result()``: the mean over the labelled rows seen since the last reset.
    """

    def __init__(self, kind: str = "accuracy", name: str | None = None, **kwargs: Any) -> None:
        if kind not in _LABELLED_FNS:
            raise ValueError(f"kind must be one of {sorted(_LABELLED_FNS)}; got {kind!r}.")
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                       name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                       name="count")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if sample_weight is not None:
            raise ValueError("LabelledMean does not take sample_weight.")
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        labelled = ops.cast(is_labelled(y_true[:, 0]), "float32")
        values = ops.cast(_LABELLED_FNS[self.kind](y_true, y_pred), "float32")
        self.total.assign_add(ops.sum(values * labelled))
        self.count.assign_add(ops.sum(labelled))

    def result(self) -> Any:
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind}


def ib_metrics(loss: IBDistillationLoss) -> list[Any]:
    """Metrics reporting each term of ``loss`` during ``fit``/``evaluate``.

    ``ce`` (nats) and ``accuracy`` are means over the labelled rows only
    (:class:`LabelledMean`); ``kd`` (nats, ``tau^2``-scaled) is the mean over
    all rows. Pass them to ``compile(metrics=...)``. (The ``rate`` term is
    reported by :class:`~tosc_sionna.TaskOrientedLink` itself.)
    """
    return [
        LabelledMean("ce"),
        keras.metrics.MeanMetricWrapper(kd_term, name="kd", temperature=loss.temperature),
        LabelledMean("accuracy"),
    ]
