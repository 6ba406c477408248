"""The information-bottleneck distillation loss (``keras.ops`` only).

    alpha * mean_labelled CE(y, q) + (1 - alpha) * mean_all tau^2 * KL(p_T^tau || q^tau)
    + beta * rate [+ gamma * mean_all (1 - cos(W h, f_T))]

The first two terms are :class:`IBDistillationLoss` (its distillation term
alone is :class:`SoftLabelDistillation`, a ``keras.distillation.DistillationLoss``
for Keras' own ``Distiller``); the rate term :func:`gaussian_rate` (a
scale-free upper bound on the encoder latent's I(X;U), nats per example)
needs the stochastic encoder's ``(mu, log_var)``; the optional feature term
:func:`feature_distance` matches a projection of the receiver's last hidden
layer to the teacher's pooled features. The trainer adds all of them
(:class:`~tosc_sionna.training.DistillationTrainer`); the link computes
outputs only. The derivation is in ``docs/theory.md``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# Floor on probabilities before a log: cached top-k reconstructions are
# strictly positive, but a label-smoothed or clipped one may hold zeros.
# The logs are taken in float32 whatever the inputs' dtype: in float16 this
# floor would round to 0 and the log to -inf.
PROB_FLOOR = 1e-12
# Floor on the prior variance before a log (float32's smallest normal is 1.2e-38).
_VAR_FLOOR = 1e-30
# Floor on a squared vector norm before normalizing (an all-zero vector reads cos = 0).
_NORM_FLOOR = 1e-12


def _at_least_float32(x: Any) -> Any:
    x = ops.convert_to_tensor(x)
    return ops.cast(x, "float32") if x.dtype in ("float16", "bfloat16") else x


def temper(probs: Any, temperature: float) -> Any:
    """``p^tau``: the distribution at temperature tau, from probabilities.

    For ``p = softmax(z)``, ``softmax(z / tau) = p^(1/tau) / sum p^(1/tau)``, so
    the cached (reconstructed) teacher probabilities suffice: no logits needed.
    Computed in the inputs' precision, float32 at least.
    """
    log_p = ops.log(ops.maximum(_at_least_float32(probs), PROB_FLOOR)) / temperature
    return ops.softmax(log_p, axis=-1)


def label_cross_entropy(labels: Any, logits: Any, labelled: Any = None) -> Any:
    """Per-example ``CE(y, softmax(logits))``, 0 where ``labelled`` is 0 or the label is
    negative (a row marked labelled without a label counts as unlabelled)."""
    labels = ops.cast(labels, "int32")
    known = labels >= 0
    if labelled is not None:
        known = ops.logical_and(known, ops.cast(labelled, "bool"))
    safe = ops.where(known, ops.maximum(labels, 0), ops.zeros_like(labels))
    ce = keras.losses.sparse_categorical_crossentropy(
        safe, ops.cast(logits, "float32"), from_logits=True)
    return ops.where(known, ce, ops.zeros_like(ce))


def distillation_kl(teacher_probs: Any, logits: Any, temperature: float) -> Any:
    """Per-example ``tau^2 * KL(p_T^tau || softmax(logits / tau))``, float32."""
    logits = ops.cast(logits, "float32")
    p = temper(ops.cast(teacher_probs, "float32"), temperature)
    log_q = ops.log_softmax(logits / temperature, axis=-1)
    log_p = ops.log(ops.maximum(p, PROB_FLOOR))
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


def _check_temperature(temperature: Any) -> float:
    if isinstance(temperature, bool) or not float(temperature) > 0.0 or \
            not float(temperature) < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0; got {temperature}.")
    return float(temperature)


#: The keys of a batch's targets (``TeacherCacheDataset(targets="kd")``).
TARGET_KEYS = ("label", "labelled", "teacher")


def check_targets(y_true: Any) -> None:
    """Raise a ``ValueError`` unless ``y_true`` is a dict with the target keys."""
    if not isinstance(y_true, dict) or not set(TARGET_KEYS) <= set(y_true):
        got = sorted(y_true) if isinstance(y_true, dict) else type(y_true).__name__
        raise ValueError(
            f"distillation targets must be a dict with keys {list(TARGET_KEYS)} (as "
            f"tosc_sionna.data.TeacherCacheDataset yields them); got {got}. (0.4 packed the "
            "label into column 0 of a float array: build the dict instead.)")


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
    The distillation term alone is :attr:`distillation`, a
    :class:`SoftLabelDistillation` (usable in ``keras.distillation.Distiller``).

    Parameters
    ----------
    alpha : float, (default 0.5)
        Weight of the label term; ``1 - alpha`` weighs the distillation term
        (on labelled and unlabelled rows alike).
    temperature : float, (default 4.0)
        Distillation temperature tau (> 0).

    Input
    -----
    y_true : dict
        ``"label"`` int ``[batch]``; ``"labelled"`` ``[batch]``, 1 where the
        label may be used, else 0; ``"teacher"`` ``[batch, C]``, the teacher
        distribution (as :class:`~tosc_sionna.data.TeacherCacheDataset` yields them).
    y_pred : [batch, C], float
        Student logits.

    Output
    ------
    : scalar (mean over the batch, Keras' default reduction), nats

    Example
    -------
    >>> loss = IBDistillationLoss(alpha=0.5, temperature=4.0)
    >>> loss({"label": [3], "labelled": [1.0], "teacher": p_teacher}, logits)
    """

    def __init__(self, alpha: float = 0.5, temperature: float = 4.0,
                 name: str = "ib_distillation", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1]; got {alpha}.")
        self.alpha = float(alpha)
        self.temperature = _check_temperature(temperature)

    def terms(self, y_true: dict, y_pred: Any) -> dict[str, Any]:
        """Per-example ``ce`` (0 where unlabelled) and ``kd``, and the ``labelled`` mask."""
        check_targets(y_true)
        if y_true["teacher"].shape[-1] is not None and y_pred.shape[-1] is not None and (
                y_true["teacher"].shape[-1] != y_pred.shape[-1]):
            raise ValueError(
                f"the teacher distribution has {y_true['teacher'].shape[-1]} classes but the "
                f"student's logits {y_pred.shape[-1]}.")
        labelled = ops.cast(y_true["labelled"], "float32")
        return {"ce": label_cross_entropy(y_true["label"], y_pred, labelled),
                "kd": self.distillation.per_example(y_true["teacher"], y_pred),
                "labelled": labelled}

    @property
    def distillation(self) -> SoftLabelDistillation:
        """The distillation term alone, on cached probabilities (a Keras ``DistillationLoss``)."""
        return SoftLabelDistillation(self.temperature, teacher="probabilities")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self.combine(self.terms(y_true, y_pred))

    def combine(self, terms: dict[str, Any]) -> Any:
        """The per-example loss from :meth:`terms` (see the class docstring for the scale)."""
        batch = ops.cast(ops.shape(terms["ce"])[0], "float32")
        scale = batch / ops.maximum(ops.sum(terms["labelled"]), 1.0)
        return self.alpha * scale * terms["ce"] + (1.0 - self.alpha) * terms["kd"]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="tosc_sionna")
