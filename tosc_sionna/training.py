"""Training a link from a teacher cache: the trainer owns every loss term.

In the spirit of Keras' ``keras.distillation.Distiller``: the student (a
:class:`~tosc_sionna.TaskOrientedLink`) stays a plain model that computes
outputs; :class:`DistillationTrainer` wraps it and holds the loss terms of
the information-bottleneck distillation loss in ``compute_loss``::

    alpha * CE(y, q) + (1 - alpha) * tau^2 * KL(p_T^tau || q^tau)      (IBDistillationLoss)
    + beta * rate(mu, log_var)                                          (stochastic encoder)
    + gamma * mean(1 - cos(W h, f_T))                                   (feature_dim > 0)

:func:`make_trainer` is the one training recipe (Adam, cosine decay from
2e-3 over the whole run) that ``examples/kd_awgn.py`` and every benchmark use.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from .backends import torch_adam
from .link import ImageArrayChecks, TaskOrientedLink, link_images
from .losses import (
    IBDistillationLoss,
    LabelledMean,
    check_targets,
    feature_distance,
    gaussian_rate,
)

#: The recipe's defaults (the main job's): loss weights, learning rate, batch size.
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 4.0
DEFAULT_BETA = 1e-4
DEFAULT_LEARNING_RATE = 2e-3
DEFAULT_BATCH_SIZE = 128


@keras.saving.register_keras_serializable(package="tosc_sionna")
class DistillationTrainer(ImageArrayChecks, keras.Model):
    r"""Trains a :class:`~tosc_sionna.TaskOrientedLink` on cached teacher outputs.

    ``fit``/``evaluate`` take batches ``(images, targets)`` with the targets
    a dict, as :class:`~tosc_sionna.data.TeacherCacheDataset` yields them:
    ``"label"`` ``[batch]`` int, ``"labelled"`` ``[batch]`` (1 where the
    label may be used), ``"teacher"`` ``[batch, C]`` (the teacher's
    distribution) and, with ``feature_dim``, ``"features"`` ``[batch, D]``.
    The link itself registers no loss and no metric: after training it is
    the deployable model (save it, serve it, sweep it), and the trainer
    (with its training-only feature head) can be dropped.

    Metrics (``fit`` and ``evaluate``): ``loss``; ``ce`` (nats) and
    ``accuracy``, means over the labelled rows only; ``kd`` (nats,
    ``tau^2``-scaled); ``rate`` (nats per example, stochastic encoder);
    ``feature`` (mean ``1 - cos``, with ``feature_dim``). The rate and
    feature terms are added to the loss in training only.

    Parameters
    ----------
    link : TaskOrientedLink
    alpha : float, (default 0.5)
        Weight of the label term (:class:`~tosc_sionna.IBDistillationLoss`).
    temperature : float, (default 4.0)
        Distillation temperature tau.
    beta : float or None, (default None)
        Weight of the rate term :func:`~tosc_sionna.losses.gaussian_rate`:
        None is 1e-4 for a stochastic encoder and 0 for a deterministic one
        (which has no rate; a positive ``beta`` with it is refused).
    feature_dim : int, (default 0)
        D > 0 adds feature distillation: a training-only projection
        ``feature_head`` (Dense, the decoder's embedding -> D) of the
        decoder's last hidden layer is matched to the teacher's pooled
        features (:func:`~tosc_sionna.losses.feature_distance`).
    feature_weight : float, (default 1.0)
        gamma, the feature term's weight.

    Input
    -----
    x : [batch, H, W, C], float
        Images in [0, 1].

    Output
    ------
    dict
        :meth:`TaskOrientedLink.propagate`'s outputs (``logits``, ``mu``,
        ``log_var``, ``snr_db``, and ``embedding`` with ``feature_dim``).

    Example
    -------
    >>> link = tosc_sionna.make_link(tosc_sionna.AWGNChannel())
    >>> trainer = make_trainer(link, steps_per_epoch=len(data), epochs=30)
    >>> trainer.fit(data, epochs=30)          # data: a TeacherCacheDataset
    >>> link.save("student.keras")            # the link alone: no loss, no metric
    """

    def __init__(
        self,
        link: TaskOrientedLink,
        alpha: float = DEFAULT_ALPHA,
        temperature: float = DEFAULT_TEMPERATURE,
        beta: float | None = None,
        feature_dim: int = 0,
        feature_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(link, TaskOrientedLink):
            raise TypeError(f"DistillationTrainer trains a TaskOrientedLink; got "
                            f"{type(link).__name__}.")
        self.link = link
        self.distillation_loss = IBDistillationLoss(alpha=alpha, temperature=temperature)
        stochastic = link.stochastic
        if beta is None:
            beta = DEFAULT_BETA if stochastic else 0.0
        if isinstance(beta, bool) or not 0.0 <= float(beta) < float("inf"):
            raise ValueError(f"beta must be a finite number >= 0; got {beta}.")
        if float(beta) > 0 and not stochastic:
            raise ValueError(f"beta={beta} weighs the rate of a stochastic encoder, but this "
                             "link's encoder is deterministic: use beta=0 or "
                             "make_link(..., stochastic=True).")
        self.beta = float(beta)
        if isinstance(feature_dim, bool) or int(feature_dim) < 0 or \
                not 0.0 <= float(feature_weight) < float("inf"):
            raise ValueError(f"feature_dim and feature_weight must be >= 0; got {feature_dim} "
                             f"and {feature_weight}.")
        self.feature_dim = int(feature_dim)
        self.feature_weight = float(feature_weight)
        self.feature_head = None
        if self.feature_dim:
            if not hasattr(link.decoder, "embedding_dim"):
                raise ValueError("feature distillation needs a decoder that returns its "
                                 "embedding (a SemanticDecoder); got "
                                 f"{type(link.decoder).__name__}.")
            self.feature_head = keras.layers.Dense(self.feature_dim, name="feature_head")
        self.ce_metric = LabelledMean(name="ce")
        self.kd_metric = keras.metrics.Mean(name="kd")
        self.accuracy_metric = LabelledMean(name="accuracy")
        self.rate_metric = keras.metrics.Mean(name="rate") if stochastic else None
        self.feature_metric = keras.metrics.Mean(name="feature") if self.feature_dim else None

    @property
    def alpha(self) -> float:
        return self.distillation_loss.alpha

    @property
    def temperature(self) -> float:
        return self.distillation_loss.temperature

    def build(self, input_shape: Any) -> None:
        if not self.link.built:
            self.link.build(input_shape)
        if self.feature_head is not None and not self.feature_head.built:
            self.feature_head.build((None, self.link.decoder.embedding_dim))
        self.built = True

    def call(self, x: Any, training: bool | None = None) -> dict[str, Any]:
        return self.link.propagate(link_images(x), training=training,
                                   return_embedding=self.feature_head is not None)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        if y_pred is None:
            y_pred = self(x, training=training)
        check_targets(y)
        if sample_weight is not None:
            raise ValueError("DistillationTrainer does not take sample weights: the targets' "
                             "'labelled' mask says which labels count.")
        logits = y_pred["logits"]
        terms = self.distillation_loss.terms(y, logits)
        total = ops.mean(self.distillation_loss.combine(terms))
        correct = ops.cast(ops.equal(ops.argmax(logits, axis=-1),
                                     ops.cast(y["label"], "int32")), "float32")
        self.ce_metric.update_state(terms["ce"], terms["labelled"])
        self.accuracy_metric.update_state(correct, terms["labelled"])
        self.kd_metric.update_state(terms["kd"])
        if self.rate_metric is not None:
            rate = gaussian_rate(y_pred["mu"], y_pred["log_var"])  # nats per example
            self.rate_metric.update_state(rate)
            if training and self.beta > 0:
                total = total + self.beta * rate
        if self.feature_head is not None:
            if "features" not in y:
                raise ValueError("this trainer distils features (feature_dim="
                                 f"{self.feature_dim}) but the targets hold none: use "
                                 "TeacherCacheDataset(features=True).")
            if y["features"].shape[-1] != self.feature_dim:
                raise ValueError(f"teacher features are {y['features'].shape[-1]} wide; the "
                                 f"trainer was built with feature_dim={self.feature_dim}.")
            distance = ops.mean(feature_distance(self.feature_head(y_pred["embedding"]),
                                                 y["features"]))
            self.feature_metric.update_state(distance)
            if training:
                total = total + self.feature_weight * distance
        if self.losses:  # e.g. kernel regularizers a user put on the link's layers
            total = total + ops.sum([ops.cast(loss, "float32") for loss in self.losses])
        return total

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "link": keras.saving.serialize_keras_object(self.link),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "beta": self.beta,
            "feature_dim": self.feature_dim,
            "feature_weight": self.feature_weight,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DistillationTrainer:
        config = dict(config)
        config["link"] = keras.saving.deserialize_keras_object(config["link"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tosc_sionna")
class Adam(keras.optimizers.Adam):
    """Keras' Adam, whose update runs in torch's fused kernel on the torch line's CPU.

    The same arguments and arithmetic as :class:`keras.optimizers.Adam` (it subclasses
    it; saved as ``tosc_sionna>Adam``). On the torch line, for float32 or float64
    variables on the CPU, each step's update of all variables is one call of
    ``torch._fused_adam_`` (:mod:`tosc_sionna.backends.torch_adam`) instead of Keras'
    ten ``torch._foreach_*`` loops: ``apply`` takes 0.21 instead of 0.99 ms for the
    default student on 2 CPU cores. Elsewhere (a GPU, other dtypes, Keras' stateless
    and autocast scopes) it takes the update Keras' Adam takes on torch; on TensorFlow
    it is Keras' Adam, compiled with the step.
    """

    def _backend_update_step(self, grads: list[Any], trainable_variables: list[Any],
                             learning_rate: Any) -> None:
        if torch_adam is None:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        else:
            torch_adam.adam_step(self, list(grads), trainable_variables, learning_rate)


def make_trainer(
    link: TaskOrientedLink,
    steps_per_epoch: int,
    epochs: int,
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
    beta: float | None = None,
    feature_dim: int = 0,
    feature_weight: float = 1.0,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    **compile_kwargs: Any,
) -> DistillationTrainer:
    """The training recipe: a compiled :class:`DistillationTrainer` around ``link``.

    Adam (:class:`Adam`: Keras', fused on torch) with a cosine decay of the
    learning rate from ``learning_rate`` to 0 over the whole run (``epochs *
    steps_per_epoch`` steps); the loss terms as :class:`DistillationTrainer`
    (``alpha``, ``temperature``, ``beta``, ``feature_dim``, ``feature_weight``).
    ``compile_kwargs`` go to ``compile`` (e.g. ``jit_compile``, ``steps_per_execution``).
    """
    if int(steps_per_epoch) < 1 or int(epochs) < 1:
        raise ValueError(f"steps_per_epoch and epochs must be >= 1; got {steps_per_epoch} and "
                         f"{epochs}.")
    if not 0.0 < float(learning_rate) < float("inf"):
        raise ValueError(f"learning_rate must be > 0; got {learning_rate}.")
    trainer = DistillationTrainer(link, alpha=alpha, temperature=temperature, beta=beta,
                                  feature_dim=feature_dim, feature_weight=feature_weight)
    schedule = keras.optimizers.schedules.CosineDecay(
        float(learning_rate), decay_steps=int(epochs) * int(steps_per_epoch))
    trainer.compile(optimizer=Adam(schedule), **compile_kwargs)
    return trainer