class SoftLabelDistillation(keras.distillation.DistillationLoss):
    r"""``mean_batch tau^2 * KL(p_T^tau || softmax(z_S / tau))``: our distillation term as a
    ``keras.distillation.DistillationLoss``.

    With Keras' own ``keras.distillation.Distiller`` and an online Keras
    teacher, this is the distillation term of :class:`IBDistillationLoss`
    (which uses it with the cached ``teacher="probabilities"``); give the
    ``Distiller`` ``student_loss_weight=alpha`` for the label term. Unlike
    Keras' ``LogitsDistillation`` it takes cached probabilities as well as
    logits, and computes in float32 with a probability floor, so float16
    logits give a finite loss.

    Parameters
    ----------
    temperature : float, (default 4.0)
        tau (> 0).
    teacher : "logits" (default) | "probabilities"
        What the teacher outputs are.

    Input
    -----
    teacher_outputs : [batch, C], float
    student_outputs : [batch, C], float
        Student logits.

    Output
    ------
    : scalar, float32, nats

    Example
    -------
    >>> distiller = keras.distillation.Distiller(
    ...     teacher=teacher, student=student,
    ...     distillation_losses=SoftLabelDistillation(temperature=4.0),
    ...     student_loss_weight=0.5)
    >>> distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    """

    def __init__(self, temperature: float = 4.0, teacher: str = "logits") -> None:
        if teacher not in ("logits", "probabilities"):
            raise ValueError(f"teacher must be 'logits' or 'probabilities'; got {teacher!r}.")
        self.temperature = _check_temperature(temperature)
        self.teacher = teacher

    def per_example(self, teacher_outputs: Any, student_outputs: Any) -> Any:
        """``tau^2 * KL`` per example, ``[batch]`` float32."""
        probs = (ops.softmax(ops.cast(teacher_outputs, "float32"), axis=-1)
                 if self.teacher == "logits" else teacher_outputs)
        return distillation_kl(probs, student_outputs, self.temperature)

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        return ops.mean(self.per_example(teacher_outputs, student_outputs))

    def validate_outputs(self, teacher_outputs: Any, student_outputs: Any) -> None:
        if teacher_outputs.shape[-1] != student_outputs.shape[-1]:
            raise ValueError(f"teacher outputs have {teacher_outputs.shape[-1]} classes, the "
                             f"student's {student_outputs.shape[-1]}.")

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "teacher": self.teacher}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SoftLabelDistillation:
        return cls(**config)


@keras.saving.register_keras_serializable(package="tosc_sionna")
class LabelledMean(keras.metrics.Metric):
    r"""Mean of a per-example quantity over the labelled rows only.

    Accumulates the sum over labelled rows and their count across batches;
    a batch without labels leaves the result unchanged. Reads 0 before any
    labelled row is seen.

    Parameters
    ----------
    name : str
        Metric name.

    Input
    -----
    values : [batch], float
        The per-example quantity (e.g. top-1 correctness, or ``CE``).
    labelled : [batch], float
        1 where the row counts, else 0.

    Output
    ------
    : scalar, float32
        ``result()``: the mean over the labelled rows seen since the last reset.
    """

    def __init__(self, name: str = "labelled_mean", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                       name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                       name="count")

    def update_state(self, values: Any, labelled: Any) -> None:
        labelled = ops.cast(labelled, "float32")
        self.total.assign_add(ops.sum(ops.cast(values, "float32") * labelled))
        self.count.assign_add(ops.sum(labelled))

    def result(self) -> Any:
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)
